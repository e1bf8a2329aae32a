"""What a processor hands back: the summary of a file and the files derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.uploads.keys import DERIVED_NAME

# progress(fraction, message): reports how far the work is (0..1). The job's progress is
# also where a cancelled job stops, so processors call it as their work advances.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Derived:
    """A file made from the upload, written into the work directory. The name becomes
    the last part of its storage key, so it is fixed per kind: a rerun overwrites."""

    name: str
    path: Path
    content_type: str

    def __post_init__(self) -> None:
        if not DERIVED_NAME.fullmatch(self.name):
            raise ValueError(f"derived name {self.name!r} must match {DERIVED_NAME.pattern}")


@dataclass(frozen=True)
class Processed:
    """`kind` is text, markdown, csv, json, pdf or image; `summary` is JSON-serialisable
    and its keys depend on the kind."""

    kind: str
    summary: dict[str, Any]
    derived: list[Derived]
