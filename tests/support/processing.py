"""Running the upload processors on files, as the uploads.process handler does, minus
the database and storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.uploads.sniff import SNIFF_BYTES, sniff
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.processors import Processed, process

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> None:
        assert 0.0 <= fraction <= 1.0
        self.calls.append((fraction, message))


def run(
    tmp_path: Path, name: str, data: bytes, content_type: str | None = None
) -> tuple[Processed, Recorder]:
    """Process `data` as an upload named `name`, typed by sniffing as the API does."""
    path = tmp_path / name
    path.write_bytes(data)
    work_dir = tmp_path / "derived"
    work_dir.mkdir(exist_ok=True)
    recorder = Recorder()
    kind = content_type or sniff(data[:SNIFF_BYTES], name)
    processed = process(path, kind, work_dir, recorder)
    json.dumps(processed.summary)  # must be storable as the job's result
    for item in processed.derived:
        assert item.path.parent == work_dir
        assert item.path.is_file()
    return processed, recorder


def failure(tmp_path: Path, name: str, data: bytes, content_type: str | None = None) -> str:
    """The error type of a file that cannot be processed; its message names no path."""
    with pytest.raises(PermanentJobError) as caught:
        run(tmp_path, name, data, content_type)
    message = str(caught.value)
    assert str(tmp_path) not in message
    assert "/tmp" not in message
    assert "Traceback" not in message
    return f"{caught.value.type}: {message}"


# The peak is VmHWM, the high-water mark of the process's memory: ru_maxrss would do,
# but Linux carries it over from the parent through fork and exec, and pytest's own
# peak would hide whatever the processor takes below it.
_MEASURE = r"""
import json, re, sys
from pathlib import Path
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.processors import process

def peak_kib():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+) kB", status)[1])

path = Path(sys.argv[1])
work_dir = path.parent / "derived"
work_dir.mkdir(exist_ok=True)
before = peak_kib()
try:
    outcome = process(path, sys.argv[2], work_dir, lambda fraction, message: None).kind
except PermanentJobError as exc:
    outcome = exc.type
print(json.dumps({"outcome": outcome, "grown_mib": (peak_kib() - before) / 1024}))
"""


def peak_growth(path: Path, content_type: str) -> tuple[str, float]:
    """Process the file in a fresh interpreter: the kind (or error type) and how far the
    peak memory rose above that of the interpreter with the processors imported, in MiB."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), content_type],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    measured = json.loads(result.stdout)
    return measured["outcome"], measured["grown_mib"]
