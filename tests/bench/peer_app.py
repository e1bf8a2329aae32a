"""The stack a user would build instead of Conveyor, as the common FastAPI + Celery
tutorials do: `POST /tasks` calls `.delay()` and answers `202 {task_id}`; `GET
/tasks/{id}` reads `AsyncResult` from a Redis result backend; a static bearer token; a
no-op task. `make bench` runs it beside Conveyor with the same uvicorn and Celery
settings (prefork, acks late, prefetch 1). Bench tooling, never part of the product.

    uvicorn tests.bench.peer_app:app    celery -A tests.bench.peer_app:celery worker -Q peer
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from celery import Celery
from celery.result import AsyncResult
from fastapi import Depends, FastAPI, Header, HTTPException

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


@celery.task(name="peer.noop")
def noop(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


TOKEN = os.environ.get("PEER_TOKEN", "")


def authorized(authorization: Annotated[str, Header()] = "") -> None:
    if not TOKEN or authorization != f"Bearer {TOKEN}":
        raise HTTPException(status_code=401, detail="Not authenticated")


app = FastAPI(dependencies=[Depends(authorized)])


@app.post("/tasks", status_code=202)
def create_task(payload: dict[str, Any]) -> dict[str, str]:
    result = noop.delay(payload)
    return {"task_id": result.id}


@app.get("/tasks/{task_id}")
def get_task(task_id: str) -> dict[str, Any]:
    result: AsyncResult[Any] = AsyncResult(task_id, app=celery)
    return {
        "task_id": task_id,
        "status": result.status,
        "result": result.result if result.ready() else None,
    }
