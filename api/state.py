"""What one API process holds: settings, its database, its Celery publisher and its
key-value store."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from starlette.requests import HTTPConnection

from api.metrics import ApiMetrics
from api.readiness import ReadinessCache
from api.streams import StreamSlots
from core.db import Database
from core.jobs.publishing import JobPublisher
from core.kv import KeyValueStore
from core.settings import Settings
from core.storage import Storage


@dataclass
class AppState:
    settings: Settings
    db: Database
    celery: Celery
    # Publishes committed jobs; records and announces them in batches, off the requests.
    publisher: JobPublisher
    # Reset codes and rate limits: Redis, or PostgreSQL on the embedded default.
    kv: KeyValueStore
    # Uploads: S3-compatible storage, or local disk on the embedded default.
    storage: Storage
    # The last readiness check, shared by /readyz calls for a moment.
    readiness: ReadinessCache
    # Open event streams per caller.
    streams: StreamSlots
    # What GET /metrics reports.
    metrics: ApiMetrics


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.conveyor
    return state
