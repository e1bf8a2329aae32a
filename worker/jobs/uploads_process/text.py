"""Plain text and Markdown: encoding, counts, a preview and (Markdown) the outline.

Files can be 1 GiB, so everything is counted while streaming the file in chunks of
decoded text; memory stays the same whatever the size.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.uploads.sniff import detect_encoding
from worker.errors import PermanentJobError
from worker.jobs.uploads_process.classify import CORRUPT, reading
from worker.jobs.uploads_process.results import Processed, Progress

SAMPLE_BYTES = 64 * 1024
CHUNK_CHARS = 1 << 20
PROGRESS_EVERY_BYTES = 32 << 20
PREVIEW_CHARS = 500
FIRST_HEADINGS = 10
HEADING_CHARS = 200
# Lines longer than this are cut for the outline: nobody writes such a heading, and
# the cut keeps a file with no line breaks from being held in memory whole.
MAX_LINE_CHARS = 64 * 1024

_MD_LINE = re.compile(
    r"^ {0,3}(?:"
    r"(?P<fence>`{3,}|~{3,})[^\n]*?"  # an info string may follow: ```python
    r"|(?P<hashes>#{1,6})(?:[ \t]+(?P<title>[^\n]*?))?(?:[ \t]+#+)?[ \t]*"
    r"|(?P<underline>=+|-{2,})[ \t]*"
    r")\r?$",
    re.M,
)
# Lines an underline does not turn into a heading: blank, or a block of another kind.
_NOT_PARAGRAPH = re.compile(r"\s*$| {0,3}(?:#|>|[-*+][ \t]|\d{1,9}[.)][ \t]|`{3}|~{3}|[=-]+\s*$)")


def process_text(path: Path, progress: Progress) -> Processed:
    return Processed(kind="text", summary=_summarise(path, progress, None), derived=[])


def process_markdown(path: Path, progress: Progress) -> Processed:
    outline = Outline()
    summary = _summarise(path, progress, outline)
    summary["headings"] = outline.count
    summary["first_headings"] = outline.first
    return Processed(kind="markdown", summary=summary, derived=[])


def file_encoding(path: Path, label: str) -> str:
    """The codec for the file at `path`, judged from a bounded sample at its start."""
    with path.open("rb") as file:
        sample = file.read(SAMPLE_BYTES)
        complete = not file.read(1)
    encoding = detect_encoding(sample, complete=complete)
    if encoding is None:
        raise PermanentJobError(
            f"The {label} file does not decode as text in any encoding Conveyor recognises",
            type=CORRUPT,
        )
    return encoding


def chunks(path: Path, encoding: str, label: str, progress: Progress) -> Iterator[str]:
    """The decoded text of the file, a chunk at a time; undecodable bytes are a
    corrupt_file error. Line endings are kept as they are."""
    size = path.stat().st_size
    reported = 0
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        while True:
            with reading(f"Could not read the {label} file as {encoding}", path):
                chunk = text.read(CHUNK_CHARS)
            if not chunk:
                return
            yield chunk
            done = raw.tell()
            if done - reported >= PROGRESS_EVERY_BYTES:
                reported = done
                progress(done / size, f"Read {done >> 20} of {size >> 20} MiB")


def _summarise(path: Path, progress: Progress, outline: Outline | None) -> dict[str, Any]:
    label = "text" if outline is None else "Markdown"
    encoding = file_encoding(path, label)
    lines = words = characters = 0
    preview, more = "", False
    ended_cr = in_word = False
    last = ""
    for chunk in chunks(path, encoding, label, progress):
        split = chunk.split()
        if not characters:
            preview, more = _preview(split)
        characters += len(chunk)
        lines += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")
        if ended_cr and chunk.startswith("\n"):
            lines -= 1  # a CRLF cut in two was counted twice
        words += len(split)
        if in_word and not chunk[0].isspace():
            words -= 1  # a word cut in two was counted twice
        ended_cr, in_word, last = chunk.endswith("\r"), not chunk[-1].isspace(), chunk[-1]
        if outline is not None:
            outline.feed(chunk)
    if last and last not in "\r\n":
        lines += 1  # the last line has no line break
    if outline is not None:
        outline.finish()
    return {
        "encoding": encoding,
        "lines": lines,
        "words": words,
        "characters": characters,
        "preview": preview[:PREVIEW_CHARS],
        "preview_truncated": more or len(preview) > PREVIEW_CHARS,
    }


def _preview(words: list[str]) -> tuple[str, bool]:
    """The start of the text with every run of whitespace made one space (the same for
    any language, with or without spaces between words), and whether words were left
    out. The caller cuts it to PREVIEW_CHARS."""
    taken: list[str] = []
    length = -1
    for word in words:
        if length >= PREVIEW_CHARS:
            return " ".join(taken), True
        taken.append(word)
        length += len(word) + 1
    return " ".join(taken), False


class Outline:
    """The headings of a Markdown file fed in chunks: ATX ("# Title") and setext (a line
    underlined with = or -), not counting lines in fenced code or YAML front matter."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[dict[str, Any]] = []
        self._carry = ""
        self._overlong = False
        self._fence: str | None = None
        self._previous = ""  # the last complete line seen
        self._started = False

    def feed(self, chunk: str) -> None:
        if self._overlong:  # skipping the rest of a line that was too long
            newline = chunk.find("\n")
            if newline < 0:
                return
            self._overlong = False
            chunk = chunk[newline:]
        data = self._carry + chunk
        if not self._started:
            if len(data) < len("---\r\n") and "\n" not in data:
                self._carry = data  # too short yet to tell front matter
                return
            self._started = True
            if data.startswith(("---\n", "---\r\n")):
                self._fence = "---"
                data = data[data.index("\n") + 1 :]
        cut = data.rfind("\n") + 1
        block, self._carry = data[:cut], data[cut:]
        if len(self._carry) > MAX_LINE_CHARS:
            self._carry, self._overlong = self._carry[:MAX_LINE_CHARS], True
        if block:
            self._scan(block)
            self._previous = block[block.rfind("\n", 0, len(block) - 1) + 1 : -1]

    def finish(self) -> None:
        """Take in the last line, which has no line break to end it."""
        if self._carry:
            self._scan(self._carry)
            self._carry = ""

    def _scan(self, block: str) -> None:
        for match in _MD_LINE.finditer(block):
            fence, underline = match["fence"], match["underline"]
            if self._fence is not None:
                if self._closes(fence or underline or ""):
                    self._fence = None
            elif fence:
                self._fence = fence
            elif match["hashes"]:
                self._add(len(match["hashes"]), match["title"] or "")
            elif underline:
                before = self._line_before(block, match.start())
                if not _NOT_PARAGRAPH.match(before):
                    self._add(1 if underline[0] == "=" else 2, before)

    def _closes(self, marker: str) -> bool:
        assert self._fence is not None
        if self._fence == "---":
            return marker.strip() == "---"
        return marker[:1] == self._fence[0] and len(marker) >= len(self._fence)

    def _line_before(self, block: str, start: int) -> str:
        if start == 0:
            return self._previous
        begin = block.rfind("\n", 0, start - 1) + 1
        return block[begin : start - 1]

    def _add(self, level: int, text: str) -> None:
        self.count += 1
        if len(self.first) < FIRST_HEADINGS:
            title = " ".join(text.split())[:HEADING_CHARS]
            self.first.append({"level": level, "text": title})
