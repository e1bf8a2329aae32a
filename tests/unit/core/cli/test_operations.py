from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_dev_without_the_dev_tooling_says_so() -> None:
    # The production image leaves core/dev out; `conveyor dev` must say why it cannot run.
    code = (
        "import sys; sys.modules['core.dev'] = None; "
        "from core.cli import main; sys.exit(main(['dev']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "dev tooling" in result.stderr
