"""Users and the tenants they belong to. Services flush, never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.models import Membership, Role, Tenant, User
from core.security import hash_password, verify_password


def normalize_email(email: str) -> str:
    return email.strip().lower()


def register(session: Session, email: str, password: str) -> User:
    """Create the user, their personal tenant and the owner membership, together."""
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ConveyorError(ErrorCode.EMAIL_TAKEN)
    tenant = Tenant(id=uuid.uuid4(), name=email, personal=True)
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=hash_password(password),
        personal_tenant_id=tenant.id,
    )
    try:
        session.add(tenant)
        session.flush()
        session.add(user)
        session.flush()
        session.add(Membership(user_id=user.id, tenant_id=tenant.id, role=Role.OWNER))
        session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same email
        raise ConveyorError(ErrorCode.EMAIL_TAKEN) from exc
    return user


def authenticate(session: Session, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    ok, new_hash = verify_password(password, user.password_hash if user else None)
    if user is None or not ok or not user.is_active:
        raise ConveyorError(ErrorCode.INVALID_CREDENTIALS)
    if new_hash is not None:
        user.password_hash = new_hash
    return user


@dataclass(frozen=True)
class TenantAccess:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role


# Built once: every authenticated request runs one of these.
def _access_query() -> Select[uuid.UUID, str]:
    return (
        select(Membership.tenant_id, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.user_id == bindparam("user_id"), User.is_active.is_(True))
    )


@cache
def _personal_access() -> Select[uuid.UUID, str]:
    return _access_query().where(Membership.tenant_id == User.personal_tenant_id)


@cache
def _tenant_access() -> Select[uuid.UUID, str]:
    return _access_query().where(Membership.tenant_id == bindparam("tenant_id"))


def tenant_access(
    session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> TenantAccess:
    """The caller's role in the requested tenant (default: their personal tenant).

    A tenant the user does not belong to is indistinguishable from one that does not
    exist.
    """
    if tenant_id is None:
        row = session.execute(_personal_access(), {"user_id": user_id}).one_or_none()
    else:
        params = {"user_id": user_id, "tenant_id": tenant_id}
        row = session.execute(_tenant_access(), params).one_or_none()
    if row is None:
        if tenant_id is None:
            raise ConveyorError(ErrorCode.INVALID_TOKEN, "The account no longer exists")
        raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
    return TenantAccess(user_id=user_id, tenant_id=row.tenant_id, role=Role(row.role))


def tenants_of(session: Session, user_id: uuid.UUID) -> list[tuple[Tenant, str]]:
    rows = session.execute(
        select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.created_at)
    ).all()
    return [(tenant, role) for tenant, role in rows]
