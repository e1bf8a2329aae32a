"""BenchError, and the one way a bench run ends when something goes wrong: SIGTERM is
taken like Ctrl-C, through every `finally` that stops a process; then the last lines of
each process started and one line that says why."""

from __future__ import annotations

import signal
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from tests.bench.output import say


class BenchError(Exception):
    """The bench cannot produce an honest figure; the message says why."""


class HasTails(Protocol):
    def print_tails(self) -> None: ...


@dataclass
class Outcome:
    """The exit status of a run: 0 unless `failures_explained` stopped it."""

    code: int = 0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C, through every `finally` that stops processes.
    raise KeyboardInterrupt


@contextmanager
def failures_explained(command: str, groups: Iterable[HasTails]) -> Iterator[Outcome]:
    """Runs the block; any failure or interruption ends it with the outcome's code set
    (1, or 130 when interrupted) and is explained rather than raised. `groups` is read
    only on failure, so it may still be filling up while the block runs."""
    outcome = Outcome()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield outcome
    except BenchError as exc:
        for group in groups:
            group.print_tails()
        say(f"{command} failed: {exc}")
        outcome.code = 1
    except Exception as exc:  # a server refused or went away: still stop cleanly, say why
        traceback.print_exc()
        for group in groups:
            group.print_tails()
        say(f"{command} failed: {type(exc).__name__}: {exc}")
        outcome.code = 1
    except KeyboardInterrupt:
        say(f"{command} interrupted; everything it started has been stopped")
        outcome.code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
