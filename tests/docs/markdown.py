"""Just enough Markdown for the docs tests: sections, pipe tables, fenced blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_FENCE = re.compile(r"^\s*```(\S*)\s*$")
_CODE_CELL = re.compile(r"^`([^`]+)`$")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under the heading titled `heading`, up to the next heading of the same
    or a higher level; fenced blocks are skipped when looking for headings."""
    lines = text.splitlines()
    start: int | None = None
    level = 0
    in_fence = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        found = None if in_fence else _HEADING.match(line)
        if found is None:
            continue
        if start is None:
            if found.group(2) == heading:
                start, level = number + 1, len(found.group(1))
        elif len(found.group(1)) <= level:
            return "\n".join(lines[start:number])
    if start is None:
        raise LookupError(f"no heading {heading!r}")
    return "\n".join(lines[start:])


def fenced_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lang: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        found = _FENCE.match(line)
        if lang is None:
            if found:
                lang, body = found.group(1), []
        elif found and not found.group(1):
            blocks.append(Block(lang, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    return blocks


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every pipe table in `text` (not the header or the rule), cells
    stripped. A cell holding a `|` inside backticks is not supported."""
    rows: list[list[str]] = []
    in_fence = False
    previous = ""
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("|"):
            previous = line
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        is_rule = all(re.fullmatch(r":?-+:?", cell) for cell in cells)
        is_header = not previous.startswith("|")
        if not is_rule and not is_header:
            rows.append(cells)
        previous = line
    return rows


def code_cell(cell: str) -> str | None:
    """`name` -> name; None for a cell that is not one code span."""
    found = _CODE_CELL.match(cell)
    return found.group(1) if found else None
