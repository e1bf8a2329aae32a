"""Who is calling, in which tenant, and what they may do there.

A user acts through their role in the tenant; an API key acts through its scopes and
nothing else (it never manages members or keys).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from core.errors import ConveyorError, ErrorCode
from core.models import Role


class Scope(StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    UPLOADS_READ = "uploads:read"
    UPLOADS_WRITE = "uploads:write"
    AGENTS_RUN = "agents:run"
    WEBHOOKS_READ = "webhooks:read"
    # Webhook events carry every job's result: grant it only to a key trusted with them.
    WEBHOOKS_WRITE = "webhooks:write"


ALL_SCOPES = frozenset(Scope)

_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def outranks(role: Role, other: Role) -> bool:
    """At least as high as `other`."""
    return _RANK[role] >= _RANK[other]


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    # The user; for an API key, the user who created it (None if since deleted).
    user_id: uuid.UUID | None
    # The user's role in the tenant; None for an API key.
    role: Role | None
    scopes: frozenset[Scope]
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise ConveyorError(
                ErrorCode.INSUFFICIENT_SCOPE,
                f"The API key needs the {scope.value!r} scope",
                required_scope=scope.value,
            )

    def require_role(self, role: Role) -> Role:
        """The caller's role, if it is at least `role`; API keys never qualify."""
        if self.role is None:
            raise ConveyorError(ErrorCode.USER_LOGIN_REQUIRED)
        if not outranks(self.role, role):
            raise ConveyorError(
                ErrorCode.FORBIDDEN,
                f"This needs the {role.value} role; yours is {self.role.value}",
                required_role=role.value,
            )
        return self.role
