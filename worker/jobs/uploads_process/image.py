"""Images: format, size, mode, frames, and a PNG thumbnail with no metadata in it.

The thumbnail is always PNG, photos included: one deterministic name (thumbnail.png)
and lossless at 256 px, where PNG's size hardly matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import CORRUPT, UNSUPPORTED, is_file_fault, reading
from worker.jobs.uploads_process.results import Derived, Processed, Progress

THUMBNAIL_NAME = "thumbnail.png"
THUMBNAIL_SIZE = (256, 256)

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
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            # Pillow only warns up to twice its limit; Conveyor holds to the limit.
            raise _too_large()
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


def _thumbnail(image: Image.Image) -> Image.Image:
    """The first frame, upright, at most THUMBNAIL_SIZE, made anew from its pixels: a
    new image carries no EXIF, ICC profile, XMP or text chunks of the original."""
    # JPEG decodes at a reduced scale when asked before loading: a 40-megapixel photo
    # costs a fraction of the time and memory.
    image.draft(None, (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
    image.load()  # decodes everything, so a truncated or broken file fails here
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception as exc:  # odd EXIF costs the rotation, not the thumbnail
        if not is_file_fault(exc):
            raise
        upright = image
    has_alpha = upright.mode in _ALPHA_MODES or "transparency" in upright.info
    mode = "RGBA" if has_alpha else "L" if upright.mode in ("1", "L") else "RGB"
    small = upright.convert(mode)
    small.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    return Image.frombytes(small.mode, small.size, small.tobytes())


@contextmanager
def _refusing_bombs() -> Iterator[None]:
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise _too_large() from exc


def _too_large() -> PermanentJobError:
    return PermanentJobError(
        f"The image has more pixels than Conveyor processes ({Image.MAX_IMAGE_PIXELS:,}; "
        "the limit guards against decompression bombs)",
        type=UNSUPPORTED,
    )
