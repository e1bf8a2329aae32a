"""The `conveyor` command run as a user runs it: a process of its own, with a home and
a config folder of its own, talking to an API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.worker import BIN

CONVEYOR = str(BIN / "conveyor")


class Cli:
    def __init__(self, url: str, home: Path, **env: str) -> None:
        self.home = home
        self.config = home / ".config"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(self.config),
            "CONVEYOR_URL": url,
            "LANG": "C.UTF-8",
            **env,
        }

    @property
    def login_file(self) -> Path:
        return self.config / "conveyor" / "login.json"

    def stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = json.loads(self.login_file.read_text())
        return stored

    def run(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CONVEYOR, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str) -> Any:
        """The `--json` answer of a command that must succeed."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return json.loads(result.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CONVEYOR, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def log_in(self, email: str, password: str) -> None:
        result = self.run("login", "--email", email, "--password-stdin", input=password + "\n")
        assert result.returncode == 0, result.stderr
