"""PDF: page count, document metadata and the text of every page.

The text goes to a derived `text.txt` (UTF-8, pages separated by form feeds, as
pdftotext does), written page by page so a long document never sits in memory whole.

Extraction is bounded: a few kilobytes of PDF can hold millions of characters (one
deflated content stream shared by every page) or operators that cost seconds each. Past
a bound the text is cut where it got to and the result says so (`text_truncated`,
`pages_truncated`); the job still succeeds with what was read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pypdf import DocumentInformation, PageObject, PasswordType, PdfReader
from pypdf.errors import LimitReachedError

from core.uploads.extracted_text import EXTRACTED_TEXT_NAME
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import UNSUPPORTED, describe, is_file_fault, reading
from worker.jobs.uploads_process.results import Derived, Processed, Progress

TEXT_NAME = EXTRACTED_TEXT_NAME
METADATA_CHARS = 500
MAX_FAILED_LISTED = 100


# Bounds on extraction. A dense page of prose holds about 5,000 characters in a content
# stream of a few tens of kilobytes; pypdf parses a stream at a few megabytes a second
# before it extracts anything, so the bytes bound the time spent parsing.
@dataclass(frozen=True)
class Bounds:
    pages: int = 5000
    page_chars: int = 200_000
    text_chars: int = 10_000_000
    page_content_bytes: int = 4 * 1024 * 1024
    # Summed over the pages read: many pages may share one large stream.
    content_bytes: int = 64 * 1024 * 1024
    page_seconds: float = 10.0
    text_seconds: float = 300.0


# Operators that show text: their string operands are what a page's text is made of.
_SHOW_TEXT = frozenset({b"Tj", b"TJ", b"'", b'"'})


class _PageBudgetSpent(Exception):
    """Raised from pypdf's visitor to stop a page's extraction."""


def process(path: Path, work_dir: Path, progress: Progress, bounds: Bounds = Bounds()) -> Processed:
    text_path = work_dir / TEXT_NAME
    # An open file, not the path: given a path, pypdf reads the whole file into memory.
    with path.open("rb") as file:
        with reading("Could not read the PDF", path):
            reader = PdfReader(file)
            if reader.is_encrypted:
                _decrypt(reader, path)
            pages = len(reader.pages)
        metadata = _metadata(reader)
        with text_path.open("w", encoding="utf-8", errors="replace", newline="\n") as out:
            extracted = _extract(reader, pages, out.write, progress, bounds)
    if pages and len(extracted.failed) == pages:
        raise PermanentJobError(
            "Could not read the PDF: no page's text could be extracted", type="corrupt_file"
        )
    summary: dict[str, Any] = {
        "pages": pages,
        "metadata": metadata,
        "characters": extracted.characters,
        # Pages with no text are usually scans: images of text, with nothing to extract.
        "pages_without_text": extracted.without_text,
        "pages_failed": extracted.failed[:MAX_FAILED_LISTED],
        # Text the bounds left out: pages cut short, or pages never read.
        "text_truncated": bool(extracted.truncated) or extracted.read < pages,
        "pages_truncated": extracted.truncated[:MAX_FAILED_LISTED],
    }
    derived = [Derived(TEXT_NAME, text_path, "text/plain; charset=utf-8")]
    return Processed(kind="pdf", summary=summary, derived=derived)


@dataclass
class _Extracted:
    read: int = 0
    characters: int = 0
    content_bytes: int = 0
    without_text: int = 0
    failed: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)


def _extract(
    reader: PdfReader,
    pages: int,
    write: Callable[[str], object],
    progress: Progress,
    bounds: Bounds,
) -> _Extracted:
    """Each page's text, within the bounds, written as it is read."""
    done = _Extracted()
    to_read = min(pages, bounds.pages)
    deadline = time.monotonic() + bounds.text_seconds
    for number in range(1, to_read + 1):
        spent = done.characters >= bounds.text_chars or done.content_bytes >= bounds.content_bytes
        if spent or time.monotonic() > deadline:
            break
        budget = min(bounds.page_chars, bounds.text_chars - done.characters)
        text, cut = _page_text(reader, number, done, budget, bounds)
        if cut:
            done.truncated.append(number)
        if number > 1:
            write("\f")
        write(text)
        done.read = number
        done.characters += len(text)
        done.without_text += not text.strip()
        progress(number / to_read, f"Page {number} of {pages}")
        if cut and budget < bounds.page_chars:
            break  # the document's bound, not the page's: no later page gets any
    return done


def _decrypt(reader: PdfReader, path: Path) -> None:
    """Many PDFs are encrypted only to restrict printing or copying and open with the
    empty password; one that needs a real password cannot be processed."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:
        if not is_file_fault(exc):
            raise
        raise PermanentJobError(
            f"The PDF is encrypted in a way Conveyor cannot open: {describe(exc, path)}",
            type=UNSUPPORTED,
        ) from exc
    if opened == PasswordType.NOT_DECRYPTED:
        raise PermanentJobError(
            "The PDF is password-protected; Conveyor processes only PDFs that open "
            "without a password",
            type=UNSUPPORTED,
        )


def _page_text(
    reader: PdfReader, number: int, done: _Extracted, budget: int, bounds: Bounds
) -> tuple[str, bool]:
    """The text of one page, at most `budget` characters, and whether it was cut short
    (by that, by the time bound, by a content stream too large to be text, or by pypdf's
    own limits). A page pypdf cannot make sense of is listed in `done.failed` and left
    empty, so that one odd page does not cost the text of all the others."""
    try:
        page = reader.pages[number - 1]
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        done.content_bytes += size
        if size > bounds.page_content_bytes:
            return "", True
        return _bounded_text(page, budget, bounds.page_seconds)
    except LimitReachedError:
        return "", True
    except Exception as exc:
        if not is_file_fault(exc):
            raise
        done.failed.append(number)
        return "", False


def _bounded_text(page: PageObject, budget: int, seconds: float) -> tuple[str, bool]:
    """pypdf's text of the page, or what it had reported when a bound was reached. Its
    visitors are called before each operator and for each piece of text, so a page
    stops within one operator of a bound; one operator's string is checked before
    pypdf decodes it."""
    deadline = time.monotonic() + seconds
    shown = 0
    pieces: list[str] = []
    collected = 0

    def before(operator: bytes, operands: Any, *_: Any) -> None:
        nonlocal shown
        if time.monotonic() > deadline:
            raise _PageBudgetSpent
        if operator in _SHOW_TEXT:
            shown += sum(_length(operand) for operand in operands)
            if shown > budget:
                raise _PageBudgetSpent

    def text(piece: str, *_: Any) -> None:
        nonlocal collected
        if collected < budget:
            pieces.append(piece[: budget - collected])
            collected += len(pieces[-1])

    try:
        full = page.extract_text(visitor_operand_before=before, visitor_text=text)
    except _PageBudgetSpent:
        return "".join(pieces), True
    if len(full) > budget:
        return full[:budget], True
    return full, False


def _length(operand: object) -> int:
    """Characters an operand of a text-showing operator can show (a TJ array's strings)."""
    if isinstance(operand, str | bytes):
        return len(operand)
    if isinstance(operand, list):
        return sum(_length(item) for item in operand)
    return 0


def _metadata(reader: PdfReader) -> dict[str, str | None]:
    """Title, author, creator, producer and creation date; odd or missing values are
    None, never a failure."""
    info = _safely(lambda: reader.metadata)
    if not isinstance(info, DocumentInformation):
        info = DocumentInformation()
    fields = {
        "title": _safely(lambda: info.title),
        "author": _safely(lambda: info.author),
        "creator": _safely(lambda: info.creator),
        "producer": _safely(lambda: info.producer),
    }
    metadata = {name: _clean(value) for name, value in fields.items()}
    created = _safely(lambda: info.creation_date)
    metadata["created"] = created.isoformat() if isinstance(created, datetime) else None
    return metadata


def _safely(get: Callable[[], object]) -> object:
    try:
        return get()
    except Exception as exc:
        if not is_file_fault(exc):
            raise
        return None


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", "").split())[:METADATA_CHARS]
    return text or None
