"""The documents a run may read: decoded, bounded, paged and searched."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from core.storage.local import LocalStorage
from core.uploads.extracted_text import UploadText
from worker.jobs.agents_run import library
from worker.jobs.agents_run.library import PAGE_CHARS, Document, Library


def test_text_is_decoded_with_its_encoding_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("doc", "Crème brûlée, señor. ".encode("cp1252") * 10, "text/plain")
    source = UploadText(uuid.uuid4(), "menu.txt", "doc", "cp1252")
    document = library.load_document(storage, source)
    assert document.text.startswith("Crème brûlée, señor.")
    assert not document.truncated

    monkeypatch.setattr(library, "MAX_TEXT_CHARS", 50)
    monkeypatch.setattr(library, "READ_CHUNK", 16)
    short = library.load_document(storage, source)
    assert len(short.text) == 50
    assert short.truncated


REPORT = uuid.UUID("00000000-0000-4000-8000-000000000001")


MINUTES = uuid.UUID("00000000-0000-4000-8000-000000000002")


def two_documents() -> Library:
    return Library(
        [
            Document(REPORT, "report.txt", "Revenue grew 12 percent.\n\nThe Porto terminal opens."),
            Document(MINUTES, "minutes.md", "The board met in Lisbon.\n\nPorto was discussed."),
        ]
    )


def test_pages_cover_the_text_and_out_of_range_is_an_error() -> None:
    doc = Document(REPORT, "long.txt", "x" * (PAGE_CHARS * 2 + 1), truncated=True)
    assert doc.pages == 3
    assert len(doc.page(1)["text"]) == PAGE_CHARS
    assert doc.page(3)["text"] == "x"
    assert doc.page(3)["truncated"] is True
    assert doc.page(1)["truncated"] is False
    assert "error" in doc.page(0)
    assert "error" in doc.page(4)


def test_search_ranks_by_shared_words() -> None:
    hits = two_documents().search("board Lisbon Porto")
    assert hits[0]["upload_id"] == str(MINUTES)
    assert hits[0]["passage"] == "The board met in Lisbon."
    assert two_documents().search("a an") == []
