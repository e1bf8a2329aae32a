"""The README's quickstart runs as pasted: its first bash block, verbatim, under
`bash -euo pipefail` against `conveyor dev` with nothing configured (what `make dev`
starts), with the virtualenv's `conveyor` on PATH (as after `. .venv/bin/activate`),
and prints what the README shows after it, ids and times aside."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown import REPO, Block, fenced_blocks, read, section
from tests.e2e.test_embedded_default import conveyor_dev
from tests.support import services

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc"),
]

SCRIPT_TIMEOUT = 120.0
# What differs from run to run.
_VARIABLE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"ada\+\d+@"), "ada+<n>@"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<clock>"),
]


def quickstart() -> tuple[Block, Block]:
    """The first bash block under "## Quickstart", and the text block after it."""
    blocks = fenced_blocks(section(read(REPO / "README.md"), "Quickstart"))
    langs = [block.lang for block in blocks]
    assert "bash" in langs, "README.md: no ```bash block under ## Quickstart"
    at = langs.index("bash")
    assert langs[at + 1 : at + 2] == ["text"], "README.md: no ```text output after the quickstart"
    return blocks[at], blocks[at + 1]


def normalised(text: str) -> list[str]:
    for pattern, replacement in _VARIABLE:
        text = pattern.sub(replacement, text)
    return text.strip().splitlines()


def test_the_quickstart_sets_every_variable_it_uses() -> None:
    """Static, so it fails fast and says which: `$NAME` used before a line sets it."""
    script, _ = quickstart()
    assigned: set[str] = set()
    for number, line in enumerate(script.body.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code))
        # ${NAME:-default} reads an optional variable from the environment.
        optional = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-", code))
        # jq's own variables ($email in '{$email}') live in single-quoted jq programs.
        quoted = " ".join(re.findall(r"'[^']*'", code))
        jq = set(re.findall(r"\$(\w+)", quoted))
        unset = used - assigned - optional - jq - {"RANDOM"}
        assert not unset, f"quickstart line {number} uses {sorted(unset)} before setting it"
        assigned |= set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", code))


def test_the_quickstart_runs_as_pasted(tmp_path: Path) -> None:
    for tool in ("bash", "jq"):
        if shutil.which(tool) is None:
            services.unavailable(f"the quickstart needs {tool}")
    script, expected = quickstart()
    shell = tmp_path / "shell"
    shell.mkdir()
    with conveyor_dev(tmp_path / "data") as dev:
        # A clean shell: the user's curl and shell settings stay out of it.
        path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
        env = {"PATH": path, "HOME": str(shell), "LC_ALL": "C.UTF-8"}
        env["CONVEYOR_URL"] = dev.api_url
        try:
            ran = subprocess.run(  # noqa: S603
                ["bash", "-euo", "pipefail", "-c", script.body],  # noqa: S607
                cwd=shell,
                env=env,
                capture_output=True,
                text=True,
                timeout=SCRIPT_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the quickstart did not finish in {SCRIPT_TIMEOUT:.0f}s: {exc.stdout!r}")
        assert ran.returncode == 0, (
            f"the quickstart failed (exit {ran.returncode})\n--- stdout\n{ran.stdout}"
            f"\n--- stderr\n{ran.stderr}\n--- conveyor dev\n{dev.output()[-4000:]}"
        )
    shown, printed = normalised(expected.body), normalised(ran.stdout)
    assert printed == shown, "the quickstart prints something else than README.md shows:\n" + (
        "\n".join(difflib.unified_diff(shown, printed, "README.md", "printed", lineterm=""))
    )
