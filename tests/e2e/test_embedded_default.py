"""`conveyor dev` with nothing configured, as a user runs it: embedded PostgreSQL, the
filesystem broker, a job through the API, Flower behind its login, a clean Ctrl-C, and
the data still there on the next start."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

from core.dev.stack import SECRET_KEY_FILE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc"),
]

REPO = Path(__file__).resolve().parents[2]
CONVEYOR = Path(sys.executable).parent / "conveyor"
# What CI may set; without them `conveyor dev` must embed everything.
CONFIGURED = (
    "DATABASE_URL",
    "REDIS_URL",
    "BROKER_URL",
    "DB_HOST",
    "REDIS_HOST",
    "SECRET_KEY",
    "FLOWER_BASIC_AUTH",
    "DATA_DIR",
    "ENVIRONMENT",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_TLS",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "S3_ADDRESSING_STYLE",
    "S3_PART_SIZE_MIB",
    "DO_SPACES_BUCKET",
    "DO_SPACES_KEY",
    "DO_SPACES_SECRET",
)
# Every process `conveyor dev` starts, PostgreSQL included, inherits this variable, so
# leftovers can be found without trusting the code under test to list them.
MARKER = "CONVEYOR_E2E_RUN"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0

T = TypeVar("T")


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    marker: str
    api_url: str
    flower_url: str
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def flower_login(self) -> tuple[str, str]:
        found = re.search(r"Flower\s+(\S+)\s+\(user (\S+), password (\S+)\)", self.output())
        assert found, self.output()[-3000:]
        assert found.group(1) == self.flower_url
        return found.group(2), found.group(3)

    def interrupt(self) -> int:
        """Ctrl-C, and the exit code once it is done."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(STOP_TIMEOUT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _marked_processes(marker: str) -> list[int]:
    """Live processes of one run: those carrying its marker, and their children (PostgreSQL
    rewrites its children's environment area with their process titles)."""
    needle = f"{MARKER}={marker}".encode()
    marked: set[int] = set()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # `pid (comm) state ppid ...`; comm may hold spaces, so split after the ")".
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
            if state == "Z":
                continue
            parents[int(entry.name)] = int(ppid)
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                marked.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return sorted(marked | {pid for pid, ppid in parents.items() if ppid in marked})


def _eventually(check: Callable[[], T | None], timeout: float, what: str, dev: Dev) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.TransportError as exc:  # what the stack printed says why
            pytest.fail(f"{what}: {exc!r}; conveyor dev printed:\n{dev.output()[-4000:]}")
        if result is not None:
            return result
        if dev.proc.poll() is not None:
            pytest.fail(f"conveyor dev exited while waiting for {what}:\n{dev.output()[-4000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {what} within {timeout:.0f}s:\n{dev.output()[-4000:]}")


@contextmanager
def conveyor_dev(data_dir: Path) -> Iterator[Dev]:
    env = {name: value for name, value in os.environ.items() if name not in CONFIGURED}
    marker = uuid.uuid4().hex
    env[MARKER] = marker
    # This checkout, whatever the state of the venv's install.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    api_port, flower_port = _free_port(), _free_port()
    proc = subprocess.Popen(  # noqa: S603
        [str(CONVEYOR), "dev", "--data-dir", str(data_dir)]
        + ["--port", str(api_port), "--flower-port", str(flower_port)],
        # Away from the checkout: a developer's .env must not configure this run.
        cwd=data_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    dev = Dev(proc, marker, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}")
    assert proc.stdout is not None
    reader = threading.Thread(target=_read_into, args=(proc.stdout, dev.lines), daemon=True)
    reader.start()
    try:
        _eventually(
            lambda: True if "Press Ctrl-C to stop." in dev.output() else None,
            START_TIMEOUT,
            "start-up banner",
            dev,
        )
        yield dev
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Whatever the outcome, nothing of this run outlives the test.
        for pid in _marked_processes(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _read_into(stream: IO[str], lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)


def _login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _finished_job(client: httpx.Client, headers: dict[str, str], job_id: str, dev: Dev) -> Any:
    def check() -> Any:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    return _eventually(check, 30, f"end of job {job_id}", dev)


def _assert_stops_cleanly(dev: Dev) -> None:
    assert dev.interrupt() == 0, dev.output()[-4000:]
    deadline = time.monotonic() + 5
    while (left := _marked_processes(dev.marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in left]
    assert not left, f"still running after Ctrl-C: {commands}"


def _assert_flower_shows(dev: Dev, login: tuple[str, str], job_ids: list[str]) -> None:
    """Flower answers only with the printed login, and shows the worker and the jobs' tasks
    (the task id is the job id)."""
    with httpx.Client(base_url=dev.flower_url, timeout=10) as flower:
        assert flower.get("/").status_code == 401
        assert flower.get("/api/workers").status_code == 401
        assert flower.get("/metrics").status_code == 401
        assert flower.get("/api/workers", auth=(login[0], "wrong")).status_code == 401

        def workers() -> dict[str, Any] | None:
            response = flower.get("/api/workers", params={"refresh": 1}, auth=login)
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found if len(found) == 4 else None

        # The worker (default and uploads queues), the agents, system and webhooks workers.
        found = _eventually(workers, 20, "the four workers in Flower", dev)
        names = sorted(name.partition("@")[0] for name in found)
        assert names == ["agents", "celery", "system", "webhooks"]

        def tasks_succeeded() -> dict[str, Any] | None:
            response = flower.get("/api/tasks", auth=login)
            assert response.status_code == 200, response.text
            tasks: dict[str, Any] = response.json()
            states = {tasks.get(job_id, {}).get("state") for job_id in job_ids}
            return tasks if states == {"SUCCESS"} else None

        tasks = _eventually(tasks_succeeded, 20, "the jobs as succeeded tasks in Flower", dev)
        assert {tasks[job_id]["name"] for job_id in job_ids} == {
            "diagnostics.echo.run",
            "diagnostics.sleep.run",
        }


def _reset_password_by_outbox(api: httpx.Client, data_dir: Path, email: str, dev: Dev) -> str:
    """With no SMTP server, the reset email lands in the outbox (and the worker log), and
    its code, kept in the SQL key-value store, resets the password."""
    response = api.post("/api/v1/auth/password-reset/request", json={"email": email})
    assert response.status_code == 202, response.text

    def code_in_outbox() -> str | None:
        for mail in (data_dir / "outbox").glob("*.eml"):
            if email in (text := mail.read_text()) and (
                found := re.search(r"reset code is (\d+)", text)
            ):
                return found.group(1)
        return None

    code = _eventually(code_in_outbox, 30, "the reset email in the outbox", dev)
    # The worker logs the email as it writes it: the line may follow the file.
    _eventually(lambda: True if code in dev.output() else None, 10, "the email's log line", dev)
    new_password = "a brand new password"
    response = api.post(
        "/api/v1/auth/password-reset/confirm",
        json={"email": email, "code": code, "new_password": new_password},
    )
    assert response.status_code == 204, response.text
    return new_password


def _upload_on_local_disk(api: httpx.Client, headers: dict[str, str], dev: Dev) -> None:
    """An upload goes to local disk and is processed by the embedded worker."""
    data = b"# Notes\n\nStored on local disk.\n"
    response = api.post(
        "/api/v1/uploads", headers=headers, files={"file": ("notes.md", data, "text/plain")}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    job = _finished_job(api, headers, created["job"]["id"], dev)
    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == "markdown"
    content = api.get(f"/api/v1/uploads/{created['upload']['id']}/content", headers=headers)
    assert content.content == data


def test_conveyor_dev_runs_everything_embedded_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    email, password = f"dev-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"

    with conveyor_dev(data_dir) as dev, httpx.Client(base_url=dev.api_url, timeout=10) as api:
        response = api.post("/api/v1/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        headers = _login(api, email, password)

        submitted = {}
        for kind, data in (("diagnostics.echo", {"a": 1}), ("diagnostics.sleep", {"seconds": 3})):
            response = api.post("/api/v1/jobs", json={"kind": kind, "input": data}, headers=headers)
            assert response.status_code == 202, response.text
            submitted[kind] = response.json()["id"]
        echo = _finished_job(api, headers, submitted["diagnostics.echo"], dev)
        sleep = _finished_job(api, headers, submitted["diagnostics.sleep"], dev)
        assert echo["status"] == "succeeded", echo
        assert echo["result"] == {"a": 1}
        assert sleep["status"] == "succeeded", sleep
        assert sleep["result"]["slept_seconds"] >= 3

        login = dev.flower_login()
        _assert_flower_shows(dev, login, list(submitted.values()))
        password = _reset_password_by_outbox(api, data_dir, email, dev)
        headers = _login(api, email, password)
        _upload_on_local_disk(api, headers, dev)

        assert (data_dir / SECRET_KEY_FILE).stat().st_mode & 0o077 == 0
        _assert_stops_cleanly(dev)

    with conveyor_dev(data_dir) as again, httpx.Client(base_url=again.api_url, timeout=10) as api:
        # Same SECRET_KEY: the token from the first run still works.
        assert api.get("/api/v1/users/me", headers=headers).status_code == 200
        headers = _login(api, email, password)
        job = api.get(f"/api/v1/jobs/{submitted['diagnostics.echo']}", headers=headers).json()
        assert job["status"] == "succeeded"
        assert job["result"] == {"a": 1}
        assert again.flower_login() == login
        _assert_stops_cleanly(again)
