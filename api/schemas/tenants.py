from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.schemas.strings import Name, TeamName
from core.identity.access import Scope
from core.models import Role


class TenantCreate(BaseModel):
    name: TeamName


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    personal: bool
    created_at: datetime
    role: Role = Field(description="The caller's role in this tenant.")


class TenantLimits(BaseModel):
    """What the tenant may use (see docs/capacity.md). Set by the server's operator:
    the settings for every tenant, `max_concurrency` per tenant with
    `conveyor tenant-limits`."""

    max_concurrency: int = Field(
        description="Its jobs sent or running at once in each queue; 0: no cap."
    )
    max_queued_jobs: int = Field(description="Its queued jobs, all queues; 0: no quota.")
    queued_jobs: int = Field(description="Its queued jobs now (counted up to the quota).")
    submit_limit: int = Field(description="Jobs it may submit per window; 0: no limit.")
    submit_window_seconds: float


class MemberCreate(BaseModel):
    email: EmailStr
    role: Role = Role.MEMBER


class MemberUpdate(BaseModel):
    role: Role


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID | None = Field(description="None while the invitation is pending.")
    email: str
    role: Role
    status: Literal["active", "invited"]
    since: datetime
    invitation_id: uuid.UUID | None = None


class ApiKeyCreate(BaseModel):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str = Field(description="The start of the secret, to tell keys apart.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once: store it now. Use as `Bearer <secret>`.")
