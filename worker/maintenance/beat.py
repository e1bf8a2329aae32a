"""What beat's process runs besides the schedule, on a thread of its own: the
reconciler every round, the metrics' roll-up and housekeeping less often. As queued
tasks they would wait behind the very jobs they exist to rescue when every slot is busy.

Each run is noted in PostgreSQL (`maintenance_runs`), so the metrics show when the
reconciler and housekeeping last ran and whether that went well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from celery import Celery

from core.jobs import totals
from core.kv import open_kv_store
from worker.maintenance.housekeeping import INTERVAL_SECONDS as HOUSEKEEPING_INTERVAL
from worker.maintenance.housekeeping import housekeep
from worker.maintenance.reconciler import RECONCILER, reconcile
from worker.resources import runtime

log = logging.getLogger("conveyor.beat")

HOUSEKEEPING = "housekeeping"


def maintain_forever(celery: Celery) -> None:
    rt = runtime()
    kv = open_kv_store(rt.settings, rt.db)
    next_housekeeping = next_rollup = time.monotonic()
    while True:
        # The reconciler notes a good round itself: a round another beat ran is not ours.
        if not _run(RECONCILER, lambda: reconcile(celery)):
            _note(RECONCILER, ok=False)
        if time.monotonic() >= next_rollup:
            next_rollup = time.monotonic() + totals.ROLLUP_INTERVAL_SECONDS
            _run("metrics roll-up", _roll_up)
        if time.monotonic() >= next_housekeeping:
            next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
            _note(HOUSEKEEPING, ok=_run(HOUSEKEEPING, lambda: housekeep(kv)))
        time.sleep(rt.settings.reconcile_interval_seconds)


def _run(what: str, work: Callable[[], object]) -> bool:
    try:
        work()
    except Exception:  # the next round may work; the loop must not die
        log.exception("%s failed", what)
        return False
    return True


def _roll_up() -> None:
    with runtime().db.transaction() as session:
        counted = totals.roll_up(session)
    if counted:
        log.debug("metrics: %d finished jobs rolled up", counted)


def _note(task: str, *, ok: bool) -> None:
    try:
        with runtime().db.transaction() as session:
            totals.record_run(session, task, ok=ok)
    except Exception as exc:  # the database may be what failed
        log.warning("could not note the %s run (%s)", task, type(exc).__name__)
