"""The text an agent may read: the uploads a run names, already checked to belong to
the job's tenant, split into numbered pages and searchable passages.

Kept in memory for the run, up to MAX_TEXT_CHARS per upload: a model reads a few pages,
never a gigabyte, and a bound keeps a worker's memory flat whatever was uploaded.
"""

from __future__ import annotations

import codecs
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from core.storage import Storage
from core.uploads.extracted_text import UploadText

PAGE_CHARS = 6000
MAX_TEXT_CHARS = 2_000_000
PASSAGE_CHARS = 600
MAX_HITS = 8
READ_CHUNK = 256 * 1024

_WORD = re.compile(r"\w{3,}", re.UNICODE)


@dataclass(frozen=True)
class Document:
    upload_id: uuid.UUID
    filename: str
    text: str
    # The text went on past MAX_TEXT_CHARS; the agent is told so.
    truncated: bool = False

    @cached_property
    def passages(self) -> list[tuple[str, frozenset[str]]]:
        """Each passage with its words, worked out once for every search of the run."""
        return [
            (passage, frozenset(word.lower() for word in _WORD.findall(passage)))
            for passage in _passages(self.text)
        ]

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.text) // PAGE_CHARS))

    def page(self, number: int) -> dict[str, Any]:
        if not 1 <= number <= self.pages:
            return {"error": f"page must be between 1 and {self.pages}"}
        start = (number - 1) * PAGE_CHARS
        return {
            "upload_id": str(self.upload_id),
            "filename": self.filename,
            "page": number,
            "pages": self.pages,
            "text": self.text[start : start + PAGE_CHARS],
            "truncated": self.truncated and number == self.pages,
        }


class Library:
    def __init__(self, documents: Iterable[Document]) -> None:
        self._documents = {doc.upload_id: doc for doc in documents}

    def get(self, upload_id: str | uuid.UUID) -> Document | None:
        try:
            key = upload_id if isinstance(upload_id, uuid.UUID) else uuid.UUID(upload_id)
        except ValueError:
            return None
        return self._documents.get(key)

    def outline(self) -> list[dict[str, Any]]:
        return [
            {"upload_id": str(doc.upload_id), "filename": doc.filename, "pages": doc.pages}
            for doc in self._documents.values()
        ]

    def search(self, query: str, limit: int = MAX_HITS) -> list[dict[str, str]]:
        """Passages ranked by how many of the query's words (3+ letters, any case) they
        hold; ties keep document order."""
        terms = {word.lower() for word in _WORD.findall(query)}
        if not terms:
            return []
        scored: list[tuple[int, int, Document, str]] = []
        order = 0
        for doc in self._documents.values():
            for passage, words in doc.passages:
                score = len(terms & words)
                if score:
                    scored.append((-score, order, doc, passage))
                order += 1
        scored.sort(key=lambda item: (item[0], item[1]))
        return [
            {"upload_id": str(doc.upload_id), "filename": doc.filename, "passage": passage}
            for _, _, doc, passage in scored[:limit]
        ]


def _passages(text: str) -> list[str]:
    """Paragraphs, with long ones cut into PASSAGE_CHARS pieces."""
    passages: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\f", text):
        paragraph = " ".join(paragraph.split())
        for start in range(0, len(paragraph), PASSAGE_CHARS):
            passages.append(paragraph[start : start + PASSAGE_CHARS])
    return passages


def load_document(storage: Storage, source: UploadText) -> Document:
    """Read up to MAX_TEXT_CHARS of an upload's text, decoding as processing found."""
    decoder = codecs.getincrementaldecoder(source.encoding)(errors="replace")
    parts: list[str] = []
    size = 0
    truncated = False
    chunks = storage.iter_chunks(source.key, READ_CHUNK)
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            parts.append(text)
            size += len(text)
            if size > MAX_TEXT_CHARS:
                truncated = True
                break
        else:
            parts.append(decoder.decode(b"", final=True))
    finally:
        chunks.close()
    text = "".join(parts)[:MAX_TEXT_CHARS].lstrip("\ufeff")
    return Document(source.upload_id, source.filename, text, truncated)
