"""Users and the tenants they belong to. Services flush, never commit."""

from __future__ import annotations

import uuid
from functools import partial

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity.access import ALL_SCOPES, Principal
from core.identity.credentials import hash_password, verify_password
from core.models import AuthSession, Membership, Role, Tenant, User
from core.prepared import Prepared

TENANT_NAME_LENGTH = 200


def normalize_email(email: str) -> str:
    return email.strip().lower()


def register(session: Session, email: str, password: str) -> User:
    """Create the user, their personal tenant and the owner membership, together."""
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ConveyorError(ErrorCode.EMAIL_TAKEN)
    # Tenant names are shorter than the longest valid email.
    tenant = Tenant(id=uuid.uuid4(), name=email[:TENANT_NAME_LENGTH], personal=True)
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
    if new_hash is not None:  # hashing parameters changed since this hash was made
        user.password_hash = new_hash
    return user


def find_active_user(session: Session, email: str) -> User | None:
    return session.scalar(
        select(User).where(User.email == normalize_email(email), User.is_active.is_(True))
    )


def change_password(session: Session, user_id: uuid.UUID, current: str, new: str) -> None:
    user = session.get(User, user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "The account no longer exists")
    ok, _ = verify_password(current, user.password_hash)
    if not ok:
        raise ConveyorError(ErrorCode.WRONG_PASSWORD)
    user.password_hash = hash_password(new)


def active_user(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> User:
    """The user behind an access token, if the login it belongs to is still live."""
    user = session.scalar(
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            User.id == user_id,
            User.is_active.is_(True),
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
        )
    )
    if user is None:
        raise ConveyorError(ErrorCode.INVALID_TOKEN, "The session has ended")
    return user


# Built once: every request made with an access token runs one of these. The join on
# the session is what makes logout and password reset end access tokens at once.
def _access_query() -> Select[uuid.UUID, str]:
    return (
        select(Membership.tenant_id, Membership.role)
        .join(User, User.id == Membership.user_id)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            Membership.user_id == bindparam("user_id"),
            User.is_active.is_(True),
            AuthSession.id == bindparam("session_id"),
            AuthSession.revoked_at.is_(None),
        )
    )


def access_query(*, tenant_named: bool) -> Select[uuid.UUID, str]:
    """A live login's membership (`tenant_id`, `role`), of user `user_id` and login
    `session_id`: in tenant `tenant_id` if `tenant_named`, else in their personal one."""
    if tenant_named:
        return _access_query().where(Membership.tenant_id == bindparam("tenant_id"))
    return _access_query().where(Membership.tenant_id == User.personal_tenant_id)


# Every request a user makes runs one of these: prepared (`core.prepared`).
_PERSONAL_ACCESS = Prepared(
    "personal_access", partial(access_query, tenant_named=False), required=("user_id", "session_id")
)
_TENANT_ACCESS = Prepared(
    "tenant_access",
    partial(access_query, tenant_named=True),
    required=("user_id", "session_id", "tenant_id"),
)


def tenant_access(
    session: Session, user_id: uuid.UUID, session_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> Principal:
    """The caller's role in the requested tenant (default: their personal tenant).

    A tenant the user does not belong to is indistinguishable from one that does not
    exist.
    """
    params = {"user_id": user_id, "session_id": session_id}
    if tenant_id is None:
        rows = _PERSONAL_ACCESS.execute(session, params)
    else:
        rows = _TENANT_ACCESS.execute(session, {**params, "tenant_id": tenant_id})
    row = rows[0] if rows else None
    if row is None:
        if tenant_id is None or not _session_live(session, user_id, session_id):
            raise ConveyorError(ErrorCode.INVALID_TOKEN, "The session has ended")
        raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
    return member(row.tenant_id, user_id, session_id, row.role)


def member(tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID, role: str) -> Principal:
    """A signed-in user in a tenant whose membership `access_query` found."""
    return Principal(
        tenant_id=tenant_id,
        user_id=user_id,
        role=Role(role),
        scopes=ALL_SCOPES,
        session_id=session_id,
    )


def _session_live(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    try:
        active_user(session, user_id, session_id)
    except ConveyorError:
        return False
    return True


def tenants_of(session: Session, user_id: uuid.UUID) -> list[tuple[Tenant, str]]:
    rows = session.execute(
        select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.created_at, Tenant.id)
    ).all()
    return [(tenant, role) for tenant, role in rows]
