"""The Procfile as docs/deployment.md runs it: `honcho`, from the files the image holds,
on real PostgreSQL, Redis and an S3 server, with exactly the settings the document says
production requires. The bucket is made by docker compose's `bucket` command, the schema
by the release step; then every long-running process starts, a job and an upload
succeed over HTTP, and Flower answers only with its login. Compose runs the same
commands (test_deploy_files.py), so this is what `docker compose up` runs too."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import psutil
import pytest
import redis

from tests.e2e.deploy_files import (
    COMPOSE_REQUIRED,
    REPO,
    build_image_tree,
    compose,
    heredoc_settings,
    image_env,
    image_path,
    procfile,
    service_command,
)
from tests.support import services
from tests.support.s3 import FAKE_KEY, FAKE_SECRET, REGION, MotoS3Server, new_bucket_name
from tests.support.smtp import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DOCS = REPO / "docs" / "deployment.md"
# The settings production requires of a Procfile deployment (the storage ones for any
# S3-compatible service other than AWS's own): the run below gets these and no others.
PROCFILE_REQUIRED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "FLOWER_BASIC_AUTH",
    "DO_SPACES_BUCKET",
    "DO_SPACES_KEY",
    "DO_SPACES_SECRET",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "S3_ADDRESSING_STYLE",
)
RELEASE = "honcho run alembic upgrade head"
# honcho gives each process type its own PORT: the base, then 100 more per type.
PORT_STEP = 100
FLOWER_LOGIN = ("admin", "flower-" + uuid.uuid4().hex[:12])
STARTUP_SECONDS = 90
# honcho's line when a process exits; it then stops all the others.
STOPPED = re.compile(r"system\s*\|\s*\S+ stopped")

T = TypeVar("T")


def _start_command() -> list[str]:
    """`honcho start` with every process but the release step, in the Procfile's order."""
    return ["honcho", "start", *(name for name in procfile() if name != "release")]


def test_the_document_shows_these_commands_and_names_these_settings() -> None:
    text = DOCS.read_text()
    assert RELEASE in text
    assert " ".join(_start_command()) in text
    bucket = service_command(compose(COMPOSE_REQUIRED)["services"]["bucket"])
    assert bucket[2] in text, "the bucket command for Procfile platforms"
    for name in PROCFILE_REQUIRED:
        assert f"`{name}`" in text, name
    # The .env the document has honcho users write sets what this run sets.
    assert set(PROCFILE_REQUIRED) in heredoc_settings(text)


def _free_base_port(offsets: list[int]) -> int:
    """A base port such that base + each offset is free right now (the servers listen
    on all addresses)."""
    for _ in range(200):
        base = free_port()
        if base + max(offsets) > 65535:
            continue
        try:
            for offset in offsets:
                with socket.socket() as probe:
                    probe.bind(("0.0.0.0", base + offset))  # noqa: S104
        except OSError:
            continue
        return base
    pytest.fail("no free set of ports")


@contextmanager
def _redis_server(data_dir: Path) -> Iterator[str]:
    """A Redis of this test's own: the processes under test consume the Celery queues,
    which a shared database would share with other tests' workers."""
    binary = shutil.which("redis-server")
    if binary is None:
        services.unavailable("redis-server is not installed")
    assert binary is not None
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _eventually(check: Callable[[], T | None], timeout: float, what: str, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result is not None:
            return result
        if STOPPED.search(log.read_text()):
            pytest.fail(f"a process stopped while waiting for {what}:\n{log.read_text()[-6000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {what} within {timeout:.0f}s:\n{log.read_text()[-6000:]}")


def _run(argv: list[str], app: Path, env: dict[str, str]) -> None:
    done = subprocess.run(  # noqa: S603
        argv, cwd=app, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """Ctrl-C to honcho, which stops every process; then nothing of it may be left."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    code = None
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    assert not alive, f"left running: {[child.cmdline() for child in alive]}"
    return code


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The image's files and, in its working folder, a .env with the required settings
    pointing at this test's own database, Redis and S3 server."""
    stage = build_image_tree(tmp_path / "image")
    app = image_path(tmp_path / "image", stage.workdir)
    with (
        services.postgres_server(tmp_path) as server,
        _redis_server(tmp_path) as redis_url,
        MotoS3Server() as s3,
    ):
        database_url = services.create_database(server)
        settings = {
            "SECRET_KEY": "k" * 48,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN),
            "DO_SPACES_BUCKET": new_bucket_name(),
            "DO_SPACES_KEY": FAKE_KEY,
            "DO_SPACES_SECRET": FAKE_SECRET,
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "S3_REGION": REGION,
            "S3_ADDRESSING_STYLE": "path",
        }
        assert set(settings) == set(PROCFILE_REQUIRED)
        (app / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        try:
            yield app, image_env(tmp_path / "image", stage, tmp_path)
        finally:
            services.drop_database(server, database_url)


def test_procfile_runs_under_honcho_as_documented(
    deployment: tuple[Path, dict[str, str]],
) -> None:
    app, env = deployment
    settings = dict(line.split("=", 1) for line in (app / ".env").read_text().splitlines())
    s3 = boto3.client(
        "s3",
        endpoint_url=settings["S3_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_SECRET,
    )

    # The bucket, by the command docker compose's `bucket` service runs.
    bucket = service_command(compose(COMPOSE_REQUIRED)["services"]["bucket"])
    _run(["honcho", "run", *bucket], app, env)
    s3.head_bucket(Bucket=settings["DO_SPACES_BUCKET"])
    # The release step, as a one-off.
    assert procfile()["release"] == RELEASE.removeprefix("honcho run ")
    _run(RELEASE.split(), app, env)

    start = _start_command()
    # web's PORT is the base; flower's is 100 more per process type started before it.
    web, flower = (PORT_STEP * start[2:].index(name) for name in ("web", "flower"))
    base = _free_base_port([web, flower])
    api_url = f"http://127.0.0.1:{base + web}"
    flower_url = f"http://127.0.0.1:{base + flower}"
    log = app.parent / "honcho.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            start,
            cwd=app,
            env={**env, "PORT": str(base)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=api_url, timeout=10) as api:
            _eventually(
                lambda: api.get("/healthz").status_code == 200 or None,
                STARTUP_SECONDS,
                "API",
                log,
            )
            ready = api.get("/readyz")
            assert ready.status_code == 200, ready.text
            # The web process tells no one which server software answers.
            assert "server" not in ready.headers
            _job_and_upload_succeed(
                api, settings["S3_ENDPOINT_URL"], settings["DO_SPACES_BUCKET"], log
            )
        _flower_answers_only_with_its_login(flower_url, log)
        assert proc.poll() is None, log.read_text()[-6000:]
        output = log.read_text()
        assert not STOPPED.search(output), output[-6000:]
    finally:
        code = _stop(proc)
    output = log.read_text()
    for name in start[2:]:
        assert f"{name}.1 " in output, f"{name} never ran:\n{output[-6000:]}"
    assert code is not None, output[-6000:]


def _job_and_upload_succeed(api: httpx.Client, s3_endpoint: str, bucket: str, log: Path) -> None:
    email, password = f"deploy-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    response = api.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    response = api.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def finished(job_id: str) -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    response = api.post(
        "/api/v1/jobs", json={"kind": "diagnostics.echo", "input": {"a": 1}}, headers=headers
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = _eventually(lambda: finished(job_id), 60, "end of the echo job", log)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"a": 1}

    data = b"# Notes\n\nStored in S3.\n"
    response = api.post(
        "/api/v1/uploads", headers=headers, files={"file": ("notes.md", data, "text/plain")}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    upload_job_id = created["job"]["id"]
    job = _eventually(lambda: finished(upload_job_id), 60, "end of the upload's job", log)
    assert job["status"] == "succeeded", job
    # The download is a presigned URL on the configured storage.
    content = api.get(f"/api/v1/uploads/{created['upload']['id']}/content", headers=headers)
    assert content.status_code == 307, content.text
    location = content.headers["location"]
    assert location.startswith(f"{s3_endpoint}/{bucket}/"), location
    assert httpx.get(location, timeout=10).content == data


def _flower_answers_only_with_its_login(flower_url: str, log: Path) -> None:
    with httpx.Client(base_url=flower_url, timeout=10) as flower:
        # What compose's health check asks, with the login.
        _eventually(
            lambda: flower.get("/healthcheck", auth=FLOWER_LOGIN).status_code == 200 or None,
            STARTUP_SECONDS,
            "Flower",
            log,
        )
        for page in ("/", "/api/workers", "/metrics", "/healthcheck"):
            assert flower.get(page).status_code == 401, page
        assert "flower_events_total" in flower.get("/metrics", auth=FLOWER_LOGIN).text
        assert flower.get("/api/workers", auth=(FLOWER_LOGIN[0], "wrong")).status_code == 401

        def workers() -> list[str] | None:
            response = flower.get("/api/workers", params={"refresh": 1}, auth=FLOWER_LOGIN)
            assert response.status_code == 200, response.text
            names = sorted(name.partition("@")[0] for name in response.json())
            return names if len(names) == 4 else None

        found = _eventually(workers, 30, "the four workers in Flower", log)
        assert found == ["agents", "celery", "system", "webhooks"]
