"""The bench's side of the api: wait until it is ready, register and log in, check
each answer's status."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

import httpx

from tests.bench.failures import BenchError
from tests.bench.stack import STARTUP_SECONDS, LoggedGroup

HTTP_TIMEOUT_SECONDS = 30.0


def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )
    return response


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def wait_ready(client: httpx.AsyncClient, group: LoggedGroup) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        group.check_alive()
        try:
            response = await client.get("/readyz", timeout=5.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.2)
    raise BenchError(f"the api was not ready after {STARTUP_SECONDS:.0f} s: {last}")


def bench_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@bench.conveyor.dev"


async def register(client: httpx.AsyncClient, email: str, password: str) -> None:
    expect(
        await client.post("/api/v1/auth/register", json={"email": email, "password": password}),
        201,
    )


async def log_in(client: httpx.AsyncClient) -> str:
    email = bench_email("bench")
    password = secrets.token_urlsafe(18)
    await register(client, email, password)
    response = expect(
        await client.post("/api/v1/auth/login", data={"username": email, "password": password}),
        200,
    )
    token: str = response.json()["access_token"]
    return token


async def sign_in_when_ready(client: httpx.AsyncClient, group: LoggedGroup) -> None:
    """Waits for the api, then has `client` send a new user's token with every request."""
    await wait_ready(client, group)
    client.headers["Authorization"] = f"Bearer {await log_in(client)}"
