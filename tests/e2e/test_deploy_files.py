"""docker-compose.yml, the Dockerfile and the Procfile agree: compose runs the Procfile's
commands, refuses to start without what it requires, hands every process the settings
production requires (storage on its own MinIO, whose bucket is made before the app
starts), and the image holds what those commands need but neither the dev tooling nor
the tests. No Docker engine is needed: the files are read the way their tools read
them, and what they run is run by test_deploy_paths.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.settings import Environment, S3AddressingStyle, Settings
from core.storage import open_storage
from core.storage.s3 import S3Storage
from tests.e2e.deploy_files import (
    COMPOSE_REQUIRED,
    REPO,
    ComposeError,
    build_image_tree,
    compose,
    dockerfile_runtime_stage,
    heredoc_settings,
    image_env,
    image_path,
    interpolate,
    procfile,
    procfile_argv,
    service_command,
    service_env,
)

# Procfile process -> the compose service that runs the same command, and the port
# compose gives it where the Procfile says ${PORT:-n}.
SERVICE_OF = {
    "release": "migrate",
    "web": "api",
    "worker": "worker",
    "agents": "agents",
    "system": "system",
    "webhooks": "webhooks",
    "beat": "beat",
    "flower": "flower",
}
# Services that run the app image and must be able to reach everything it needs.
APP_SERVICES = (
    "bucket",
    "migrate",
    "api",
    "worker",
    "agents",
    "system",
    "webhooks",
    "beat",
    "flower",
)
LONG_RUNNING = ("api", "worker", "agents", "system", "webhooks", "beat", "flower")
DOCS = REPO / "docs" / "deployment.md"


def _compose() -> dict[str, Any]:
    return compose(COMPOSE_REQUIRED)


def test_compose_refuses_to_start_without_each_required_setting() -> None:
    _compose()  # all of them: fine
    for name in COMPOSE_REQUIRED:
        env = {key: value for key, value in COMPOSE_REQUIRED.items() if key != name}
        with pytest.raises(ComposeError, match=name):
            compose(env)
        with pytest.raises(ComposeError, match=name):
            compose({**env, name: ""})


def test_interpolation_reads_compose_syntax() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET}-$SET-$$SET", env) == "x--x-$SET"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${UNSET:-${SET:-y}} ${UNSET:-${ALSO:-y}}", env) == "x y"
    assert interpolate("${SET:+alt} ${EMPTY:+alt}|", env) == "alt |"
    with pytest.raises(ComposeError, match="UNSET: say so"):
        interpolate("${UNSET:?say so}", env)


def test_compose_runs_the_procfile_commands() -> None:
    services = _compose()["services"]
    processes = procfile()
    assert set(processes) == set(SERVICE_OF), "a Procfile process compose does not run"
    for process, command in processes.items():
        service = services[SERVICE_OF[process]]
        container_port = _container_port(service)
        assert service_command(service) == procfile_argv(command, container_port), process
    # The image's default command is the Procfile's web, on the port it exposes.
    stage = dockerfile_runtime_stage()
    assert stage.cmd == procfile_argv(processes["web"], 8000)
    assert service_command(services["api"]) == stage.cmd


def _container_port(service: dict[str, Any]) -> int | None:
    ports = service.get("ports", [])
    return int(str(ports[0]).rsplit(":", 1)[1]) if ports else None


def _clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the service's environment may configure the settings read below."""
    fields = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in fields:
            monkeypatch.delenv(name)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_gives_each_app_service_what_production_requires(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _compose()["services"]
    service = services[name]
    env = service_env(service)
    _clear_settings_env(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # As the process reads them in its container (no .env there: .dockerignore).
    settings = Settings(_env_file=None)
    assert settings.environment is Environment.PRODUCTION
    assert urlsplit(settings.sqlalchemy_url()).hostname == "postgres"
    assert urlsplit(settings.celery_broker_url()).hostname == "redis"
    assert isinstance(open_storage(settings), S3Storage)

    # Storage is the minio service, spoken to the way MinIO needs, with its credentials.
    minio = services["minio"]
    endpoint = urlsplit(settings.s3_endpoint_url or "")
    assert (endpoint.hostname, endpoint.port) == ("minio", 9000)
    assert service_command(minio)[:1] == ["server"]
    assert settings.s3_addressing_style is S3AddressingStyle.PATH
    minio_env = service_env(minio)
    assert settings.do_spaces_key is not None
    assert settings.do_spaces_secret is not None
    assert settings.do_spaces_key.get_secret_value() == minio_env["MINIO_ROOT_USER"]
    assert settings.do_spaces_secret.get_secret_value() == minio_env["MINIO_ROOT_PASSWORD"]
    assert settings.do_spaces_bucket
    if name == "flower":
        assert env["FLOWER_BASIC_AUTH"] == COMPOSE_REQUIRED["FLOWER_BASIC_AUTH"]


def test_compose_storage_can_point_elsewhere() -> None:
    """With Spaces (or S3) in .env, the app and the bucket service use it, not MinIO."""
    spaces = {
        "S3_ENDPOINT_URL": "https://nyc3.digitaloceanspaces.com",
        "S3_REGION": "nyc3",
        "S3_ADDRESSING_STYLE": "auto",
        "DO_SPACES_BUCKET": "my-bucket",
        "DO_SPACES_KEY": "spaces-key",
        "DO_SPACES_SECRET": "spaces-secret",
    }
    services = compose({**COMPOSE_REQUIRED, **spaces})["services"]
    for name in APP_SERVICES:
        env = service_env(services[name])
        assert {key: env[key] for key in spaces} == spaces, name


def test_compose_makes_the_bucket_before_the_app_starts() -> None:
    services = _compose()["services"]
    minio = services["minio"]
    image = minio["image"]
    assert ":" in image, "pin MinIO's image"
    assert not image.endswith(":latest"), "pin MinIO's image"
    assert minio["healthcheck"]["test"], "the bucket service waits for a healthy MinIO"
    assert any(str(volume).endswith(":/data") for volume in minio["volumes"])

    bucket = services["bucket"]
    assert bucket["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert bucket["restart"] == "no"
    # It runs the app's own code: test_deploy_paths runs the same command against S3.
    assert service_command(bucket)[:2] == ["python", "-c"]
    assert "ensure_bucket()" in service_command(bucket)[2]

    for name in LONG_RUNNING:
        depends_on = services[name]["depends_on"]
        for once in ("migrate", "bucket"):
            assert depends_on[once] == {"condition": "service_completed_successfully"}, name
        for server in ("postgres", "redis"):
            assert depends_on[server] == {"condition": "service_healthy"}, name
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_image_holds_what_the_commands_need_but_not_dev_tooling_or_tests(
    tmp_path: Path,
) -> None:
    stage = build_image_tree(tmp_path)
    app = image_path(tmp_path, stage.workdir)
    assert stage.env["PYTHONPATH"] == stage.workdir
    for needed in ("Procfile", "alembic.ini", "migrations/env.py", "api/main.py"):
        assert (app / needed).is_file(), needed
    assert (app / "worker" / "app.py").is_file()
    assert not (app / "core" / "dev").exists(), "the dev tooling is in the image"
    assert not (app / "tests").exists()
    assert not list(app.rglob("__pycache__"))
    assert not (app / ".env").exists()

    env = image_env(tmp_path, stage, tmp_path / "scratch")
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util, core; "
            "print(core.__file__); print(importlib.util.find_spec('core.dev'))",
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    core_file, dev_spec = where.stdout.split()
    assert Path(core_file).is_relative_to(app), "not the image's code"
    # Checked before running `conveyor dev`, which would start the whole dev stack.
    assert dev_spec == "None", "core.dev is importable"
    dev = subprocess.run(
        ["conveyor", "dev"], cwd=app, env=env, capture_output=True, text=True, timeout=60
    )
    assert dev.returncode == 2, dev.stdout + dev.stderr
    assert "dev tooling (core/dev) is not installed here" in dev.stderr


def test_deployment_doc_names_the_required_settings_and_shows_the_commands() -> None:
    text = DOCS.read_text()
    for name in COMPOSE_REQUIRED:
        assert f"`{name}`" in text, name
    assert "docker compose up -d --build" in text
    # The .env the document has compose users write sets what compose requires.
    assert set(COMPOSE_REQUIRED) in heredoc_settings(text)
    assert "cp .env.example .env" in text
