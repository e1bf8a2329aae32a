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
