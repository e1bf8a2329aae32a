"""What a handler gets besides its input: progress, checkpoints, and a lease that is
kept alive in the background while it works."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import current_app

from core.db import Database, is_unavailable, retrying
from core.jobs import heartbeats
from core.jobs.contracts import KINDS
from core.jobs.heartbeats import Heartbeat
from core.jobs.lifecycle import Claim
from core.jobs.publishing import JobPublisher
from core.jobs.states import EventType
from core.settings import Settings
from core.storage import Storage
from worker.errors import JobCancelled, LeaseLost
from worker.resources import Runtime

log = logging.getLogger("conveyor.worker")

# A checkpoint looks at the database at most this often.
CHECK_INTERVAL_SECONDS = 1.0
# While the database is unavailable, a heartbeat is tried again this often.
DOWN_RETRY_SECONDS = 1.0


class JobContext:
    def __init__(self, rt: Runtime, claim: Claim, claimed_at: float) -> None:
        """`claimed_at`: when the claim's statement was sent (`time.monotonic()`)."""
        self._rt = rt
        self.claim = claim
        self._lease = rt.settings.job_lease_seconds
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._lost = False
        # When the database was last asked, whatever the answer (paces checkpoints and
        # heartbeats), and whether that failed (the next heartbeat comes sooner).
        self._last_check = time.monotonic()
        self._unreachable = False
        # When the statement that last extended the lease was sent: the lease holds for
        # `lease` from then at least, however long the answer took.
        self._confirmed_at = claimed_at
        # Past the kind's hard time limit the heartbeat stops, so a handler stuck where
        # no limit reaches it (the threads pool has none) loses its lease to the
        # reconciler instead of holding the job for ever.
        self._give_up_at = self._last_check + KINDS[claim.kind].time_limit_seconds

    @property
    def job_id(self) -> uuid.UUID:
        return self.claim.job_id

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.claim.tenant_id

    @property
    def db(self) -> Database:
        return self._rt.db

    @property
    def storage(self) -> Storage:
        return self._rt.storage

    @property
    def publisher(self) -> JobPublisher:
        """Publishes the jobs a handler's transaction submitted, once it has committed."""
        return self._rt.publisher(current_app)

    @property
    def settings(self) -> Settings:
        """The worker process's settings (read-only, like the settings themselves)."""
        return self._rt.settings

    def lease_deadline(self) -> float:
        """Until when (`time.monotonic()`) the lease surely holds, as far as this
        process knows: past it the reconciler may have given the job to another attempt."""
        with self._lock:
            return self._confirmed_at + self._lease

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress (0..1) as an event; also a checkpoint."""

        def write() -> Heartbeat:
            with self._rt.db.autocommit() as connection:  # one statement
                return heartbeats.report_progress(
                    connection, self.job_id, self.claim.attempt, fraction, message, self._lease
                )

        self._report("progress", write)

    def event(self, type_: EventType, data: dict[str, Any]) -> None:
        """Record a step of the job as an event; also a checkpoint."""

        def write() -> Heartbeat:
            with self._rt.db.autocommit() as connection:  # one statement
                return heartbeats.report_event(
                    connection, self.job_id, self.claim.attempt, type_, data, self._lease
                )

        self._report("event", write)

    def _report(self, what: str, write: Callable[[], Heartbeat]) -> None:
        """Write while the database restarts, for as long as the lease may hold; past
        that the job may be another attempt's, so this one stops."""
        sent_at = time.monotonic()

        def attempt() -> Heartbeat:
            nonlocal sent_at
            sent_at = time.monotonic()
            return write()

        try:
            beat = retrying(f"{what} of job {self.job_id}", attempt, deadline=self.lease_deadline())
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            raise LeaseLost(str(self.job_id)) from exc
        self._note(beat, sent_at)
        self._raise_if_stopping()

    def checkpoint(self, *, now: bool = False) -> None:
        """Stop here if the job was cancelled or taken over; cheap to call often.
        `now`: look at the database whenever it was last checked (between expensive
        steps, like model turns, where a stale answer would cost a whole step)."""
        if now or time.monotonic() - self._last_check >= CHECK_INTERVAL_SECONDS:
            self._beat()
        self._raise_if_stopping()

    def _beat(self) -> None:
        """Extend the lease. While the database is unavailable the job goes on (the
        next beat may get through), until the lease may have run out."""
        sent_at = time.monotonic()
        try:
            with self._rt.db.autocommit() as session:
                beat = heartbeats.heartbeat(session, self.job_id, self.claim.attempt, self._lease)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            now = time.monotonic()
            with self._lock:
                self._last_check = now
                self._unreachable = True
                if now >= self._confirmed_at + self._lease:
                    self._lost = True
            log.warning("heartbeat for job %s: database unavailable", self.job_id)
            return
        self._note(beat, sent_at)

    def _note(self, beat: Heartbeat, sent_at: float) -> None:
        with self._lock:
            self._last_check = time.monotonic()
            self._unreachable = False
            if beat.still_ours:
                self._confirmed_at = sent_at
            self._cancel_requested = beat.cancel_requested
            self._lost = not beat.still_ours

    def _raise_if_stopping(self) -> None:
        with self._lock:
            if self._lost:
                raise LeaseLost(str(self.job_id))
            if self._cancel_requested:
                raise JobCancelled(str(self.job_id))

    def _heartbeat_due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            # Sooner while the database is unreachable: the lease is running out.
            interval = DOWN_RETRY_SECONDS if self._unreachable else self._lease / 3
            return now < self._give_up_at and now - self._last_check >= interval

    @contextmanager
    def heartbeating(self) -> Iterator[None]:
        """Keep the lease alive while the block runs, so a handler busy in one long call
        keeps its job. Progress and checkpoints extend it too, so a chatty handler
        costs the heartbeat nothing."""
        _heartbeats.watch(self)
        try:
            yield
        finally:
            _heartbeats.unwatch(self)


class _Heartbeats:
    """One thread per process extends the leases of the jobs running in it: no thread
    is started per job, which matters when jobs take milliseconds."""

    TICK_SECONDS = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: set[JobContext] = set()
        self._pid: int | None = None

    def watch(self, ctx: JobContext) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or first use after a fork
                self._pid = os.getpid()
                self._jobs = set()
                threading.Thread(target=self._loop, name="heartbeats", daemon=True).start()
            self._jobs.add(ctx)

    def unwatch(self, ctx: JobContext) -> None:
        with self._lock:
            self._jobs.discard(ctx)

    def _loop(self) -> None:
        while True:
            time.sleep(self.TICK_SECONDS)
            with self._lock:
                due = [ctx for ctx in self._jobs if ctx._heartbeat_due()]
            for ctx in due:
                try:
                    ctx._beat()
                except Exception as exc:  # the next beat may work; the lease has slack
                    log.warning("heartbeat for job %s failed: %s", ctx.job_id, type(exc).__name__)


_heartbeats = _Heartbeats()
