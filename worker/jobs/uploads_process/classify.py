"""Turning a parser's exception into a job error the uploader can act on.

Parsers fail in many ways (pypdf, Pillow, csv and json each have their own exceptions,
and some raise ValueError, KeyError or worse on a malformed file); none of that may
reach the job unclassified, or a broken file would read as a fault in Conveyor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from worker.errors import PermanentJobError

CORRUPT = "corrupt_file"
UNSUPPORTED = "unsupported_file"

_MAX_DETAIL = 200
# Anything shaped like an absolute path with a directory in it: a parser may name the
# file it was reading, and the server's paths are nobody else's business.
_PATHLIKE = re.compile(r"(?<![\w/])/(?:[^\s/'\"<>]+/)+[^\s'\"<>]*")


@contextmanager
def reading(what: str, path: Path) -> Iterator[None]:
    """Run parser code over the upload at `path`; whatever it raises means the file is
    broken and becomes corrupt_file with the message "`what`: <what the parser said>"."""
    try:
        yield
    except MemoryError as exc:
        raise PermanentJobError(
            f"{what}: the file needs more memory than a worker has", type=UNSUPPORTED
        ) from exc
    except Exception as exc:
        if not is_file_fault(exc):
            raise
        raise PermanentJobError(f"{what}: {describe(exc, path)}", type=CORRUPT) from exc


def is_file_fault(exc: Exception) -> bool:
    """Whether a parser's exception is down to the file rather than to the job (our own
    errors, the time limit) or the machine. An OSError with an errno is the machine
    (disk, permissions); Pillow reports broken images as OSErrors without one."""
    if isinstance(exc, PermanentJobError | SoftTimeLimitExceeded | MemoryError):
        return False
    return not (isinstance(exc, OSError) and exc.errno is not None)


def describe(exc: BaseException, path: Path) -> str:
    """The parser's own words, one line, short, and without server paths."""
    if isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, bytes):
        # The codec's "in position N" counts from a buffer of the reader's, not the file.
        return f"byte 0x{exc.object[exc.start]:02x} is not valid {exc.encoding}"
    detail = str(exc)
    for known in (str(path.absolute()), str(path)):
        detail = detail.replace(known, "<file>")
    detail = " ".join(_PATHLIKE.sub("<file>", detail).split())
    if not detail:
        return type(exc).__name__
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 1] + "…"
    return detail
