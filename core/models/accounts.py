"""Tenants, users and who belongs where."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, CreatedAt, new_id


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class Tenant(CreatedAt, Base):
    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint("max_concurrency >= 0", name="max_concurrency"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    personal: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # This tenant's storage quota in bytes, in place of STORAGE_QUOTA_BYTES (0: none).
    # Set by an operator; NULL for the setting's.
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # This tenant's jobs published or running at once per queue, in place of
    # TENANT_CONCURRENCY (0: no cap). Set by an operator; NULL for the setting's.
    max_concurrency: Mapped[int | None] = mapped_column(Integer)


class User(CreatedAt, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Stored lower-cased; the unique constraint is therefore case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    personal_tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT")
    )


class Membership(CreatedAt, Base):
    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
