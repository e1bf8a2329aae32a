"""The file `make bench-upload` sends, and the multipart/form-data body that carries it
to the api, read from disk as it is sent."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.bench.failures import BenchError
from tests.bench.output import MIB

# What the client hands httpx at a time; large enough that the client's Python overhead
# per byte is small next to the api's.
CLIENT_CHUNK = MIB
# Fixed, and long enough that random file bytes will not contain it.
BOUNDARY = "conveyor-bench-upload-3b9e41c07d5a4f26a8d1"
FILENAME = "bench.bin"


@dataclass(frozen=True)
class BenchFile:
    path: Path
    size: int
    sha256: str


def make_file(path: Path, size: int) -> BenchFile:
    """Random bytes, so nothing on the way can compress them; written a chunk at a time
    so the bench never holds the file in memory."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(MIB, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return BenchFile(path, size, digest.hexdigest())


def multipart_envelope() -> tuple[bytes, bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{FILENAME}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


async def multipart_body(
    file: BenchFile, head: bytes, tail: bytes, sent: list[float]
) -> AsyncIterator[bytes]:
    """The body read from disk as it is sent. httpx's `files=` would stream an open file
    too, 64 KiB at a time; this says when the first byte went and sends larger chunks.
    httpcore starts iterating the body once the request headers are written."""
    sent.append(time.perf_counter())
    yield head
    with file.path.open("rb") as source:
        remaining = file.size
        while remaining:
            chunk = source.read(min(CLIENT_CHUNK, remaining))
            if not chunk:
                raise BenchError(f"{file.path} is shorter than {file.size} bytes")
            remaining -= len(chunk)
            yield chunk
    yield tail
