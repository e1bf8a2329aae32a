"""The stack a user would build instead of Conveyor, as the common FastAPI + Celery
tutorials do: `POST /tasks` calls `.delay()` and answers `202 {task_id}`; `GET
/tasks/{id}` reads `AsyncResult` from a Redis result backend; a static bearer token; a
no-op task. `make bench` runs it beside Conveyor with the same uvicorn and Celery
settings (prefork, acks late, prefetch 1). Bench tooling, never part of the product.

With PEER_DATABASE_URL it is the same stack plus the least PostgreSQL bookkeeping that
makes a task outlive a lost message: a row committed before the publish, a commit when
the task starts and one when it ends (plain psycopg2, one statement each, no ORM), and
`GET` reads the row. `make bench` runs both: their ratio is the most a stack that keeps
its jobs in PostgreSQL this way can reach against the tutorial's, on this machine.
`POST /tasks/batch` takes many tasks in one request, as Conveyor's `POST /jobs/batch`
does: how fast each stack drains a bulk submit bounds what a batch can reach.

    uvicorn tests.bench.peer_app:app    celery -A tests.bench.peer_app:celery worker -Q peer
"""

from __future__ import annotations

import json
import os
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import psycopg2
import psycopg2.extras
from celery import Celery
from celery.result import AsyncResult
from fastapi import Depends, FastAPI, Header, HTTPException
from psycopg2.extensions import connection as Connection

QUEUE = "peer"

celery = Celery(
    "peer",
    broker=os.environ.get("PEER_BROKER_URL", "redis://127.0.0.1:6379/12"),
    backend=os.environ.get("PEER_BROKER_URL", "redis://127.0.0.1:6379/12"),
)
celery.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)


DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "")
SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_tasks (
    id uuid PRIMARY KEY,
    status text NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
)
"""
# This process's idle connections: one opened whenever none is idle, and every one
# kept (psycopg2's own pools close those above `minconn`, a new PostgreSQL backend per
# request under load).
_idle: queue.LifoQueue[Connection] = queue.LifoQueue()
_idle_pid = os.getpid()


def create_table(dsn: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(SCHEMA)
        cursor.execute("TRUNCATE peer_tasks")


@contextmanager
def database() -> Iterator[Connection]:
    """An idle connection of this process (a prefork child opens its own)."""
    global _idle, _idle_pid
    if _idle_pid != os.getpid():
        _idle, _idle_pid = queue.LifoQueue(), os.getpid()
    try:
        conn = _idle.get_nowait()
    except queue.Empty:
        conn = psycopg2.connect(DATABASE_URL)
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    finally:
        _idle.put(conn)


def _execute(sql: str, *params: Any) -> None:
    with database() as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
        conn.commit()


@celery.task(name="peer.noop", bind=True)
def noop(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    if DATABASE_URL:
        _execute(
            "UPDATE peer_tasks SET status = 'running', started_at = now() WHERE id = %s",
            self.request.id,
        )
        _execute(
            "UPDATE peer_tasks SET status = 'succeeded', result = %s, finished_at = now() "
            "WHERE id = %s",
            json.dumps(payload),
            self.request.id,
        )
    return payload


TOKEN = os.environ.get("PEER_TOKEN", "")


def authorized(authorization: Annotated[str, Header()] = "") -> None:
    if not TOKEN or authorization != f"Bearer {TOKEN}":
        raise HTTPException(status_code=401, detail="Not authenticated")


app = FastAPI(dependencies=[Depends(authorized)])


@app.post("/tasks", status_code=202)
def create_task(payload: dict[str, Any]) -> dict[str, str]:
    task_id = str(uuid.uuid4())
    if DATABASE_URL:
        _execute(
            "INSERT INTO peer_tasks (id, status, payload) VALUES (%s, 'queued', %s)",
            task_id,
            json.dumps(payload),
        )
    noop.apply_async((payload,), task_id=task_id)
    return {"task_id": task_id}


@app.post("/tasks/batch", status_code=202)
def create_tasks(body: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """`{"tasks": [payload, ...]}`: the same as that many `POST /tasks`, with the rows
    inserted in one transaction (one statement) before the publishes."""
    payloads = body["tasks"]
    task_ids = [str(uuid.uuid4()) for _ in payloads]
    if DATABASE_URL:
        with database() as conn:
            with conn.cursor() as cursor:
                rows = [
                    (task_id, "queued", json.dumps(payload))
                    for task_id, payload in zip(task_ids, payloads, strict=True)
                ]
                psycopg2.extras.execute_values(
                    cursor, "INSERT INTO peer_tasks (id, status, payload) VALUES %s", rows
                )
            conn.commit()
    for task_id, payload in zip(task_ids, payloads, strict=True):
        noop.apply_async((payload,), task_id=task_id)
    return {"task_ids": task_ids}


@app.get("/tasks/{task_id}")
def get_task(task_id: str) -> dict[str, Any]:
    if DATABASE_URL:
        return _row(task_id)
    result: AsyncResult[Any] = AsyncResult(task_id, app=celery)
    return {
        "task_id": task_id,
        "status": result.status,
        "result": result.result if result.ready() else None,
    }


def _row(task_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(task_id)
    except ValueError:
        return {"task_id": task_id, "status": "PENDING", "result": None}
    with database() as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT status, result FROM peer_tasks WHERE id = %s", (task_id,))
            row = cursor.fetchone()
        conn.commit()
    if row is None:
        return {"task_id": task_id, "status": "PENDING", "result": None}
    return {"task_id": task_id, "status": row[0], "result": row[1]}
