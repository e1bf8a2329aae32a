"""ORM models; importing this package registers every table on `Base.metadata`."""

from core.models.accounts import Membership, Role, Tenant, User
from core.models.auth import ApiKey, AuthSession, Invitation, RefreshToken
from core.models.base import Base
from core.models.jobs import Job, JobEvent
from core.models.kv import KvEntry, RateLimitHit
from core.models.metrics import JobCounter, JobTotals, MaintenanceRun, MetricsRollup
from core.models.uploads import Upload, UploadStatus
from core.models.webhooks import WebhookAttempt, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuthSession",
    "Base",
    "Invitation",
    "Job",
    "JobCounter",
    "JobEvent",
    "JobTotals",
    "KvEntry",
    "MaintenanceRun",
    "Membership",
    "MetricsRollup",
    "RateLimitHit",
    "Role",
    "Tenant",
    "RefreshToken",
    "Upload",
    "UploadStatus",
    "User",
    "WebhookAttempt",
    "WebhookEndpoint",
]
