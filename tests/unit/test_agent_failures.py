from __future__ import annotations

import email.utils
import time
import uuid
from pathlib import Path

import pytest

from core.storage.local import LocalStorage
from core.uploads.extracted_text import UploadText
from worker.jobs.agents_run import library
from worker.jobs.agents_run.failures import MAX_RETRY_AFTER_SECONDS, retry_after


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "999999"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_and_bounded(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = retry_after({"retry-after": when})
    assert waited is not None
    assert 25 <= waited <= 31


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
