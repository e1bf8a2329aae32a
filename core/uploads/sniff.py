"""What an upload is, judged from its first bytes and never from what the client says.

Binary formats are known by their magic numbers. Anything else is text if it decodes
(UTF-8, UTF-16/32 with a byte-order mark, or a legacy encoding charset-normalizer is sure
of) and then sorted by its content into JSON, CSV, Markdown or plain text. The file name
only settles ties between text types: it never turns bytes into another kind of file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re

from charset_normalizer import from_bytes

# How many leading bytes callers pass in when the file has that many. A shorter head is
# taken to be the whole file.
SNIFF_BYTES = 8192

OCTET_STREAM = "application/octet-stream"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    # Formats Conveyor does not process, named so that they are never taken for text.
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"PK\x07\x08", "application/zip"),  # a spanned archive
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
)

# UTF-32 first: its little-endian mark starts with UTF-16's.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Control characters text does not contain; tab, line breaks, form feed, backspace and
# ESC (terminal colours in logs) are left out. C1 controls show up when a legacy code
# page is forced onto binary data.
_CONTROL = re.compile("[\x00-\x07\x0e-\x1a\x1c-\x1f\x7f-\x9f]")

# A charset-normalizer candidate this close to the best one is as good a guess. On short
# or Western text the single-byte code pages come out about even (French can score best
# as HP Roman-8, German as Urdu), and windows-1252, a superset of Latin-1's printable
# characters, is then by far the most likely.
_TIE = 0.1

_JSON_OPENING = re.compile(r'\{\s*(?:"|\}|$)|\[\s*(?:[\[{"\-0-9\]]|true|false|null|$)')
_JSON_SCALAR_START = tuple('"-0123456789tfn')

CSV_DELIMITERS = ",;\t|"
_CSV_LINES = 20
# csv.Sniffer's quote regex backtracks over each line: quadratic in a long line (8 KiB
# of `,"` cost about a second). It sees at most this many characters, in whole lines;
# the delimiter count below is linear and sees the whole sample.
_SNIFFER_CHARS = 1024

_NUMBER = re.compile(r"\s*[-+]?(?:\d[\d,.]*|\.\d+)(?:[eE][-+]?\d+)?\s*")

_MD_SIGNS = (
    re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.M),  # "# Heading"
    re.compile(r"^[^\n]*\S[^\n]*\n {0,3}(?:={3,}|-{3,})[ \t]*$", re.M),  # underlined heading
    re.compile(r"^ {0,3}(?:```|~~~)", re.M),  # fenced code
    re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),  # [link](target)
)
_MD_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.M)


def sniff(head: bytes, filename: str | None) -> str:
    """The MIME type of a file from its first bytes (SNIFF_BYTES of them when the file
    has that many); `filename` only breaks ties between text types."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    complete = len(head) < SNIFF_BYTES
    text = decode_text(head, complete=complete)
    if text is None:
        return OCTET_STREAM
    return _text_type(text, (filename or "").lower(), complete)


def detect_encoding(sample: bytes, *, complete: bool) -> str | None:
    """The Python codec that decodes `sample` as text, or None if it is not text.

    `complete` says whether `sample` is the whole file; if not, a character cut in two
    at its end is not held against it. Byte-order marks select codecs that drop them.
    """
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return encoding
    if b"\x00" in sample:  # UTF-16/32 without a mark is not worth the false positives
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    matches = list(from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    for match in matches:
        # Code pages that decode the sample identically are reported as one match.
        if "cp1252" in match.could_be_from_charset and match.chaos <= best.chaos + _TIE:
            return "cp1252"
    return codecs.lookup(best.encoding).name


def decode_text(sample: bytes, *, complete: bool) -> str | None:
    """`sample` as text, or None if it does not look like text."""
    encoding = detect_encoding(sample, complete=complete)
    if encoding is None:
        return None
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=complete)
    except UnicodeDecodeError:
        return None
    return text if looks_textual(text) else None


def looks_textual(text: str) -> bool:
    """At most one control character in a hundred: a stray one is tolerated, binary data
    decoded by force has far more."""
    return len(_CONTROL.findall(text)) * 100 <= len(text)


def _text_type(text: str, filename: str, complete: bool) -> str:
    if _looks_like_json(text) or (filename.endswith(".json") and _is_json_scalar(text, complete)):
        return "application/json"
    if filename.endswith((".md", ".markdown")):
        return "text/markdown"
    if _looks_like_csv(text, complete, lenient=filename.endswith((".csv", ".tsv"))):
        return "text/csv"
    if _looks_like_markdown(text):
        return "text/markdown"
    return "text/plain"


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        _, end = json.JSONDecoder().raw_decode(stripped)
    except (json.JSONDecodeError, RecursionError):
        # Cut off at the end of the head, or broken: JSON all the same if it opens like
        # JSON, so that the JSON processor can say where a broken document breaks.
        return _JSON_OPENING.match(stripped) is not None
    rest = stripped[end:].lstrip()
    # Trailing text after one value: JSON Lines (or a concatenation) if it is another
    # document, otherwise prose that happens to start with "[1]" or "{}".
    return not rest or rest.startswith(("{", "["))


def _is_json_scalar(text: str, complete: bool) -> bool:
    stripped = text.strip()
    if not complete or not stripped.startswith(_JSON_SCALAR_START):
        return False
    try:
        json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def csv_dialect(sample: str) -> type[csv.Dialect] | None:
    """The CSV dialect of `sample` (whole lines), or None if no delimiter splits its
    first line. csv.Sniffer first; it gives up unless nearly every line agrees, so then
    the delimiter that splits the most lines like the first one."""
    head = sample
    if len(sample) > _SNIFFER_CHARS:
        head = sample[: sample.rfind("\n", 0, _SNIFFER_CHARS) + 1]
    if head.strip():
        try:
            return csv.Sniffer().sniff(head, delimiters=CSV_DELIMITERS)
        except csv.Error:
            pass
    lines = sample.splitlines()[:_CSV_LINES]
    best, best_score = "", (0, 0)
    for delimiter in CSV_DELIMITERS:
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            continue
        width = len(rows[0]) if rows else 0
        score = (sum(len(row) == width for row in rows), width)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
    if not best:
        return None

    class Guessed(csv.excel):
        delimiter = best

    return Guessed


def _looks_like_csv(text: str, complete: bool, *, lenient: bool) -> bool:
    """A delimiter that splits every one of the first lines into the same number (two
    or more) of fields; with a .csv/.tsv name, splitting the first line is enough."""
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    sample = "\n".join(line for line in lines[:_CSV_LINES] if line.strip())
    dialect = csv_dialect(sample) if sample else None
    if dialect is None:
        return False
    try:
        rows = list(csv.reader(io.StringIO(sample), dialect))
    except csv.Error:
        return False
    widths = {len(row) for row in rows}
    if lenient:
        return len(rows[0]) >= 2
    consistent = len(rows) >= 2 and len(widths) == 1 and widths.pop() >= 2
    return consistent and not _reads_like_prose(sample, dialect)


def _reads_like_prose(sample: str, dialect: type[csv.Dialect]) -> bool:
    """Sentences with the same number of commas on every line split as evenly as CSV.
    They put a space after (nearly) every comma and hold no numbers; data rarely does
    both."""
    rows = list(csv.reader(io.StringIO(sample), dialect, skipinitialspace=False))
    later = [field for row in rows for field in row[1:]]
    spaced = sum(field[:1].isspace() for field in later)
    numeric = any(_NUMBER.fullmatch(field) for row in rows for field in row)
    return spaced * 2 > len(later) and not numeric


def _looks_like_markdown(text: str) -> bool:
    if not text.startswith("#!") and any(sign.search(text) for sign in _MD_SIGNS):
        return True
    return len(_MD_LIST_ITEM.findall(text)) >= 2
