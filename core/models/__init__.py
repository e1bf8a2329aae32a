"""ORM models; importing this package registers every table on `Base.metadata`."""

from core.models.accounts import Membership, Role, Tenant, User
from core.models.auth import ApiKey, AuthSession, Invitation, RefreshToken
from core.models.base import Base
from core.models.jobs import Job, JobEvent
from core.models.kv import KvEntry, RateLimitHit
from core.models.uploads import Upload, UploadStatus

__all__ = [
    "ApiKey",
    "AuthSession",
    "Base",
    "Invitation",
    "Job",
    "JobEvent",
    "KvEntry",
    "Membership",
    "RateLimitHit",
    "Role",
    "Tenant",
    "RefreshToken",
    "Upload",
    "UploadStatus",
    "User",
]
