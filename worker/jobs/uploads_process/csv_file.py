"""CSV: dialect, header, row count, column types and a few sample rows.

Rows are counted while streaming; types are inferred from the first rows only. A row
is read whole, so its size is capped: past MAX_ROW_CHARS or MAX_FIELDS the file is not
processed, and memory stays bounded whatever the upload holds.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from core.uploads.sniff import csv_dialect
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import UNSUPPORTED, reading
from worker.jobs.uploads_process.results import Processed, Progress
from worker.jobs.uploads_process.text import PROGRESS_EVERY_BYTES, file_encoding

SNIFF_CHARS = 32 * 1024
SNIFF_LINES = 50
INFER_ROWS = 1000
SAMPLE_ROWS = 5
MAX_COLUMNS = 200  # listed and typed in the summary; a wider file has its width counted
CELL_CHARS = 200
# No number, date or boolean is this long; a longer cell is text without running the
# patterns over it, which take some 70 ms over a row of a megabyte of digits.
INFER_CHARS = 100
# A row is held in memory whole, as a list of strings of up to ~20 times its size (many
# tiny fields), so its text and its width are capped; a table wider than 10,000 fields
# or with a row past 1 MiB is not one to summarise, and anything bigger is hostile or
# not a table (a file of one endless line would otherwise be read into memory whole).
MAX_ROW_CHARS = 1 << 20
MAX_FIELDS = 10_000
# Rows are parsed in batches (one error-classifying block each, not one per row); a
# batch ends at whichever comes first, so a batch of long rows stays small too.
BATCH_ROWS = 10_000
BATCH_CHARS = 1 << 20

_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
_BOOLEAN = frozenset({"true", "false", "yes", "no"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})[./](\d{1,2})[./]\d{4}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}\S*")


def process(path: Path, progress: Progress) -> Processed:
    encoding = file_encoding(path, "CSV")
    sample = _sample(path, encoding)
    with reading("Could not make out the CSV dialect", path):
        dialect = _dialect(sample)
    columns = _Columns(decimal_comma=dialect.delimiter != ",")
    header: list[str] | None = None
    rows = ragged = 0
    width = 0
    samples: list[list[str]] = []
    size = path.stat().st_size
    reported = 0
    with (
        path.open("rb") as raw,
        io.TextIOWrapper(raw, encoding=encoding, newline="") as text,
        _FIELD_LIMIT,
    ):
        reader = _Reader(text, dialect)
        while True:
            # Only the parser's own work is classified; progress() may stop the job.
            with reading(f"Could not read the CSV file (as {encoding})", path):
                batch = reader.batch()
            if not batch:
                break
            if header is None and not rows and _has_header(sample, dialect, batch):
                header = batch.pop(0)
                width = len(header)
            for row in batch:
                if not width:
                    width = len(row)
                elif len(row) != width:
                    ragged += 1
                if rows < INFER_ROWS:
                    columns.add(row)
                if len(samples) < SAMPLE_ROWS:
                    samples.append([cell[:CELL_CHARS] for cell in row[:MAX_COLUMNS]])
                rows += 1
            done = raw.tell()
            if done - reported >= PROGRESS_EVERY_BYTES:
                reported = done
                progress(done / size, f"Read {rows} rows")
    summary: dict[str, Any] = {
        "encoding": encoding,
        "dialect": {"delimiter": dialect.delimiter, "quotechar": dialect.quotechar},
        "has_header": header is not None,
        "rows": rows,
        "column_count": max(width, columns.width),
        "columns": columns.describe(header or []),
        "ragged_rows": ragged,
        "sample_rows": samples,
    }
    return Processed(kind="csv", summary=summary, derived=[])


def _sample(path: Path, encoding: str) -> str:
    """The first lines of the file, whole lines only, for the sniffer."""
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        with reading(f"Could not read the CSV file (as {encoding})", path):
            head = text.read(SNIFF_CHARS)
            more = bool(text.read(1))
    lines = head.splitlines(keepends=True)
    if more and len(lines) > 1:
        lines.pop()  # cut short
    return "".join(lines[:SNIFF_LINES])


class _Reader:
    """csv.reader over the open file, a batch of non-empty rows at a time. It is given
    the file a line at a time, each read with a length limit, so a row stops being read
    at MAX_ROW_CHARS (counted over all its lines: a quoted field may span many) rather
    than once it has been taken into memory."""

    def __init__(self, text: TextIO, dialect: type[csv.Dialect]) -> None:
        self._text = text
        self._row_chars = 0  # read of the row being parsed
        self._reader = csv.reader(self._lines(), dialect)

    def batch(self) -> list[list[str]]:
        """The next rows, up to BATCH_ROWS of them or about BATCH_CHARS of text."""
        batch: list[list[str]] = []
        chars = 0
        for row in self._reader:
            chars += self._row_chars
            self._row_chars = 0
            if len(row) > MAX_FIELDS:
                raise PermanentJobError(
                    f"CSV rows wider than {MAX_FIELDS:,} fields are not processed "
                    f"(the row ending on line {self._reader.line_num:,} has {len(row):,})",
                    type=UNSUPPORTED,
                )
            if row:
                batch.append(row)
                if len(batch) >= BATCH_ROWS or chars >= BATCH_CHARS:
                    break
        return batch

    def _lines(self) -> Iterator[str]:
        readline = self._text.readline
        while line := readline(MAX_ROW_CHARS + 1 - self._row_chars):
            self._row_chars += len(line)
            if self._row_chars > MAX_ROW_CHARS:
                raise PermanentJobError(
                    f"CSV rows longer than {MAX_ROW_CHARS:,} characters are not processed "
                    f"(the limit was reached on line {self._reader.line_num + 1:,})",
                    type=UNSUPPORTED,
                )
            yield line


class _FieldSizeLimit:
    """csv.field_size_limit, raised to `limit` while CSV files are read here. The limit
    is one setting for the whole process: it is raised when the first reader starts and
    put back when the last one ends, so readers in threads do not undo each other."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._readers = 0
        self._saved = 0

    def __enter__(self) -> None:
        with self._lock:
            if not self._readers:
                self._saved = csv.field_size_limit()
                csv.field_size_limit(max(self._saved, self._limit))
            self._readers += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._readers -= 1
            if not self._readers:
                csv.field_size_limit(self._saved)


# A field is never longer than its row, and rows stop at MAX_ROW_CHARS; csv's default
# (128 KiB) would turn a long field within a row we accept into a parse error.
_FIELD_LIMIT = _FieldSizeLimit(MAX_ROW_CHARS)


def _dialect(sample: str) -> type[csv.Dialect]:
    # One column, or nothing to go on: the common comma dialect.
    return csv_dialect(sample) or csv.excel


class _FixedSniffer(csv.Sniffer):
    """csv.Sniffer.has_header sniffs the dialect again, without our list of delimiters;
    this one keeps the dialect already found."""

    def __init__(self, dialect: type[csv.Dialect]) -> None:
        super().__init__()
        self._dialect = dialect

    def sniff(self, sample: str, delimiters: str | None = None) -> type[csv.Dialect]:  # noqa: ARG002
        return self._dialect


def _has_header(sample: str, dialect: type[csv.Dialect], rows: list[list[str]]) -> bool:
    """A first row of distinct, non-empty, untyped labels, and under it a column of
    typed values (numbers, dates, booleans); failing that, csv.Sniffer's guess."""
    first = [cell.strip() for cell in rows[0]]
    if len(rows) < 2 or not all(first) or len(set(first)) != len(first):
        return False
    if any(_cell_type(cell, decimal_comma=False) != "string" for cell in first):
        return False
    data = _Columns(decimal_comma=dialect.delimiter != ",")
    for row in rows[1:INFER_ROWS]:
        data.add(row)
    if any(kind not in ("string", "empty") for kind in data.types()):
        return True
    try:
        return _FixedSniffer(dialect).has_header(sample)
    except (csv.Error, ValueError, IndexError):
        return False


class _Columns:
    """The types seen in each of the first MAX_COLUMNS columns over the rows added, and
    the width of the widest row."""

    def __init__(self, *, decimal_comma: bool) -> None:
        self._decimal_comma = decimal_comma
        self._seen: list[set[str]] = []
        self.width = 0

    def add(self, row: list[str]) -> None:
        self.width = max(self.width, len(row))
        for index, cell in enumerate(row[:MAX_COLUMNS]):
            if index == len(self._seen):
                self._seen.append(set())
            self._seen[index].add(_cell_type(cell.strip(), decimal_comma=self._decimal_comma))

    def types(self) -> list[str]:
        return [_column_type(seen) for seen in self._seen]

    def describe(self, header: list[str]) -> list[dict[str, str]]:
        count = min(max(len(header), len(self._seen)), MAX_COLUMNS)
        types = self.types()
        described = []
        for index in range(count):
            name = header[index].strip()[:CELL_CHARS] if index < len(header) else ""
            kind = types[index] if index < len(types) else "empty"
            described.append({"name": name or f"column_{index + 1}", "type": kind})
        return described


def _column_type(seen: set[str]) -> str:
    kinds = seen - {"empty"}
    if not kinds:
        return "empty"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds <= {"integer", "float"}:
        return "float"
    if kinds <= {"date", "datetime"}:
        return "datetime"
    return "string"


def _cell_type(cell: str, *, decimal_comma: bool) -> str:
    if not cell:
        return "empty"
    if len(cell) > INFER_CHARS:
        return "string"
    if _INTEGER.fullmatch(cell):
        return "integer"
    if _FLOAT.fullmatch(cell) or decimal_comma and _DECIMAL_COMMA.fullmatch(cell):
        return "float"
    if cell.lower() in _BOOLEAN:
        return "boolean"
    if _ISO_DATE.fullmatch(cell):
        return "date" if _parses(date.fromisoformat, cell) else "string"
    if match := _DAY_MONTH_YEAR.fullmatch(cell):
        first, second = int(match[1]), int(match[2])
        plausible = 1 <= min(first, second) <= 12 and max(first, second) <= 31
        return "date" if plausible else "string"
    if _ISO_DATETIME.fullmatch(cell) and _parses(datetime.fromisoformat, cell):
        return "datetime"
    return "string"


def _parses(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True
