"""What an image holds besides pixels, measured from its headers before Pillow opens it."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.support.processing import failure, run
from worker.jobs.uploads_process import image_headers


def make_image(fmt: str, size: tuple[int, int], orientation: int = 1) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0132] = "2024:01:02 10:00:00"  # DateTime
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, rows: int | None = None, extra: bytes = b"") -> bytes:
    """An RGBA PNG of one colour, made without holding its pixels; with `rows`, only
    that many rows of image data (enough to open, not to decode). `extra`: chunks
    put after the image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    compressor = zlib.compressobj(1)
    row = bytes(1 + width * 4)
    count = height if rows is None else rows
    data = b"".join(compressor.compress(row) for _ in range(count)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data)
        + extra
        + png_chunk(b"IEND", b"")
    )


def jpeg_with(segments: bytes) -> bytes:
    """A small JPEG with `segments` put right after its start marker."""
    data = make_image("JPEG", (16, 16))
    return data[:2] + segments + data[2:]


def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def gif_with_comment(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    data = buffer.getvalue()
    blocks = b"".join(b"\xff" + b"c" * 255 for _ in range(size // 255 + 1))
    return data[:-1] + b"!\xfe" + blocks + b"\x00;"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        pytest.param(
            "meta.png",
            lambda size: make_png(8, 8, extra=png_chunk(b"prVt", bytes(size))),
            id="png-private-chunk-after-the-image",
        ),
        pytest.param(
            "meta.jpg",
            lambda size: jpeg_with(segment(0xE5, bytes(60_000)) * (size // 60_000 + 1)),
            id="jpeg-app-segments",
        ),
        pytest.param("meta.gif", gif_with_comment, id="gif-comment"),
    ],
)
def test_images_with_bulky_metadata_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, make: Callable[[int], bytes]
) -> None:
    limit = 1 << 20
    monkeypatch.setattr(image_headers, "MAX_METADATA_BYTES", limit)
    run(tmp_path, name, make(limit // 2))
    error = failure(tmp_path, name, make(limit))
    assert error.startswith("unsupported_file: The ")
    assert error.endswith(
        "image carries more than 1 MiB of metadata (EXIF, ICC profile, comments and the "
        "like); Conveyor does not process such files"
    )


@pytest.mark.parametrize(("in_scan", "partial"), [(3, False), (1, True)])
def test_jpeg_scan_of_some_components_is_seen(in_scan: int, partial: bool) -> None:
    # libjpeg then holds all the coefficients, as for a progressive JPEG.
    frame = segment(0xC0, struct.pack(">BHHB", 8, 64, 64, 3) + b"\x01\x11\x00" * 3)
    scan = segment(0xDA, bytes([in_scan]) + b"\x01\x00" * in_scan + b"\x00\x3f\x00")
    app = segment(0xE1, b"Exif\x00\x00")
    file = io.BytesIO(b"\xff\xd8" + app + frame + scan)
    metadata = len(app) - 2 + len(frame) - 2  # as a segment counts: without its marker
    assert image_headers.read(file, "JPEG") == image_headers.Headers(metadata, partial)


def test_jpeg_frame_header_spam_is_corrupt(tmp_path: Path) -> None:
    # Pillow keeps a tuple for every 3 bytes of every frame header: 30 times the file.
    frame = struct.pack(">BHHB", 8, 16, 16, 3) + b"\x01\x11\x00" * 20_000
    error = failure(tmp_path, "frames.jpg", jpeg_with(segment(0xC0, frame) * 3))
    assert error == "corrupt_file: Could not read the JPEG image: its frame header is malformed"
