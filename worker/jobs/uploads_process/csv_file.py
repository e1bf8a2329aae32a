"""CSV: dialect, header, row count, column types and a few sample rows.

Rows are counted while streaming; types are inferred from the first rows only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from core.uploads.sniff import csv_dialect
from worker.jobs.uploads_process.classify import reading
from worker.jobs.uploads_process.results import Processed, Progress
from worker.jobs.uploads_process.text import PROGRESS_EVERY_BYTES, file_encoding

SNIFF_CHARS = 32 * 1024
SNIFF_LINES = 50
INFER_ROWS = 1000
SAMPLE_ROWS = 5
MAX_COLUMNS = 200  # listed in the summary; a wider file still has its width counted
CELL_CHARS = 200
BATCH_ROWS = 10_000

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
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        reader = csv.reader(text, dialect)
        while True:
            # Only the parser's own work is classified; progress() may stop the job.
            with reading(f"Could not read the CSV file (as {encoding})", path):
                batch = [row for row in islice(reader, BATCH_ROWS) if row]
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
    """The types seen in each column over the rows added."""

    def __init__(self, *, decimal_comma: bool) -> None:
        self._decimal_comma = decimal_comma
        self._seen: list[set[str]] = []

    @property
    def width(self) -> int:
        return len(self._seen)

    def add(self, row: list[str]) -> None:
        for index, cell in enumerate(row):
            if index == len(self._seen):
                self._seen.append(set())
            self._seen[index].add(_cell_type(cell.strip(), decimal_comma=self._decimal_comma))

    def types(self) -> list[str]:
        return [_column_type(seen) for seen in self._seen]

    def describe(self, header: list[str]) -> list[dict[str, str]]:
        count = min(max(len(header), self.width), MAX_COLUMNS)
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
