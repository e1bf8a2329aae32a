from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from api.schemas.text import Text

MIN_PASSWORD = 8
MAX_PASSWORD = 256


class RegisterRequest(BaseModel):
    email: EmailStr
    password: Text = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class TenantMembership(BaseModel):
    id: uuid.UUID
    name: str
    personal: bool
    role: str


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    created_at: datetime
    personal_tenant_id: uuid.UUID
    tenants: list[TenantMembership]
