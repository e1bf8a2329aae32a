"""PDF: pages and text, encrypted and broken files; and extraction within its bounds: a
few kilobytes of PDF must not become tens of megabytes of text or hold a worker for
minutes. Past a bound, the job keeps what it read and says the text is truncated."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

from tests.support.processing import failure, run
from worker.jobs.uploads_process import pdf
from worker.jobs.uploads_process.pdf import Bounds


def make_pdf(words: list[str], **encryption: str) -> bytes:
    doc = FPDF()
    doc.set_title("Quarterly Report")
    doc.set_author("Zoë Writer")
    doc.set_font("helvetica", size=14)
    if encryption:
        doc.set_encryption(**encryption)  # type: ignore[arg-type]
    for number, word in enumerate(words, start=1):
        doc.add_page()
        doc.cell(text=f"Page {number} says {word}")
    return bytes(doc.output())


def test_pdf(tmp_path: Path) -> None:
    words = ["aardvark", "butterfly", "crocodile"]
    processed, recorder = run(tmp_path, "report.pdf", make_pdf(words))
    assert processed.kind == "pdf"
    summary = processed.summary
    assert summary["pages"] == 3
    assert summary["metadata"]["title"] == "Quarterly Report"
    assert summary["metadata"]["author"] == "Zoë Writer"
    assert summary["metadata"]["created"].startswith("20")  # ISO 8601
    assert summary["pages_failed"] == []
    assert summary["pages_without_text"] == 0
    assert [fraction for fraction, _ in recorder.calls] == pytest.approx([1 / 3, 2 / 3, 1])
    [derived] = processed.derived
    assert (derived.name, derived.content_type) == ("text.txt", "text/plain; charset=utf-8")
    extracted = derived.path.read_text(encoding="utf-8")
    assert all(word in extracted for word in words)
    assert extracted.count("\f") == 2  # one page after another
    assert summary["characters"] == len(extracted) - 2


def test_pdf_encrypted_for_permissions_only_opens(tmp_path: Path) -> None:
    data = make_pdf(["secret"], owner_password="owner")
    processed, _ = run(tmp_path, "locked.pdf", data)
    assert "secret" in processed.derived[0].path.read_text(encoding="utf-8")


def test_pdf_with_a_password_is_unsupported(tmp_path: Path) -> None:
    data = make_pdf(["secret"], owner_password="owner", user_password="user")
    assert failure(tmp_path, "locked.pdf", data).startswith("unsupported_file: ")


def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    data = make_pdf(["one", "two", "three"])
    error = failure(tmp_path, "cut.pdf", data[: len(data) // 2])
    assert error.startswith("corrupt_file: Could not read the PDF")


# Bounds.


def _pdf(streams: list[bytes], page_streams: list[int]) -> bytes:
    """A minimal PDF: `streams` deflated, page i showing stream `page_streams[i]`."""
    font = 3
    first_stream = 4
    first_page = first_stream + len(streams)
    kids = " ".join(f"{first_page + i} 0 R" for i in range(len(page_streams)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(page_streams)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for content in streams:
        data = zlib.compress(content, 9)
        header = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data)
        objects.append(header + data + b"\nendstream")
    for index in page_streams:
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
            % (font, first_stream + index)
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _blocks(text: bytes, count: int) -> bytes:
    """`count` text blocks of `text`, one per line of the page."""
    return b"".join(b"BT /F1 10 Tf 40 %d Td (%s) Tj ET\n" % (780 - i, text) for i in range(count))


def _process(
    tmp_path: Path, data: bytes, bounds: Bounds | None = None
) -> tuple[dict[str, Any], str]:
    source = tmp_path / "in.pdf"
    source.write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    result = pdf.process(source, work, lambda _fraction, _message: None, bounds or Bounds())
    return result.summary, (work / pdf.TEXT_NAME).read_text(encoding="utf-8")


def test_one_giant_stream_shared_by_every_page_is_not_extracted(tmp_path: Path) -> None:
    # About 20 KB of PDF; extracted as it was, 60,000,002 bytes of text.
    giant = b"BT /F1 12 Tf 72 720 Td (" + b"A" * 20_000_000 + b") Tj ET"
    data = _pdf([giant], [0, 0, 0])
    assert len(data) < 64 * 1024

    summary, text = _process(tmp_path, data)

    assert summary["pages"] == 3
    assert summary["text_truncated"] is True
    assert summary["pages_truncated"] == [1, 2, 3]
    assert text == "\f\f"


def test_a_token_heavy_stream_is_cut_short(tmp_path: Path) -> None:
    tokens = b"BT /F1 12 Tf 72 720 Td " + b"(A) Tj " * 3_000_000 + b"ET"

    summary, text = _process(tmp_path, _pdf([tokens], [0, 0, 0]))

    assert summary["text_truncated"] is True
    assert summary["pages_truncated"] == [1, 2, 3]
    assert len(text) <= 2 + 3 * Bounds().page_chars


def test_a_page_keeps_its_text_up_to_the_page_bound(tmp_path: Path) -> None:
    page = _blocks(b"x" * 99, 50)  # 5,000 characters in 50 blocks

    summary, text = _process(tmp_path, _pdf([page], [0]), Bounds(page_chars=1000))

    assert summary["pages_truncated"] == [1]
    assert summary["text_truncated"] is True
    assert 0 < len(text) <= 1000
    assert set(text.replace("\n", "")) == {"x"}


def test_reading_stops_at_the_document_bound(tmp_path: Path) -> None:
    pages = [_blocks(b"%d" % n * 100, 1) for n in range(1, 6)]  # 100 characters each

    summary, text = _process(tmp_path, _pdf(pages, [0, 1, 2, 3, 4]), Bounds(text_chars=250))

    assert summary["text_truncated"] is True
    assert summary["characters"] <= 250
    assert summary["pages_truncated"] == [3]
    assert text.count("\f") == 2  # pages 4 and 5 were not read


def test_pages_past_the_page_count_bound_are_left_out(tmp_path: Path) -> None:
    pages = [_blocks(b"page%d" % n, 1) for n in range(1, 6)]

    summary, text = _process(tmp_path, _pdf(pages, [0, 1, 2, 3, 4]), Bounds(pages=2))

    assert summary["pages"] == 5
    assert summary["text_truncated"] is True
    assert summary["pages_truncated"] == []
    assert "page1" in text
    assert "page2" in text
    assert "page3" not in text


def test_an_ordinary_pdf_is_read_whole(tmp_path: Path) -> None:
    pages = [_blocks(b"Hello from page %d" % n, 3) for n in (1, 2)]

    summary, text = _process(tmp_path, _pdf(pages, [0, 1]))

    assert summary["text_truncated"] is False
    assert summary["pages_truncated"] == []
    assert text.count("Hello from page 1") == 3
    assert text.count("Hello from page 2") == 3
