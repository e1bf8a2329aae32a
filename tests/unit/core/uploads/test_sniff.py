from __future__ import annotations

import codecs
import csv
import gzip
import io
import random
from typing import Any

import pytest
from PIL import Image

from core.uploads.sniff import SNIFF_BYTES, detect_encoding, sniff


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
        (_image("PNG"), "image/png"),
        (_image("JPEG"), "image/jpeg"),
        (_image("GIF"), "image/gif"),
        (_image("WEBP"), "image/webp"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
        # mtime=0: the bytes are a test id, the same in every pytest-xdist worker.
        (gzip.compress(b"hello " * 100, mtime=0), "application/gzip"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56, "application/x-executable"),
    ],
)
def test_binary_formats_by_magic(head: bytes, expected: str) -> None:
    assert sniff(head, None) == expected


def test_the_bytes_decide_not_the_name() -> None:
    assert sniff(_image("PNG"), "notes.txt") == "image/png"
    assert sniff(b"just some words\n", "photo.png") == "text/plain"
    assert sniff(b"%PDF-1.4\n", "data.csv") == "application/pdf"


def test_random_bytes_are_octet_stream() -> None:
    noise = random.Random(7).randbytes(SNIFF_BYTES)
    assert sniff(noise, "x.txt") == "application/octet-stream"
    assert sniff(b"\x00\x01\x02\x03binary\x00\x00", None) == "application/octet-stream"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Ada", "tags": ["a", "b"]}', "application/json"),
        ('  \n[1, 2, {"a": null}]', "application/json"),
        # Broken, but it opens like JSON: the JSON processor says where it breaks.
        ('{\n  "a": 1,\n  "b": \n}', "application/json"),
        ('{"a": 1}\n{"a": 2}\n', "application/json"),  # JSON Lines
        ("id,name,price\n1,apple,0.5\n2,pear,0.75\n", "text/csv"),
        ("a;b;c\n1;2,5;x\n3;4,0;y\n", "text/csv"),
        ("a\tb\n1\t2\n3\t4\n", "text/csv"),
        ("# Title\n\nSome text.\n", "text/markdown"),
        ("See [the docs](https://example.com/docs) first.\n", "text/markdown"),
        ("Shopping:\n- milk\n- bread\n", "text/markdown"),
        ("[link](http://x.y) is not JSON\n", "text/markdown"),
        ("[1]: http://example.com\n", "text/plain"),
        ("Dear reader,\nthis is a letter.\nRegards\n", "text/plain"),
        ("Well, well, well.\nYes, I know, I know.\nNo, not now, later.\n", "text/plain"),
        ("x, y\n1, 2\n3, 4\n", "text/csv"),
        ("#!/bin/sh\n# a comment\necho hi\n", "text/plain"),
        ("", "text/plain"),
    ],
)
def test_text_types_by_content(text: str, expected: str) -> None:
    assert sniff(text.encode(), None) == expected


def test_the_name_breaks_ties_between_text_types() -> None:
    table = b"| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert sniff(table, "table.md") == "text/markdown"
    assert sniff(b"a,b,c\n1,2\n", "ragged.csv") == "text/csv"
    assert sniff(b"a,b,c\n1,2\n", None) == "text/plain"
    assert sniff(b'"just a string"', "value.json") == "application/json"
    assert sniff(b'"just a string"', None) == "text/plain"
    assert sniff(b"No headings at all.\n", "notes.markdown") == "text/markdown"


def test_json_is_recognised_from_a_head_cut_mid_document() -> None:
    document = '{"items": [' + ", ".join(f'{{"id": {i}}}' for i in range(2000)) + "]}"
    assert len(document) > SNIFF_BYTES
    assert sniff(document.encode()[:SNIFF_BYTES], None) == "application/json"


def test_utf8_cut_mid_character_is_still_text() -> None:
    text = ("a" + "ü" * SNIFF_BYTES).encode()
    head = text[:SNIFF_BYTES]
    assert head[-1] >= 0xC0  # a character is cut in two at the end
    assert sniff(head, None) == "text/plain"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_text_with_a_byte_order_mark(codec: str) -> None:
    data = "name,city\nZoë,Zürich\nJosé,Málaga\n".encode(codec)
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    assert sniff(data, None) == "text/csv"


def test_legacy_encodings() -> None:
    latin1 = "Il était une fois, à côté de la forêt, où les élèves étudiaient.\n" * 5
    assert detect_encoding(latin1.encode("latin-1"), complete=True) == "cp1252"
    assert sniff(latin1.encode("latin-1"), None) == "text/plain"
    russian = "Привет, мир! Это пример текста на русском языке.\n" * 5
    assert detect_encoding(russian.encode("cp1251"), complete=True) == "cp1251"
    assert detect_encoding(b"plain ascii", complete=True) == "utf-8"
    assert detect_encoding(b"\x00\x01\x02", complete=True) is None


@pytest.mark.parametrize("head", [b',"' * (SNIFF_BYTES // 2), (b',"' * 300 + b"\n") * 13])
def test_the_csv_sniffer_reads_a_bounded_sample_of_a_crafted_file(
    head: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # csv.Sniffer is quadratic in a line's length: 8 KiB of `,"` cost a second of CPU.
    # The cost is bounded by what it is given, so that is what is checked here.
    seen: list[int] = []
    real_sniff = csv.Sniffer.sniff

    def measured(self: csv.Sniffer, sample: str, delimiters: str | None = None) -> Any:
        seen.append(len(sample))
        return real_sniff(self, sample, delimiters)

    monkeypatch.setattr(csv.Sniffer, "sniff", measured)
    assert sniff(head, "data.csv") == "text/csv"
    assert all(length <= 1024 for length in seen), seen


def test_a_wide_csv_is_still_read_as_csv() -> None:
    header = ",".join(f"column_{n}" for n in range(60)) + "\n"
    rows = "".join(",".join(str(n * row) for n in range(60)) + "\n" for row in range(40))
    assert sniff((header + rows).encode()[:SNIFF_BYTES], "wide.bin") == "text/csv"
