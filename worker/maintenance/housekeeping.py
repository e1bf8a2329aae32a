"""Housekeeping: delete what has expired and will never be read again (codes and rate
limit hits of the SQL key-value store, expired refresh tokens, sessions that ended or
can no longer be refreshed, expired invitations, old system jobs, direct uploads never
completed), and redact the secrets of finished jobs.

Runs from beat's reconciler thread every few minutes; every statement is idempotent, so
two beats running it at once only repeat work.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, func, select

from core.jobs import redaction
from core.jobs.contracts import KINDS
from core.kv import KeyValueStore
from core.models import AuthSession, Invitation, Job, RefreshToken, Upload, UploadStatus
from core.uploads.keys import upload_prefix
from worker.resources import runtime

log = logging.getLogger("conveyor.housekeeping")

INTERVAL_SECONDS = 600.0
# Logins are never this old without a refresh token, except ones that can no longer be
# used; and a direct upload gets this long beyond its URL's lifetime to be completed.
LOGIN_GRACE = timedelta(hours=1)
# System jobs (account email) are kept this long after they finish, for support.
SYSTEM_JOB_RETENTION = timedelta(days=7)


def housekeep(kv: KeyValueStore) -> int:
    rt = runtime()
    removed = kv.purge_expired()
    with rt.db.transaction() as session:
        connection = session.connection()
        removed += connection.execute(
            delete(RefreshToken).where(RefreshToken.expires_at < func.now())
        ).rowcount
        # An ended session matters only while its refresh tokens could still be shown.
        ended_before = func.now() - timedelta(days=rt.settings.refresh_token_days)
        removed += connection.execute(
            delete(AuthSession).where(AuthSession.revoked_at < ended_before)
        ).rowcount
        # A login whose refresh tokens have all expired can never be used again.
        removed += connection.execute(
            delete(AuthSession).where(
                AuthSession.created_at < func.now() - LOGIN_GRACE,
                ~select(RefreshToken.id).where(RefreshToken.session_id == AuthSession.id).exists(),
            )
        ).rowcount
        for kind in KINDS.values():
            # Secrets of jobs that ended without their worker seeing it (dead letters).
            redaction.redact_finished(session, kind)
        removed += connection.execute(
            delete(Job).where(
                Job.tenant_id.is_(None),
                Job.finished_at < func.now() - SYSTEM_JOB_RETENTION,
            )
        ).rowcount
        removed += connection.execute(
            delete(Invitation).where(
                Invitation.created_at < func.now() - timedelta(days=rt.settings.invitation_days)
            )
        ).rowcount
    removed += _abandoned_uploads()
    if removed:
        log.info("housekeeping removed %d expired rows", removed)
    return removed


def _abandoned_uploads() -> int:
    """Direct uploads never completed, once their upload URL can no longer be used:
    their objects (if any bytes arrived), then their rows."""
    rt = runtime()
    stale_before = func.now() - timedelta(seconds=rt.settings.upload_url_seconds) - LOGIN_GRACE
    with rt.db.transaction() as session:
        rows = session.execute(
            select(Upload.id, Upload.tenant_id)
            .where(Upload.status == UploadStatus.PENDING, Upload.created_at < stale_before)
            .limit(500)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            rt.storage.delete_prefix(upload_prefix(row.tenant_id, row.id))
        if rows:
            session.execute(delete(Upload).where(Upload.id.in_([row.id for row in rows])))
    return len(rows)
