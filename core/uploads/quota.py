"""Each tenant's storage quota: its uploads (a direct upload from the moment its URL is
handed out) and the files processing derived from them, against the tenant's own quota
(`tenants.storage_quota_bytes`, set by an operator) or else STORAGE_QUOTA_BYTES.

A check that precedes a write locks the tenant's row, so two uploads at once cannot
both take the last room.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.models import Tenant, Upload
from core.settings import Settings


def used_bytes(session: Session, tenant_id: uuid.UUID) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Upload.size + Upload.derived_bytes), 0)).where(
            Upload.tenant_id == tenant_id
        )
    )
    return int(total or 0)


def check_room(
    session: Session,
    settings: Settings,
    tenant_id: uuid.UUID,
    adding: int,
    *,
    lock: bool = True,
) -> None:
    """Raise 429 storage_quota_exceeded unless `adding` more bytes fit. With `lock`
    (for a check the caller follows with its write, in the same transaction) the
    tenant's other checks wait until that transaction ends."""
    own = select(Tenant.storage_quota_bytes).where(Tenant.id == tenant_id)
    tenant_quota = session.scalar(own.with_for_update() if lock else own)
    quota = settings.storage_quota_bytes if tenant_quota is None else tenant_quota
    if not quota:
        return
    used = used_bytes(session, tenant_id)
    if used + adding > quota:
        raise ConveyorError(
            ErrorCode.STORAGE_QUOTA_EXCEEDED,
            f"{adding} more bytes would exceed the storage quota: {used} of {quota} used",
            quota_bytes=quota,
            used_bytes=used,
            requested_bytes=adding,
        )
