"""Object storage on local disk: the embedded default (dev and test), no servers.

An object lives at `root/<key>`; its content type at `root/.meta/<key>` (keys have no
segment starting with ".", so that tree never meets an object). Every write goes to a
temp file in the target's own folder, is flushed to disk and then renamed into place, so
a reader sees the old object or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO, BinaryIO

from core.storage import (
    Chunk,
    ObjectInfo,
    PresignedRequest,
    StorageError,
    check_key,
    check_prefix,
    check_presign,
    os_storage_error,
)

logger = logging.getLogger(__name__)

# Temp files start with "." too: never a key, and skipped when counting objects.
TEMP_PREFIX = ".tmp-"
META_DIR = ".meta"


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        """Where the object lives; ValueError for a key that would leave the root."""
        check_key(key)
        path = self.root.joinpath(*key.split("/"))
        # check_key already refuses "..", absolute paths and backslashes; this also
        # refuses a symlink inside the root that points out of it.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the storage root")
        return path

    def _meta_of(self, key: str) -> Path:
        return self.root.joinpath(META_DIR, *key.split("/"))

    def open_sink(self, key: str, content_type: str) -> _LocalSink:
        target = self.path_of(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        except OSError as exc:
            raise os_storage_error("write", key, exc, not_found=False) from exc
        return _LocalSink(self, key, content_type, Path(temp), os.fdopen(fd, "wb"))

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        target = self.path_of(key)
        self._write(key, target, content_type, lambda file: file.write(data))
        return ObjectInfo(key, len(data), content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        target = self.path_of(key)

        def copy(file: IO[bytes]) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, file, 1 << 20)

        size = self._write(key, target, content_type, copy)
        return ObjectInfo(key, size, content_type)

    def move(self, source: str, target: str, content_type: str) -> ObjectInfo:
        source_path, target_path = self.path_of(source), self.path_of(target)
        try:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source_path, target_path)
            size = target_path.stat().st_size
            self._meta_of(source).unlink(missing_ok=True)
        except OSError as exc:
            raise os_storage_error("move", source, exc) from exc
        self._write_meta(target, content_type)
        return ObjectInfo(target, size, content_type)

    def download(self, key: str, path: Path) -> ObjectInfo:
        source_path = self.path_of(key)
        content_type = self._content_type(key)
        try:
            source = source_path.open("rb")
        except OSError as exc:
            raise os_storage_error("download", key, exc) from exc
        with source:
            try:
                size = _replace_atomically(
                    path, lambda file: shutil.copyfileobj(source, file, 1 << 20)
                )
            except OSError as exc:
                # The object is there; the destination is what failed.
                raise os_storage_error("download", key, exc, not_found=False) from exc
        return ObjectInfo(key, size, content_type)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Generator[bytes, None, None]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        path = self.path_of(key)
        try:
            # Opened now, so a missing object raises before the caller starts a response.
            file = path.open("rb")
        except OSError as exc:
            raise os_storage_error("read", key, exc) from exc
        return _stream(key, file, chunk_size)

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path_of(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise os_storage_error("head", key, exc) from exc
        if not path.is_file():
            return None
        return ObjectInfo(key, stat.st_size, self._content_type(key))

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        parts = prefix[:-1].split("/")
        folder = self.root.joinpath(*parts)
        try:
            count = sum(
                1 for _, _, files in os.walk(folder) for name in files if not name.startswith(".")
            )
            _remove_tree(folder)
            _remove_tree(self.root.joinpath(META_DIR, *parts))
        except OSError as exc:
            raise os_storage_error("delete", prefix, exc) from exc
        return count

    # No URLs to sign on local disk: the API offers its own signed upload endpoint and
    # streams downloads. The arguments are checked as S3Storage checks them.
    def presign_put(
        self,
        key: str,
        size: int,
        content_type: str,  # noqa: ARG002 - part of the Storage interface
        expires_seconds: int,
    ) -> PresignedRequest | None:
        check_key(key)
        check_presign(expires_seconds)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        return None

    def presign_get(
        self,
        key: str,
        expires_seconds: int,
        filename: str | None,  # noqa: ARG002 - part of the Storage interface
        content_type: str | None,  # noqa: ARG002 - part of the Storage interface
    ) -> str | None:
        check_key(key)
        check_presign(expires_seconds)
        return None

    def ensure_bucket(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_storage_error("create storage folder", None, exc) from exc

    def ping(self) -> None:
        # A real write: a read-only mount still passes os.access checks on some systems.
        try:
            if not self.root.is_dir():
                raise StorageError(f"storage folder {str(self.root)!r} does not exist")
            with tempfile.TemporaryFile(dir=self.root, prefix=TEMP_PREFIX) as probe:
                probe.write(b"ok")
        except OSError as exc:
            raise os_storage_error("write to storage folder", None, exc) from exc

    def _content_type(self, key: str) -> str | None:
        try:
            meta = json.loads(self._meta_of(key).read_bytes())
        except (OSError, ValueError):
            # Metadata is a convenience; without it the object is still readable.
            return None
        content_type = meta.get("content_type") if isinstance(meta, dict) else None
        return content_type if isinstance(content_type, str) else None

    def _write(
        self, key: str, target: Path, content_type: str, fill: Callable[[IO[bytes]], object]
    ) -> int:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            return _replace_atomically(
                target, fill, before_rename=lambda: self._write_meta(key, content_type)
            )
        except OSError as exc:
            raise os_storage_error("write", key, exc, not_found=False) from exc

    def _write_meta(self, key: str, content_type: str) -> None:
        # Called once the new data is on disk and just before it is renamed into place:
        # a write that fails leaves the old object's type alone, and a reader that finds
        # the new object finds its type too.
        meta = self._meta_of(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"content_type": content_type}).encode()
        _replace_atomically(meta, lambda file: file.write(data))

    def _commit(self, key: str, temp: Path, content_type: str) -> None:
        target = self.path_of(key)
        self._write_meta(key, content_type)
        os.replace(temp, target)
        _fsync_dir(target.parent)


class _LocalSink:
    def __init__(
        self, storage: LocalStorage, key: str, content_type: str, temp: Path, file: BinaryIO
    ) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        self._temp = temp
        self._file = file
        self._size = 0
        self._done: ObjectInfo | None = None
        self._closed = False

    def write(self, chunk: Chunk) -> None:
        self._check_open()
        try:
            self._file.write(chunk)
        except OSError as exc:
            self._fail()
            raise os_storage_error("write", self._key, exc, not_found=False) from exc
        self._size += len(chunk)

    def complete(self) -> ObjectInfo:
        if self._done is not None:
            return self._done
        self._check_open()
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._storage._commit(self._key, self._temp, self._content_type)
        except OSError as exc:
            self._fail()
            raise os_storage_error("write", self._key, exc, not_found=False) from exc
        self._closed = True
        self._done = ObjectInfo(self._key, self._size, self._content_type)
        return self._done

    def abort(self) -> None:
        if self._done is not None:
            return
        self._closed = True
        self._fail()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the upload was completed, aborted or failed")

    def _fail(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._file.close()
        try:
            self._temp.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not remove temp file %s: %s", self._temp, exc)


def _stream(key: str, file: BinaryIO, chunk_size: int) -> Generator[bytes, None, None]:
    with file:
        while True:
            try:
                chunk = file.read(chunk_size)
            except OSError as exc:
                raise os_storage_error("read", key, exc) from exc
            if not chunk:
                return
            yield chunk


def _replace_atomically(
    target: Path,
    fill: Callable[[IO[bytes]], object],
    before_rename: Callable[[], None] | None = None,
) -> int:
    """Write a temp file beside `target` with `fill`, flush it to disk and rename it over
    `target`; return its size. The temp file is gone afterwards, whatever happened."""
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
            size = file.tell()
        if before_rename is not None:
            before_rename()
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return size


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable. Some file systems refuse to sync a folder; the
    # data is synced already, so that only costs durability of the name after a crash.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_tree(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
