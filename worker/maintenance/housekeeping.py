"""Housekeeping: delete what has expired and will never be read again (codes and rate
limit hits of the SQL key-value store, expired refresh tokens, long-ended sessions).

Runs from beat's reconciler thread every few minutes; every statement is idempotent, so
two beats running it at once only repeat work.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, func

from core.kv import KeyValueStore
from core.models import AuthSession, RefreshToken
from worker.runtime import runtime

log = logging.getLogger("conveyor.housekeeping")

INTERVAL_SECONDS = 600.0


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
    if removed:
        log.info("housekeeping removed %d expired rows", removed)
    return removed
