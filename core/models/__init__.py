"""ORM models; importing this package registers every table on `Base.metadata`."""

from core.models.accounts import Membership, Role, Tenant, User
from core.models.base import Base
from core.models.jobs import Job, JobEvent

__all__ = ["Base", "Job", "JobEvent", "Membership", "Role", "Tenant", "User"]
