"""The `conveyor` client commands as a script runs them (stdout a pipe): what they
print, the exit codes, the stored login, and Ctrl-C."""

from __future__ import annotations

import fcntl
import json
import signal
import stat
import time
from pathlib import Path

import pytest

from core.client import APIError, Client
from tests.support import samples
from tests.support.api_server import ApiServer
from tests.support.cli import Cli
from tests.support.factories import User, create_api_key, new_email
from tests.support.openai_server import OpenAIServer, text, tool_call
from tests.support.processes import eventually
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess


@pytest.fixture
def cli(api: ApiServer, tmp_path: Path, user: User) -> Cli:
    cli = Cli(api.url, tmp_path)
    cli.log_in(user.email, user.password)
    return cli


def _running(api: ApiServer, user: User, job_id: str) -> None:
    with Client(api.url, token=user.token) as client:
        eventually(lambda: client.jobs.get(job_id).status == "running" or None, 30, "the job runs")


def test_a_login_is_kept_private_and_used_by_every_command(
    cli: Cli, user: User, worker: WorkerProcess
) -> None:
    assert stat.S_IMODE(cli.login_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.login_file.parent.stat().st_mode) == 0o700
    assert user.password not in cli.login_file.read_text()
    assert cli.json("whoami")["email"] == user.email

    job = cli.json("jobs", "submit", "diagnostics.echo", "--input", '{"hello": "world"}', "--wait")
    assert (job["status"], job["result"]) == ("succeeded", {"hello": "world"})
    (cli.home / "input.json").write_text('{"from": "a file"}')
    queued = cli.json("jobs", "submit", "diagnostics.echo", "--input", f"@{cli.home}/input.json")
    assert queued["input"] == {"from": "a file"}
    assert cli.json("jobs", "get", job["id"])["result"] == {"hello": "world"}
    listed = cli.json("jobs", "list", "--kind", "diagnostics.echo")
    assert {j["id"] for j in listed["items"]} == {job["id"], queued["id"]}

    events = cli.run("jobs", "events", job["id"], "--json")
    seqs = [json.loads(line)["seq"] for line in events.stdout.splitlines()]
    assert seqs == [1, 2, 3]
    human = cli.run("jobs", "submit", "diagnostics.sleep", "--input", '{"seconds": 1}', "--wait")
    assert human.returncode == 0, human.stderr
    assert "succeeded" in human.stdout
    assert "%" in human.stdout  # the progress events, a line each
    assert "\x1b" not in human.stdout + human.stderr  # no colours or bars in a pipe


def test_exit_codes_say_how_it_went(
    cli: Cli, api: ApiServer, user: User, tmp_path: Path, worker: WorkerProcess
) -> None:
    pdf = samples.pdf(["one", "two"])
    (tmp_path / "cut.pdf").write_bytes(pdf[: len(pdf) // 2])
    failed = cli.run("upload", str(tmp_path / "cut.pdf"), "--wait")
    assert failed.returncode == 1, failed.stderr
    assert "job failed:" in failed.stderr

    unknown = cli.run("jobs", "submit", "no.such.kind")
    assert unknown.returncode == 2
    assert "unknown_job_kind (422)" in unknown.stderr
    not_json = cli.run("jobs", "submit", "diagnostics.echo", "--input", "{oops")
    assert not_json.returncode == 2
    assert "--input is not JSON" in not_json.stderr
    assert cli.run("jobs", "frobnicate").returncode == 2
    assert cli.json("jobs", "list", "--kind", "diagnostics.echo")["items"] == []

    sleeping = cli.json("jobs", "submit", "diagnostics.sleep", "--input", '{"seconds": 60}')
    _running(api, user, sleeping["id"])
    assert cli.json("jobs", "cancel", sleeping["id"])["cancel_requested_at"]
    watched = cli.run("jobs", "watch", sleeping["id"])
    assert watched.returncode == 1
    assert "job cancelled" in watched.stderr

    stranger = Cli(cli.env["CONVEYOR_URL"], tmp_path / "stranger")
    nobody = stranger.run("jobs", "list")
    assert nobody.returncode == 2
    assert "not logged in" in nobody.stderr


@pytest.mark.parametrize("cancel", [True, False], ids=["cancel-on-interrupt", "keep-running"])
def test_ctrl_c_exits_130_and_cancels_the_job_only_when_asked(
    cancel: bool, cli: Cli, api: ApiServer, user: User, worker: WorkerProcess
) -> None:
    args = ["jobs", "submit", "diagnostics.sleep", "--input", '{"seconds": 60}', "--wait"]
    process = cli.popen(*args, *(["--cancel-on-interrupt"] if cancel else []))
    with Client(api.url, token=user.token) as client:
        job_id = eventually(
            lambda: next(iter(client.jobs.list(kind="diagnostics.sleep").items), None),
            30,
            "the job is submitted",
        ).id
        _running(api, user, str(job_id))
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)

        assert process.returncode == 130, (stdout, stderr)
        if cancel:
            assert client.jobs.wait(job_id, timeout=30).status == "cancelled"
        else:
            assert "goes on" in stderr
            time.sleep(1)
            assert client.jobs.get(job_id).status == "running"
            client.jobs.cancel(job_id)


def test_an_expired_access_token_is_renewed_once_for_commands_running_together(
    cli: Cli, worker: WorkerProcess
) -> None:
    login = cli.stored()
    cli.login_file.write_text(json.dumps({**login, "expires_at": 0}))

    # All four find the token expired and queue on the lock the test holds; then they
    # go one at a time, and only the first renews.
    with (cli.login_file.parent / "login.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        together = [cli.popen("jobs", "list", "--json") for _ in range(4)]
        time.sleep(2)
        assert all(process.poll() is None for process in together)
        fcntl.flock(lock, fcntl.LOCK_UN)
    for process in together:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr

    renewed = cli.stored()
    assert renewed["access_token"] != login["access_token"]
    assert renewed["refresh_token"] != login["refresh_token"]
    assert renewed["expires_at"] > time.time()
    assert stat.S_IMODE(cli.login_file.stat().st_mode) == 0o600
    # One refresh among the four: a refresh token used twice would have ended the session.
    assert cli.run("jobs", "list").returncode == 0


def test_an_api_key_from_the_environment_or_a_stored_one(
    api: ApiServer, stack: Stack, user: User, tmp_path: Path, worker: WorkerProcess
) -> None:
    key = create_api_key(stack, user.personal_tenant_id, user)
    machine = Cli(api.url, tmp_path / "machine", CONVEYOR_API_KEY=key.secret)
    job = machine.json("jobs", "submit", "diagnostics.echo", "--input", '{"k": 1}', "--wait")
    assert job["result"] == {"k": 1}

    stored = Cli(api.url, tmp_path / "stored")
    assert stored.run("login", "--api-key-stdin", input=key.secret + "\n").returncode == 0
    assert stored.stored()["api_key"] == key.secret
    assert stored.json("jobs", "get", job["id"])["id"] == job["id"]
    bad = Cli(api.url, tmp_path / "bad").run("login", "--api-key-stdin", input="cvk_nope\n")
    assert bad.returncode == 2
    assert not (tmp_path / "bad" / ".config" / "conveyor" / "login.json").exists()


def test_an_upload_and_an_agent_run_are_followed_to_their_end(
    cli: Cli,
    tmp_path: Path,
    openai_server: OpenAIServer,
    worker: WorkerProcess,
    agents_worker: WorkerProcess,
) -> None:
    (tmp_path / "people.csv").write_bytes(samples.csv_text())
    uploaded = cli.run("upload", str(tmp_path / "people.csv"), "--wait")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "people.csv" in uploaded.stdout
    assert "succeeded" in uploaded.stdout
    direct = cli.json("upload", str(tmp_path / "people.csv"), "--direct")
    assert direct["upload"]["filename"] == "people.csv"

    answer = {"category": "billing", "answer": "Refunded.", "confidence": 0.9}
    openai_server.script(tool_call("transfer_to_billing", {}), text(json.dumps(answer)))
    run = cli.run("agents", "run", "triage", "--input", '{"message": "Charged twice"}', "--follow")
    assert run.returncode == 0, run.stderr
    assert "handoff triage → billing" in run.stdout
    assert "Refunded." in run.stdout


def test_register_creates_the_account_and_logout_ends_the_session(
    api: ApiServer, tmp_path: Path
) -> None:
    cli = Cli(api.url, tmp_path)
    email = new_email("cli")
    registered = cli.run("register", "--email", email, "--password-stdin", input="long enough pw\n")
    assert registered.returncode == 0, registered.stderr
    assert cli.json("whoami")["email"] == email
    refresh_token = cli.stored()["refresh_token"]

    assert cli.run("logout").returncode == 0
    assert not cli.login_file.exists()
    assert cli.run("whoami").returncode == 2
    with Client(api.url) as anonymous, pytest.raises(APIError) as ended:
        anonymous.accounts.refresh(refresh_token)
    assert ended.value.status == 401
