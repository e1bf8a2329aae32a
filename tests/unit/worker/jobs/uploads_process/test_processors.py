"""`process`: the processor chosen by content type, and files no processor takes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.processing import failure
from worker.jobs.uploads_process.processors import Derived


def test_random_bytes_are_unsupported(tmp_path: Path) -> None:
    noise = random.Random(5).randbytes(10_000)
    error = failure(tmp_path, "mystery.bin", noise)
    assert error.startswith(
        "unsupported_file: application/octet-stream is not a type Conveyor processes"
    )


def test_zip_is_unsupported(tmp_path: Path) -> None:
    error = failure(tmp_path, "archive.zip", b"PK\x03\x04" + b"\x00" * 100)
    assert error.startswith("unsupported_file: application/zip is not a type")


def test_derived_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="derived name"):
        Derived("../Thumbnail.PNG", tmp_path / "x", "image/png")
