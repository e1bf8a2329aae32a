"""What one API process holds: settings, its database and its Celery publisher."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from starlette.requests import HTTPConnection

from core.db import Database
from core.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    celery: Celery


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.conveyor
    return state
