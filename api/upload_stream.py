"""Receiving a file from a multipart body straight into storage, in constant memory.

The body is parsed as it arrives (never spooled to disk or held whole): the file part's
bytes are hashed, counted against the size limit, and written to a storage sink one
part at a time, with the next part being read while the previous one is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from core.uploads.sniff import SNIFF_BYTES, sniff

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from core.errors import ConveyorError, ErrorCode
from core.storage import ObjectInfo, UploadSink

FILE_FIELD = "file"
# Other form fields are not used; a few KiB of them is plenty.
MAX_OTHER_FIELDS_BYTES = 64 * 1024


@dataclass
class ReceivedFile:
    filename: str | None
    declared_type: str | None
    content_type: str
    size: int
    sha256: str
    stored: ObjectInfo


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None


class _Collector:
    """Parser callbacks: they only record; the async side does the I/O."""

    def __init__(self) -> None:
        self.part: _Part | None = None
        self.file_part: _Part | None = None
        self.file_done = False
        self.chunks: list[bytes] = []
        self.other_bytes = 0
        # Set by the closing boundary: a body cut short never gets there.
        self.ended = False
        self._field = b""
        self._value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.ended = True

    def _part_begin(self) -> None:
        self.part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self.part is not None:
            self.part.headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        part = self.part
        if part is None:
            return
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace") or None
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")
        if b"content-type" in part.headers:
            declared = part.headers[b"content-type"].decode("latin-1")[:255]
            # Kept for display; control characters have no place in it (nor in the DB).
            part.content_type = "".join(ch for ch in declared if ch.isprintable()) or None
        if part.name == FILE_FIELD and self.file_part is None:
            self.file_part = part

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part is not None and self.part is self.file_part and not self.file_done:
            self.chunks.append(data[start:end])
        else:
            self.other_bytes += end - start

    def _part_end(self) -> None:
        if self.part is not None and self.part is self.file_part:
            self.file_done = True
        self.part = None


# RFC 2046 caps a boundary at 70 characters.
MAX_BOUNDARY = 70


def _malformed(reason: str) -> ConveyorError:
    return ConveyorError(
        ErrorCode.VALIDATION_FAILED,
        f"The multipart body is malformed: {reason}",
        errors=[{"field": "body", "message": reason}],
    )


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ConveyorError(
            ErrorCode.VALIDATION_FAILED,
            f"Send the file as multipart/form-data, in a part named {FILE_FIELD!r}",
            errors=[{"field": "body", "message": "not multipart/form-data"}],
        )
    return boundary


class _Writer:
    """Feeds a sink part by part: one part stored in a thread while the next arrives.

    A part is filled in place in an anonymous memory map of its full size: the kernel
    maps pages only as they are written, no reallocation ever copies a part, and
    closing the map gives its memory back to the system at once (freed heap memory
    would stay with the process)."""

    def __init__(
        self, open_sink: Callable[[str], UploadSink], part_size: int, filename: str | None
    ) -> None:
        self._open_sink = open_sink
        self._part_size = part_size
        self._filename = filename
        self.sink: UploadSink | None = None
        self.content_type: str | None = None
        self.head = bytearray()
        self.buffer: mmap.mmap | None = None
        self.filled = 0
        self._pending: asyncio.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        view = memoryview(chunk)
        while view:
            if self.buffer is None:
                self.buffer = mmap.mmap(-1, self._part_size)
            taken = min(len(view), self._part_size - self.filled)
            self.buffer[self.filled : self.filled + taken] = view[:taken]
            self.filled += taken
            view = view[taken:]
            if self.filled == self._part_size:
                await self._flush()

    async def _flush(self) -> None:
        await self.wait()
        if self.sink is None:
            # Sniffing a crafted head can take a while: not on the event loop.
            self.content_type = await run_in_threadpool(sniff, bytes(self.head), self._filename)
            self.sink = await run_in_threadpool(self._open_sink, self.content_type)
        if self.buffer is not None:
            part, filled = self.buffer, self.filled
            self.buffer, self.filled = None, 0
            # A task, so the part is stored while the next one is read from the client.
            self._pending = asyncio.ensure_future(self._store(self.sink, part, filled))

    async def _store(self, sink: UploadSink, part: mmap.mmap, filled: int) -> None:
        try:
            if filled == self._part_size:
                # A whole part, handed over as it is: the sink sends it without a copy.
                await run_in_threadpool(sink.write, part)
            else:
                with memoryview(part)[:filled] as view:
                    await run_in_threadpool(sink.write, view)
        finally:
            part.close()

    async def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def finish(self) -> tuple[str, ObjectInfo]:
        await self._flush()
        await self.wait()
        assert self.sink is not None
        assert self.content_type is not None
        return self.content_type, await run_in_threadpool(self.sink.complete)

    async def abort(self) -> None:
        # The abort matters more than whatever failed before it.
        with contextlib.suppress(Exception):
            await self.wait()
        if self.buffer is not None:
            self.buffer.close()
            self.buffer = None
        if self.sink is not None:
            await run_in_threadpool(self.sink.abort)


async def receive_file(
    body: AsyncIterator[bytes],
    content_type: str | None,
    open_sink: Callable[[str], UploadSink],
    *,
    max_bytes: int,
    part_size: int,
) -> ReceivedFile:
    """Stream the `file` part of a multipart body into a sink opened with the sniffed
    content type. Over `max_bytes`: 413 at once, the sink aborted, nothing kept."""
    collector = _Collector()
    boundary = boundary_of(content_type)
    if len(boundary) > MAX_BOUNDARY:
        raise _malformed("the boundary is longer than 70 characters")
    parser = MultipartParser(boundary, collector.callbacks())
    sha = hashlib.sha256()
    size = 0
    writer: _Writer | None = None
    try:
        async for chunk in body:
            try:
                parser.write(chunk)
            except ParseError as exc:
                raise _malformed(str(exc)) from exc
            if collector.other_bytes > MAX_OTHER_FIELDS_BYTES:
                raise ConveyorError(ErrorCode.PAYLOAD_TOO_LARGE, "Too much besides the file")
            if collector.file_part is not None and writer is None:
                writer = _Writer(open_sink, part_size, collector.file_part.filename)
            for data in collector.chunks:
                size += len(data)
                if size > max_bytes:
                    raise ConveyorError(
                        ErrorCode.PAYLOAD_TOO_LARGE,
                        f"The file may be at most {max_bytes} bytes",
                        max_bytes=max_bytes,
                    )
                sha.update(data)
                assert writer is not None
                await writer.add(data)
            collector.chunks.clear()
        try:
            parser.finalize()
        except ParseError as exc:
            raise _malformed(str(exc)) from exc
        if not collector.ended:
            raise _malformed("the body ended before the closing boundary")
        if writer is None or collector.file_part is None:
            raise ConveyorError(
                ErrorCode.NO_FILE, f"The body has no part named {FILE_FIELD!r} with a file"
            )
        if size == 0:
            raise ConveyorError(ErrorCode.EMPTY_FILE)
        sniffed, stored = await writer.finish()
    except ClientDisconnect as exc:
        if writer is not None:
            await writer.abort()
        raise ConveyorError(ErrorCode.BAD_REQUEST, "The client went away mid-upload") from exc
    except BaseException:
        if writer is not None:
            await writer.abort()
        raise
    part = collector.file_part
    return ReceivedFile(
        filename=part.filename,
        declared_type=part.content_type,
        content_type=sniffed,
        size=size,
        sha256=sha.hexdigest(),
        stored=stored,
    )
