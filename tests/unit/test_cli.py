from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def test_flower_refuses_to_start_without_basic_auth() -> None:
    for auth in ("", "admin", "admin:"):
        result = subprocess.run(
            [CONVEYOR, "flower", "--port", "1"],
            capture_output=True,
            text=True,
            env={"FLOWER_BASIC_AUTH": auth},
            timeout=60,
        )
        assert result.returncode == 2
        assert "FLOWER_BASIC_AUTH" in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--size-mib", "0"], "--size-mib"),
        (["--repeats", "0"], "--repeats"),
        # The bench drops its database first: it must never accept one it does not own.
        (["--database-name", "postgres"], "--database-name"),
    ],
)
def test_bench_upload_refuses_bad_arguments_before_starting_anything(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench-upload", *args])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
