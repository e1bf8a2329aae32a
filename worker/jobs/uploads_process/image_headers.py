"""What an image file holds besides its pixels, measured before Pillow opens it.

Pillow reads metadata whole and keeps much of it: every JPEG APPn and COM segment,
PNG eXIf and private chunks, a GIF comment of any length, often twice over while it
joins the pieces. None of that is bounded by the image's size, so a file of a few
pixels and a gigabyte of metadata would take a worker's memory. These walks read only
the headers of segments, chunks and blocks, seeking past their data.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL.JpegImagePlugin import MARKER, SOF

from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import CORRUPT

# Far above real metadata (EXIF of tens of KiB, ICC profiles and XMP, even Google's
# extended XMP with a depth map, of a few MiB). Pillow may hold it three times over (a
# PNG with a 400 MB eXIf chunk took 1.3 GB), so this keeps that to some 50 MB.
MAX_METADATA_BYTES = 16 << 20
_SKIP_BLOCK = 64 * 1024
_JPEG_MARK = re.compile(rb"\xff")
_GIF_BLOCK = re.compile(rb"[!,;]")  # extension, image, trailer


@dataclass(frozen=True)
class Headers:
    # Bytes of metadata, counted up to a little past MAX_METADATA_BYTES.
    metadata: int
    # JPEG: the first scan holds only some of the components, so libjpeg keeps every
    # DCT coefficient of the image until the last scan, as for a progressive JPEG.
    partial_scan: bool = False


def read(file: BinaryIO, label: str) -> Headers:
    """What the image in `file` (a Pillow format name) carries besides pixels; raises
    corrupt_file for a JPEG frame header Pillow would take apart into a list as long as
    the segment."""
    file.seek(0)
    if label == "PNG":
        return Headers(_png(file))
    if label == "JPEG":
        return _jpeg(file)
    if label == "GIF":
        return Headers(_gif(file))
    return Headers(0)


def _png(file: BinaryIO) -> int:
    """The length of all chunks but image data: Pillow reads each one whole."""
    total = 0
    file.seek(8)  # the signature
    while total <= MAX_METADATA_BYTES:
        head = file.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        if kind not in (b"IDAT", b"fdAT"):
            total += length
        file.seek(length + 4, os.SEEK_CUR)  # and the CRC
    return total


def _jpeg(file: BinaryIO) -> Headers:
    """The length of the segments before the first scan, walked as Pillow walks them
    (by its own table of markers, skipping bytes that are not one); Pillow keeps the
    APPn and COM segments."""
    total = frames = components = 0
    file.seek(2)  # SOI
    while total <= MAX_METADATA_BYTES and _skip_to(file, _JPEG_MARK):
        marker = file.read(2)
        if len(marker) < 2:
            break
        code = 0xFF00 | marker[1]
        if code == 0xFFFF:  # a fill byte: the next 0xFF may start the marker
            file.seek(-1, os.SEEK_CUR)
            continue
        if code == 0xFF00:
            continue
        if code not in MARKER:  # Pillow refuses the file
            break
        handler = MARKER[code][2]
        if handler is None:  # a marker without a segment
            continue
        head = file.read(8)  # length, and of a frame header: precision, size, components
        if len(head) < 3:
            break
        length = int.from_bytes(head[:2], "big")
        if code == 0xFFDA:  # the start of the first scan, and of the image data
            return Headers(total, partial_scan=head[2] < components)
        # Pillow makes a tuple of every 3 bytes of a frame header, some 30 bytes of
        # memory a byte, and keeps those of every one; a valid file has one, of 8 bytes
        # and 3 a component (Pillow takes 1, 3 or 4), and libjpeg refuses anything else.
        if handler is SOF and len(head) == 8:
            frames += 1
            components = head[7]
            if frames > 1 or length != 8 + 3 * components:
                raise PermanentJobError(
                    "Could not read the JPEG image: its frame header is malformed",
                    type=CORRUPT,
                )
        total += length
        file.seek(max(length, 2) - len(head), os.SEEK_CUR)  # Pillow reads no less
    return Headers(total)


def _gif(file: BinaryIO) -> int:
    """The length of all extension blocks (comments, application data): Pillow joins a
    comment's sub-blocks into one string."""
    header = file.read(13)
    if len(header) < 13:
        return 0
    if header[10] & 0x80:  # a global colour table
        file.seek(3 << ((header[10] & 7) + 1), os.SEEK_CUR)
    total = 0
    while total <= MAX_METADATA_BYTES:
        kind = file.read(1)
        if not kind or kind == b";":
            break
        if kind == b"!":
            file.seek(1, os.SEEK_CUR)  # the extension's label
            total += _sub_blocks(file, MAX_METADATA_BYTES - total)
        elif kind == b",":
            descriptor = file.read(9)
            if len(descriptor) < 9:
                break
            if descriptor[8] & 0x80:  # a local colour table
                file.seek(3 << ((descriptor[8] & 7) + 1), os.SEEK_CUR)
            file.seek(1, os.SEEK_CUR)  # LZW code size
            _sub_blocks(file, None)
        else:  # Pillow skips anything else
            _skip_to(file, _GIF_BLOCK)
    return total


def _sub_blocks(file: BinaryIO, limit: int | None) -> int:
    """Skip a GIF data sequence (sized sub-blocks up to an empty one) and return its
    length, or stop once that is over `limit`."""
    total = 0
    while (size := file.read(1)) and size[0]:
        total += size[0]
        if limit is not None and total > limit:
            break
        file.seek(size[0], os.SEEK_CUR)
    return total


def _skip_to(file: BinaryIO, pattern: re.Pattern[bytes]) -> bool:
    """Move to the next match of `pattern` (one byte) in the file, if there is one."""
    while block := file.read(_SKIP_BLOCK):
        if found := pattern.search(block):
            file.seek(found.start() - len(block), os.SEEK_CUR)
            return True
    return False
