from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from api.schemas.strings import NulFreeStr

MIN_PASSWORD = 8
MAX_PASSWORD = 256
# Generous for any JWT this API issues, small enough to refuse junk early.
MAX_TOKEN = 4096


class RegisterRequest(BaseModel):
    email: EmailStr
    password: NulFreeStr = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    invitation_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The token from an invitation email: joins that tenant at once.",
    )


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN)


class ResetRequest(BaseModel):
    email: EmailStr


class ResetAccepted(BaseModel):
    detail: str = "If an account exists for this email, a reset code has been sent to it."


class ResetConfirm(BaseModel):
    email: EmailStr
    code: str = Field(pattern=r"^[0-9]{6,8}$", description="The code from the email.")
    new_password: NulFreeStr = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


class VerificationAccepted(BaseModel):
    detail: str = "If an account exists for this email, a sign-in code has been sent to it."


class VerificationConfirm(BaseModel):
    email: EmailStr
    code: str = Field(pattern=r"^[0-9]{6,8}$", description="The code from the email.")


class PasswordChange(BaseModel):
    current_password: NulFreeStr = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: NulFreeStr = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


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
