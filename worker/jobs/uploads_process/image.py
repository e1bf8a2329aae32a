"""Images: format, size, mode, frames, and a PNG thumbnail with no metadata in it.

The thumbnail is always PNG, photos included: one deterministic name (thumbnail.png)
and lossless at 256 px, where PNG's size hardly matters.

Memory is bounded by what is decoded (at most MAX_PIXELS pixels, with no full-size copy
made on the way to the thumbnail), by what decoders hold besides (MAX_DECODE_BYTES), and
by the metadata Pillow reads (image_headers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from worker.errors import PermanentJobError
from worker.jobs.uploads_process import image_headers
from worker.jobs.uploads_process.classify import CORRUPT, UNSUPPORTED, is_file_fault, reading
from worker.jobs.uploads_process.results import Derived, Processed, Progress

THUMBNAIL_NAME = "thumbnail.png"
THUMBNAIL_SIZE = (256, 256)
# Decoded, an image takes up to 4 bytes a pixel (RGB is held as RGBX): at 50 Mpx that is
# 200 MB, and nothing else of that size is made on the way to the thumbnail. That takes
# in any screenshot and the photos of nearly every camera; and as a JPEG is decoded at
# down to an eighth of its size where the thumbnail allows, the limit is on what is
# decoded, so JPEG photos fit at any size Pillow opens (it refuses twice its ~89 Mpx).
# Holding to Pillow's limit alone let one upload take over 1 GB.
MAX_PIXELS = 50_000_000
# Some decoders hold more than the decoded image: libwebp keeps two canvases and a copy
# of the frame beside Pillow's (16 bytes a pixel in all, once it has read the whole
# file), and libjpeg every DCT coefficient of a progressive JPEG, or of one whose first
# scan has only some components (2 bytes a pixel a component at its sampling), however
# small the scale it decodes at. Those are refused past MAX_DECODE_BYTES.
MAX_DECODE_BYTES = 256 << 20
WEBP_BYTES_PER_PIXEL = 16
# Pillow reads a WebP file whole before it looks at the size; no WebP small enough to
# decode within MAX_DECODE_BYTES is this large.
MAX_WEBP_FILE_BYTES = 64 << 20
# The image is converted and reduced a tile of about this side at a time (see _reduced).
TILE_SIDE = 2048

# What each content type may be parsed as: Pillow is told to try only that format, so
# no other of its many decoders ever sees the bytes.
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def process(path: Path, content_type: str, work_dir: Path, progress: Progress) -> Processed:
    label = PILLOW_FORMATS[content_type]
    what = f"Could not read the {label} image"
    thumbnail_path = work_dir / THUMBNAIL_NAME
    if label == "WEBP" and path.stat().st_size > MAX_WEBP_FILE_BYTES:
        raise PermanentJobError(
            f"WebP images larger than {MAX_WEBP_FILE_BYTES >> 20} MiB are not processed",
            type=UNSUPPORTED,
        )
    with path.open("rb") as file:
        headers = image_headers.read(file, label)
    if headers.metadata > image_headers.MAX_METADATA_BYTES:
        raise PermanentJobError(
            f"The {label} image carries more than {image_headers.MAX_METADATA_BYTES >> 20} "
            "MiB of metadata (EXIF, ICC profile, comments and the like); Conveyor does not "
            "process such files",
            type=UNSUPPORTED,
        )
    with reading(what, path), _refusing_bombs():
        try:
            image = Image.open(path, formats=[label])
        except UnidentifiedImageError as exc:  # its message holds the file's path
            raise PermanentJobError(
                f"{what}: it is not a valid {label} file", type=CORRUPT
            ) from exc
    with image:
        with reading(what, path):
            summary = _describe(image)
            size = image.size
            needs = _decoder_bytes(image, path, headers)
            # JPEG decodes at a reduced scale when asked before loading: a 40-megapixel
            # photo costs a fraction of the time and memory.
            image.draft(None, (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
        if image.width * image.height > MAX_PIXELS:
            raise _too_large(size)
        if needs > MAX_DECODE_BYTES:
            raise PermanentJobError(
                f"The {label} image ({size[0]:,} × {size[1]:,}) would take {needs >> 20} "
                f"MiB to decode, more than Conveyor allows ({MAX_DECODE_BYTES >> 20} MiB)",
                type=UNSUPPORTED,
            )
        progress(0.2, "Decoding the image")
        with reading(what, path), _refusing_bombs():
            thumbnail = _thumbnail(image)
    thumbnail.save(thumbnail_path, format="PNG", optimize=True)
    summary["thumbnail"] = {"width": thumbnail.width, "height": thumbnail.height}
    derived = [Derived(THUMBNAIL_NAME, thumbnail_path, "image/png")]
    return Processed(kind="image", summary=summary, derived=derived)


def _describe(image: Image.Image) -> dict[str, Any]:
    frames = int(getattr(image, "n_frames", 1))
    return {
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "animated": bool(getattr(image, "is_animated", False)),
        "frames": frames,
    }


def _decoder_bytes(image: Image.Image, path: Path, headers: image_headers.Headers) -> int:
    """What the decoder holds while it decodes `image`, where that is more than Pillow's
    decoded image (at most MAX_PIXELS at 4 bytes, within MAX_DECODE_BYTES); else 0."""
    pixels = image.width * image.height
    if image.format == "WEBP":
        return pixels * WEBP_BYTES_PER_PIXEL + path.stat().st_size
    buffered = image.info.get("progressive") or headers.partial_scan
    if isinstance(image, JpegImageFile) and buffered:
        layers = image.layer[: image.layers]
        most_h = max((h for _, h, _, _ in layers), default=1) or 1
        most_v = max((v for _, _, v, _ in layers), default=1) or 1
        return sum(2 * pixels * h * v // (most_h * most_v) for _, h, v, _ in layers)
    return 0


def _thumbnail(image: Image.Image) -> Image.Image:
    """The first frame, upright, at most THUMBNAIL_SIZE, made anew from its pixels: a
    new image carries no EXIF, ICC profile, XMP or text chunks of the original."""
    image.load()  # decodes everything, so a truncated or broken file fails here
    scale = min(THUMBNAIL_SIZE[0] / image.width, THUMBNAIL_SIZE[1] / image.height, 1.0)
    size = (max(round(image.width * scale), 1), max(round(image.height * scale), 1))
    small, box = _reduced(image, size)
    small = small.resize(size, Image.Resampling.LANCZOS, box=box)
    transpose = _TRANSPOSE.get(_orientation(image))
    if transpose is not None:
        small = small.transpose(transpose)
    return Image.frombytes(small.mode, small.size, small.tobytes())


def _reduced(
    image: Image.Image, size: tuple[int, int]
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The loaded image shrunk by whole factors to no less than twice `size` (as
    Image.thumbnail does with reducing_gap=2), in the mode the thumbnail is made in, and
    the box in it that the image covers. A tile at a time: converting the mode (out of a
    palette, or to premultiplied alpha, which Pillow blends RGBA in) over the whole
    image at once would copy all of it."""
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    mode = "RGBA" if has_alpha else "L" if image.mode in ("1", "L") else "RGB"
    width, height = image.size
    factor_x = max(int(width / size[0] / 2), 1)
    factor_y = max(int(height / size[1] / 2), 1)
    small = Image.new(mode, (math.ceil(width / factor_x), math.ceil(height / factor_y)))
    tile_x = factor_x * max(TILE_SIDE // factor_x, 1)
    tile_y = factor_y * max(TILE_SIDE // factor_y, 1)
    for top in range(0, height, tile_y):
        for left in range(0, width, tile_x):
            box = (left, top, min(left + tile_x, width), min(top + tile_y, height))
            tile = image.crop(box).convert(mode).reduce((factor_x, factor_y))
            small.paste(tile, (left // factor_x, top // factor_y))
    return small, (0, 0, width / factor_x, height / factor_y)


# EXIF orientation -> the transpose that makes the picture upright (as ImageOps does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as exc:  # odd EXIF costs the rotation, not the thumbnail
        if not is_file_fault(exc):
            raise
        return 1
    return value if isinstance(value, int) else 1


@contextmanager
def _refusing_bombs() -> Iterator[None]:
    try:
        yield
    except Image.DecompressionBombError as exc:
        # Pillow's own check, at twice its limit and so far above ours: the size is in
        # its message only.
        raise _too_large(None) from exc


def _too_large(size: tuple[int, int] | None) -> PermanentJobError:
    pixels = "" if size is None else f" ({size[0]:,} × {size[1]:,})"
    return PermanentJobError(
        f"The image has more pixels{pixels} than Conveyor processes ({MAX_PIXELS:,}; "
        "the limit bounds the memory a decoded image takes)",
        type=UNSUPPORTED,
    )
