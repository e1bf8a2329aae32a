"""`conveyor jobs watch` while its API is killed and restarted: it says it is
reconnecting, then goes on where it stopped, printing no event twice."""

from __future__ import annotations

import re
from pathlib import Path

from core.client import Client
from tests.support.api_server import RestartableApi
from tests.support.cli import Cli
from tests.support.factories import User
from tests.support.worker import WorkerProcess


def test_a_watch_survives_an_api_restart_without_repeating_an_event(
    api_env: dict[str, str], tmp_path: Path, user: User, worker: WorkerProcess
) -> None:
    api = RestartableApi(api_env, tmp_path)
    try:
        cli = Cli(api.url, tmp_path)
        cli.log_in(user.email, user.password)
        with Client(api.url, token=user.token) as client:
            job = client.jobs.submit("diagnostics.sleep", {"seconds": 5})
        watch = cli.popen("jobs", "watch", str(job.id))
        assert watch.stdout is not None
        lines = []
        for line in watch.stdout:  # a line per event: stdout is a pipe
            lines.append(line)
            if " progress " in line:
                break
        api.restart()
        rest, stderr = watch.communicate(timeout=120)
        lines += rest.splitlines(keepends=True)

        assert watch.returncode == 0, (lines, stderr)
        assert "reconnecting" in stderr
        seqs = [int(m.group(1)) for line in lines if (m := re.match(r"#(\d+) ", line))]
        assert seqs == list(range(1, len(seqs) + 1))
        assert any("succeeded (attempt 1)" in line for line in lines)
    finally:
        api.stop()
