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
