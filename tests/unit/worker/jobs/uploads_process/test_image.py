"""Images: a small thumbnail without metadata; pixel and memory limits checked before
decoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.support.processing import failure, peak_growth, run
from worker.jobs.uploads_process import image
from worker.jobs.uploads_process.processors import Processed


def make_image(fmt: str, size: tuple[int, int], orientation: int = 1) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0132] = "2024:01:02 10:00:00"  # DateTime
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif)
    return buffer.getvalue()


def thumbnail(processed: Processed) -> Image.Image:
    [derived] = processed.derived
    assert (derived.name, derived.content_type) == ("thumbnail.png", "image/png")
    image = Image.open(derived.path)
    image.load()
    assert image.format == "PNG"
    assert max(image.size) <= 256
    assert len(image.getexif()) == 0
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & set(image.info)
    return image


def test_png(tmp_path: Path) -> None:
    processed, _ = run(tmp_path, "picture.png", make_image("PNG", (640, 480)))
    assert processed.kind == "image"
    summary = processed.summary
    assert (summary["format"], summary["width"], summary["height"]) == ("PNG", 640, 480)
    assert (summary["mode"], summary["animated"], summary["frames"]) == ("RGB", False, 1)
    assert thumbnail(processed).size == (256, 192)
    assert summary["thumbnail"] == {"width": 256, "height": 192}


def test_jpeg_thumbnail_is_upright_and_without_exif(tmp_path: Path) -> None:
    # Orientation 6: the camera was turned; viewers show the picture 600 wide, 800 high.
    data = make_image("JPEG", (800, 600), orientation=6)
    assert Image.open(io.BytesIO(data)).getexif()[0x010F] == "CameraMaker"
    processed, _ = run(tmp_path, "photo.jpg", data)
    summary = processed.summary
    assert (summary["format"], summary["width"], summary["height"]) == ("JPEG", 800, 600)
    assert thumbnail(processed).size == (192, 256)


def test_animated_gif(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    processed, _ = run(tmp_path, "anim.gif", buffer.getvalue())
    assert (processed.summary["animated"], processed.summary["frames"]) == (True, 3)
    assert thumbnail(processed).size == (40, 30)  # never enlarged


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:40] + b"\x00" * 40 + data[80:], id="overwritten"),
    ],
)
def test_broken_png_is_corrupt(tmp_path: Path, damage: object) -> None:
    data = make_image("PNG", (64, 64))
    broken = damage(data)  # type: ignore[operator]
    error = failure(tmp_path, "broken.png", broken, "image/png")
    assert error.startswith("corrupt_file: Could not read the PNG image")


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


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    data = make_png(10_000, 6_000, rows=1)  # 60 Mpx: under Pillow's limit, over ours
    error = failure(tmp_path, "huge.png", data)
    assert error == (
        "unsupported_file: The image has more pixels (10,000 × 6,000) than Conveyor "
        "processes (50,000,000; the limit bounds the memory a decoded image takes)"
    )


def test_pixel_limit_is_on_what_is_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A JPEG is decoded at a reduced scale where the thumbnail allows: 2400 × 2000 at a
    # half, 1.2 Mpx. A PNG is decoded whole.
    monkeypatch.setattr(image, "MAX_PIXELS", 2_000_000)
    picture = Image.new("RGB", (2400, 2000), (10, 120, 200))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    processed, _ = run(tmp_path, "photo.jpg", buffer.getvalue())
    assert (processed.summary["width"], processed.summary["height"]) == (2400, 2000)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    error = failure(tmp_path, "picture.png", buffer.getvalue())
    assert error.startswith("unsupported_file: The image has more pixels (2,400 × 2,000)")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("pillow_too", [False, True])  # ours; Pillow's, at twice its own
def test_decompression_bombs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_too: bool
) -> None:
    monkeypatch.setattr(image, "MAX_PIXELS", 100)
    if pillow_too:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = make_image("PNG", (20, 20))
    error = failure(tmp_path, "bomb.png", data)
    assert error.startswith("unsupported_file: The image has more pixels")


def test_decoding_makes_no_full_size_copy(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(make_png(4000, 3000))
    decoded = 4000 * 3000 * 4 / (1 << 20)  # 46 MiB of RGBA
    outcome, grown = peak_growth(path, "image/png")
    assert outcome == "image"
    # Measured 79 MiB; with a copy for each conversion, as before, 160 and more.
    assert grown < decoded + 48


def test_progressive_jpeg_within_the_pixel_limit_can_cost_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libjpeg holds a progressive JPEG's coefficients whole: 2 bytes a pixel a component.
    monkeypatch.setattr(image, "MAX_DECODE_BYTES", 5 << 20)
    picture = Image.new("RGB", (1000, 1000), (10, 120, 200))
    for progressive, subsampling in [(False, 0), (True, 2)]:  # 0 MiB; 2.9 MiB
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", progressive=progressive, subsampling=subsampling)
        run(tmp_path, "fine.jpg", buffer.getvalue())
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", progressive=True, subsampling=0)  # 4:4:4, 5.7 MiB
    error = failure(tmp_path, "costly.jpg", buffer.getvalue())
    assert error == (
        "unsupported_file: The JPEG image (1,000 × 1,000) would take 5 MiB to decode, "
        "more than Conveyor allows (5 MiB)"
    )


def test_webp_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_image("WEBP", (300, 200))
    monkeypatch.setattr(image, "MAX_DECODE_BYTES", 300 * 200 * 16)  # less the file
    assert failure(tmp_path, "pic.webp", data).startswith(
        "unsupported_file: The WEBP image (300 × 200) would take "
    )
    monkeypatch.setattr(image, "MAX_WEBP_FILE_BYTES", len(data) - 1)
    assert failure(tmp_path, "pic.webp", data).startswith(
        "unsupported_file: WebP images larger than "
    )
