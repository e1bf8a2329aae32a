"""The `conveyor` commands in a real terminal (a pty), as a person sees them: the
password prompt, the live progress bar, and how the screen is left at the end and on
Ctrl-C."""

from __future__ import annotations

import io
from pathlib import Path

import pexpect

from core.client import Client
from tests.support.api_server import ApiServer
from tests.support.cli import CONVEYOR, Cli
from tests.support.factories import User
from tests.support.processes import eventually
from tests.support.worker import WorkerProcess

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _spawn(cli: Cli, *args: str) -> tuple[pexpect.spawn[str], io.StringIO]:
    screen = io.StringIO()
    child = pexpect.spawn(
        CONVEYOR,
        list(args),
        env={**cli.env, "TERM": "xterm-256color"},
        encoding="utf-8",
        dimensions=(30, 120),
        timeout=60,
    )
    child.logfile_read = screen
    return child, screen


def _ended(child: pexpect.spawn[str]) -> int | None:
    child.expect(pexpect.EOF)
    child.close()
    status: int | None = child.exitstatus
    return status


def _log_in_at_the_prompt(cli: Cli, user: User) -> None:
    child, screen = _spawn(cli, "login", "--email", user.email)
    child.expect("Password: ")
    child.sendline(user.password)
    assert _ended(child) == 0, screen.getvalue()
    assert user.password not in screen.getvalue()  # not echoed


def test_a_job_is_watched_with_a_live_bar_that_ends_cleanly(
    api: ApiServer, tmp_path: Path, user: User, worker: WorkerProcess
) -> None:
    cli = Cli(api.url, tmp_path)
    _log_in_at_the_prompt(cli, user)

    child, screen = _spawn(
        cli, "jobs", "submit", "diagnostics.sleep", "--input", '{"seconds": 3}', "--wait"
    )
    child.expect("slept 1s")  # the message of a progress event, in the bar
    child.expect("succeeded")
    assert _ended(child) == 0

    shown = screen.getvalue()
    assert "━" in shown  # the bar
    assert "100%" in shown
    assert "\x1b[32m" in shown  # and colour: green for succeeded
    assert shown.rfind(SHOW_CURSOR) > shown.rfind(HIDE_CURSOR)  # the cursor is back
    last_line = shown.rstrip().splitlines()[-1]
    assert "result" in last_line
    assert "slept_seconds" in last_line


def test_ctrl_c_in_a_terminal_cancels_and_leaves_the_screen_usable(
    api: ApiServer, tmp_path: Path, user: User, worker: WorkerProcess
) -> None:
    cli = Cli(api.url, tmp_path)
    cli.log_in(user.email, user.password)
    child, screen = _spawn(
        cli,
        "jobs",
        "submit",
        "diagnostics.sleep",
        "--input",
        '{"seconds": 60}',
        "--wait",
        "--cancel-on-interrupt",
    )
    child.expect("slept 1s")
    child.sendintr()
    assert _ended(child) == 130
    shown = screen.getvalue()
    assert "cancel requested" in shown
    assert shown.rfind(SHOW_CURSOR) > shown.rfind(HIDE_CURSOR)
    with Client(api.url, token=user.token) as client:
        job = client.jobs.list(kind="diagnostics.sleep").items[0]
        eventually(lambda: client.jobs.get(job.id).status == "cancelled" or None, 30, "cancelled")
