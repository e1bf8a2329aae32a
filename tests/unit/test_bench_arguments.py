from __future__ import annotations

import pytest

from tests.bench.__main__ import main


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
        main(["upload", *args])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "args", "named"),
    [
        ("pipeline", ["--rounds", "0"], "--rounds"),
        ("fairness", ["--noisy-jobs", "0"], "--noisy-jobs"),
        ("fairness", ["--job-seconds", "-1"], "--job-seconds"),
        ("fairness", ["--database-name", "test"], "--database-name"),
    ],
)
def test_the_other_benches_refuse_bad_arguments_before_starting_anything(
    command: str, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, *args])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
