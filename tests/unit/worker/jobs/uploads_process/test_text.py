"""Text and Markdown: decoded with their encoding, counted in chunks, outlined."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.processing import failure, peak_growth, run
from worker.jobs.uploads_process import text


def test_utf8_text(tmp_path: Path) -> None:
    content = "Zoë's café — naïve façade\r\n日本語のテキスト\n\n  last   line"
    processed, _ = run(tmp_path, "notes.txt", content.encode())
    assert processed.kind == "text"
    assert processed.derived == []
    assert processed.summary == {
        "encoding": "utf-8",
        "lines": 4,
        "words": 8,
        "characters": len(content),
        "preview": "Zoë's café — naïve façade 日本語のテキスト last line",
        "preview_truncated": False,
    }


def test_latin1_text(tmp_path: Path) -> None:
    content = "Grüße aus Köln. Il était une fois, à côté de la forêt.\n" * 40
    processed, _ = run(tmp_path, "legacy.txt", content.encode("latin-1"))
    summary = processed.summary
    assert summary["encoding"] in {"cp1252", "iso8859-1"}
    assert summary["lines"] == 40
    assert summary["preview"].startswith("Grüße aus Köln. Il était une fois, à côté")
    assert len(summary["preview"]) == text.PREVIEW_CHARS
    assert summary["preview_truncated"] is True


def test_counts_do_not_depend_on_where_chunks_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    pieces = ["word", "mot", "слово", "語", " ", "  ", "\t", "\n", "\r\n", "\r"]
    content = "".join(rng.choice(pieces) for _ in range(5000)) + "end"
    monkeypatch.setattr(text, "CHUNK_CHARS", 7)
    processed, _ = run(tmp_path, "chunky.txt", content.encode(), "text/plain")
    assert processed.summary["characters"] == len(content)
    assert processed.summary["words"] == len(content.split())
    assert processed.summary["lines"] == len(content.splitlines())


def test_text_that_stops_decoding_midway_is_corrupt(tmp_path: Path) -> None:
    data = b"plain ascii line\n" * 5000 + b"and then \xff\xfe garbage\n"
    assert len(data) > text.SAMPLE_BYTES  # the sample saw only ASCII
    error = failure(tmp_path, "log.txt", data, "text/plain")
    assert error.startswith("corrupt_file: Could not read the text file as utf-8")
    assert "0xff" in error


def test_binary_data_sent_as_text_is_corrupt(tmp_path: Path) -> None:
    noise = random.Random(1).randbytes(4096)
    error = failure(tmp_path, "data.txt", noise, "text/plain")
    assert error.startswith("corrupt_file: The text file does not decode as text")


@pytest.mark.parametrize("chunk", [1 << 20, 5, 1])
def test_markdown_outline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(text, "CHUNK_CHARS", chunk)
    content = (
        "---\ntitle: front matter\n---\n"
        "# Conveyor\n\nIntro with a [link](https://example.com).\n\n"
        "Setup\n=====\n\n```sh\n# a shell comment, not a heading\n```\n\n"
        "## Usage ##\n- one\n- two\n\nNotes\n-----\n#hashtag is not a heading\n### Last"
    )
    processed, _ = run(tmp_path, "README.md", content.encode())
    assert processed.kind == "markdown"
    summary = processed.summary
    assert summary["headings"] == 5
    assert summary["first_headings"] == [
        {"level": 1, "text": "Conveyor"},
        {"level": 1, "text": "Setup"},
        {"level": 2, "text": "Usage"},
        {"level": 2, "text": "Notes"},
        {"level": 3, "text": "Last"},
    ]
    assert summary["lines"] == content.count("\n") + 1


@pytest.mark.parametrize(
    ("content_type", "kind"), [("text/plain", "text"), ("text/markdown", "markdown")]
)
def test_one_endless_line_is_read_in_chunks(tmp_path: Path, content_type: str, kind: str) -> None:
    path = tmp_path / "endless.txt"
    with path.open("wb") as file:
        for _ in range(64):
            file.write(b"x" * (1 << 20))
    outcome, grown = peak_growth(path, content_type)
    assert outcome == kind
    assert grown < 24  # MiB: a few chunks, never the 64 MiB line
