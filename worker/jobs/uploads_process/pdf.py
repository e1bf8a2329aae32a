"""PDF: page count, document metadata and the text of every page.

The text goes to a derived `text.txt` (UTF-8, pages separated by form feeds, as
pdftotext does), written page by page so a long document never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pypdf import DocumentInformation, PasswordType, PdfReader

from core.uploads.extracted_text import EXTRACTED_TEXT_NAME
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import UNSUPPORTED, describe, is_file_fault, reading
from worker.jobs.uploads_process.results import Derived, Processed, Progress

TEXT_NAME = EXTRACTED_TEXT_NAME
METADATA_CHARS = 500
MAX_FAILED_LISTED = 100


def process(path: Path, work_dir: Path, progress: Progress) -> Processed:
    text_path = work_dir / TEXT_NAME
    # An open file, not the path: given a path, pypdf reads the whole file into memory.
    with path.open("rb") as file:
        with reading("Could not read the PDF", path):
            reader = PdfReader(file)
            if reader.is_encrypted:
                _decrypt(reader, path)
            pages = len(reader.pages)
        metadata = _metadata(reader)
        characters = without_text = 0
        failed: list[int] = []
        with text_path.open("w", encoding="utf-8", errors="replace", newline="\n") as out:
            for number in range(1, pages + 1):
                text = _page_text(reader, number, failed)
                if number > 1:
                    out.write("\f")
                out.write(text)
                characters += len(text)
                without_text += not text.strip()
                progress(number / pages, f"Page {number} of {pages}")
    if pages and len(failed) == pages:
        raise PermanentJobError(
            "Could not read the PDF: no page's text could be extracted", type="corrupt_file"
        )
    summary: dict[str, Any] = {
        "pages": pages,
        "metadata": metadata,
        "characters": characters,
        # Pages with no text are usually scans: images of text, with nothing to extract.
        "pages_without_text": without_text,
        "pages_failed": failed[:MAX_FAILED_LISTED],
    }
    derived = [Derived(TEXT_NAME, text_path, "text/plain; charset=utf-8")]
    return Processed(kind="pdf", summary=summary, derived=derived)


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


def _page_text(reader: PdfReader, number: int, failed: list[int]) -> str:
    """The text of one page; a page pypdf cannot make sense of is listed in `failed`
    and left empty, so that one odd page does not cost the text of all the others."""
    try:
        return reader.pages[number - 1].extract_text()
    except Exception as exc:
        if not is_file_fault(exc):
            raise
        failed.append(number)
        return ""


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
