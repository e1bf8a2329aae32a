"""Typed factories: users, tenants, memberships, API keys and jobs written straight to
the test database, with the rows the product itself writes.

Most tests need someone logged in, not the act of logging in: a user here costs a few
INSERTs and a signed token instead of two argon2 hashes over HTTP (register, then log
in). Tests whose subject is registering, logging in or another HTTP contract still go
through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from core.identity import api_keys, sessions, tenants
from core.identity.access import Principal, Scope
from core.identity.accounts import TENANT_NAME_LENGTH, normalize_email
from core.identity.credentials import hash_password
from core.jobs.contracts import ECHO
from core.jobs.publishing import PendingPublishes, mark_enqueued
from core.jobs.submit import submit
from core.models import Membership, Role, Tenant
from core.models import User as UserRow
from tests.support.stack import Stack

PASSWORD = "correct horse battery"
JOB_SCOPES = (Scope.JOBS_READ, Scope.JOBS_WRITE)


@dataclass(frozen=True)
class User:
    """A registered user with one live login (as after register + login)."""

    id: uuid.UUID
    email: str
    password: str
    personal_tenant_id: uuid.UUID
    token: str  # access token
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


@cache
def password_hash(password: str) -> str:
    """argon2id is slow on purpose; each test password is hashed once per session."""
    return hash_password(password)


def create_user(stack: Stack, *, email: str | None = None, password: str = PASSWORD) -> User:
    """The rows registering writes (the user, their personal tenant, the owner
    membership) and the rows logging in writes (a session and its refresh token)."""
    email = normalize_email(email or new_email())
    with stack.db.transaction() as session:
        tenant = Tenant(id=uuid.uuid4(), name=email[:TENANT_NAME_LENGTH], personal=True)
        session.add(tenant)
        session.flush()
        row = UserRow(
            id=uuid.uuid4(),
            email=email,
            password_hash=password_hash(password),
            personal_tenant_id=tenant.id,
        )
        session.add(row)
        session.flush()
        session.add(Membership(user_id=row.id, tenant_id=tenant.id, role=Role.OWNER))
        session.flush()
        tokens = sessions.start(session, stack.settings, row.id)
    return User(row.id, email, password, tenant.id, tokens.access_token, tokens.refresh_token)


def log_in(stack: Stack, user: User) -> User:
    """Another login of the same user (another device): a session of its own."""
    with stack.db.transaction() as session:
        tokens = sessions.start(session, stack.settings, user.id)
    return User(
        user.id,
        user.email,
        user.password,
        user.personal_tenant_id,
        tokens.access_token,
        tokens.refresh_token,
    )


def create_tenant(stack: Stack, owner: User, name: str = "Team") -> uuid.UUID:
    """A team tenant with `owner` as its owner."""
    with stack.db.transaction() as session:
        return tenants.create(session, owner.id, name).id


def add_member(stack: Stack, tenant_id: uuid.UUID, user: User, role: Role = Role.MEMBER) -> None:
    with stack.db.transaction() as session:
        session.add(Membership(user_id=user.id, tenant_id=tenant_id, role=role))


def create_api_key(
    stack: Stack,
    tenant_id: uuid.UUID,
    created_by: User,
    scopes: Iterable[Scope] = JOB_SCOPES,
    name: str = "ci",
) -> ApiKey:
    """A key of the tenant, made by `created_by` (who should be an admin or owner there,
    as the API would insist)."""
    maker = Principal(tenant_id, created_by.id, Role.OWNER, frozenset())
    with stack.db.transaction() as session:
        key, secret = api_keys.create(session, maker, name, list(scopes))
    return ApiKey(key.id, tenant_id, secret)


def create_job(
    stack: Stack,
    tenant_id: uuid.UUID | None,
    user: User | None = None,
    kind: str = ECHO,
    job_input: dict[str, Any] | None = None,
    *,
    max_attempts: int = 3,
) -> uuid.UUID:
    """A queued job, inserted as a submit does but published to no broker. Within its
    tenant's cap it is recorded as published, so the reconciler leaves it where it is;
    past the cap it waits in the tenant's line, as a submitted one would."""
    publishes = PendingPublishes()
    with stack.db.transaction() as session:
        submitted = submit(
            session,
            publishes,
            tenant_id=tenant_id,
            user_id=user.id if user else None,
            kind_name=kind,
            raw_input=job_input or {},
            settings=stack.settings.model_copy(update={"job_max_attempts": max_attempts}),
        )
        mark_enqueued(session, [submitted.job.id])
    sent = publishes.committed(stack.db, stack.settings.tenant_concurrency)
    with stack.db.autocommit() as connection:
        mark_enqueued(connection, [message.job_id for message in sent])
    return submitted.job.id
