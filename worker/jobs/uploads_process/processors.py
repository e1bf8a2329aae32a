"""Turning an uploaded file into a result: the pure part of uploads.process, with no
database, storage or Celery, so that it can be tested on files.

`process` picks the processor by content type (sniffed from the bytes when the file was
uploaded). A broken file is a PermanentJobError of type corrupt_file, a type Conveyor
does not handle one of type unsupported_file; the messages name the file type and what
failed, never a server path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from worker.errors import PermanentJobError
from worker.jobs.uploads_process import csv_file, image, json_file, pdf, text
from worker.jobs.uploads_process.classify import UNSUPPORTED
from worker.jobs.uploads_process.results import Derived, Processed, Progress

__all__ = ["SUPPORTED", "Derived", "Processed", "Progress", "process"]

_Processor = Callable[[Path, Path, Progress], Processed]


def _image(content_type: str) -> _Processor:
    def run(path: Path, work_dir: Path, progress: Progress) -> Processed:
        return image.process(path, content_type, work_dir, progress)

    return run


_BY_TYPE: dict[str, _Processor] = {
    "text/plain": lambda path, _, progress: text.process_text(path, progress),
    "text/markdown": lambda path, _, progress: text.process_markdown(path, progress),
    "text/csv": lambda path, _, progress: csv_file.process(path, progress),
    "application/json": lambda path, _, progress: json_file.process(path, progress),
    "application/pdf": pdf.process,
} | {content_type: _image(content_type) for content_type in image.PILLOW_FORMATS}

SUPPORTED = frozenset(_BY_TYPE)


def process(path: Path, content_type: str, work_dir: Path, progress: Progress) -> Processed:
    """Summarise the file at `path` and write what is derived from it into `work_dir`
    (which the caller creates and removes). Derived names are fixed per kind, so a
    rerun makes the same files."""
    base = content_type.split(";", 1)[0].strip().lower()
    processor = _BY_TYPE.get(base)
    if processor is None:
        raise PermanentJobError(
            f"{base or 'A file of unknown type'} is not a type Conveyor processes: it takes "
            "PDF, PNG, JPEG, GIF and WebP images, plain text, Markdown, CSV and JSON",
            type=UNSUPPORTED,
        )
    return processor(path, work_dir, progress)
