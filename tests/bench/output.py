"""How the benches print: a line at a time, flushed, so it keeps its place among the
output of the processes they start; durations in ms, sizes in MiB."""

from __future__ import annotations

MIB = 1024 * 1024


def say(message: str) -> None:
    print(message, flush=True)


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def mib(size: float) -> str:
    return f"{size / MIB:.1f} MiB"
