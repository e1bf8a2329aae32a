"""What an upload reads: a path, bytes or an open binary file, counted as it is sent."""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Called with the bytes sent so far and the total.
Progress = Callable[[int, int], None]
FileInput = str | os.PathLike[str] | bytes | BinaryIO
CHUNK_BYTES = 64 * 1024


class CountingReader(io.RawIOBase):
    """A file that reports how much of it has been read; httpx reads it in chunks."""

    def __init__(self, raw: BinaryIO, size: int, on_progress: Progress | None) -> None:
        self._raw = raw
        self._size = size
        self._start = raw.tell()
        self._on_progress = on_progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        if self._on_progress is not None and chunk:
            self._on_progress(self.tell(), self._size)
        return chunk

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def tell(self) -> int:
        return self._raw.tell() - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self._start
        return self._raw.seek(offset, whence) - self._start


@dataclass(frozen=True)
class Source:
    filename: str
    content_type: str
    size: int
    reader: CountingReader

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.reader.read(CHUNK_BYTES):
            yield chunk


@contextmanager
def source(
    file: FileInput,
    filename: str | None,
    content_type: str | None,
    on_progress: Progress | None,
) -> Iterator[Source]:
    if isinstance(file, bytes):
        raw: BinaryIO = io.BytesIO(file)
        opened = False
    elif isinstance(file, str | os.PathLike):
        path = Path(file)
        raw = path.open("rb")
        filename = filename or path.name
        opened = True
    else:
        raw = file
        filename = filename or Path(str(getattr(file, "name", "") or "upload")).name
        opened = False
    try:
        start = raw.tell()
        size = raw.seek(0, io.SEEK_END) - start
        raw.seek(start)
        name = filename or "upload"
        guessed = mimetypes.guess_type(name)[0]
        kind = content_type or guessed or "application/octet-stream"
        yield Source(name, kind, size, CountingReader(raw, size, on_progress))
    finally:
        if opened:
            raw.close()
