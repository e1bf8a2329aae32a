"""What the client commands print: JSON with `--json`; otherwise text, with a live
progress bar only when stdout is a terminal (no colours or bars in a pipe or a file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from core.client import APIError, Job, JobEvent

# Exit codes a script can branch on.
SUCCEEDED = 0
FAILED = 1  # the job failed or was cancelled
USAGE = 2  # bad usage, or the API refused or could not be reached
INTERRUPTED = 130  # Ctrl-C

STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}
# The bar's resolution: progress is a fraction, rich counts steps.
STEPS = 1000
# Long values (tool arguments, results) are cut to this in a line of text.
CLIP = 120


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def describe(event: JobEvent) -> str:
    """One line for an event, as a person reads it."""
    data = event.data
    if event.type == "status":
        line = f"{data.get('status')} (attempt {data.get('attempt')})"
        if data.get("reason"):
            line += f", {data['reason']}"
        if isinstance(data.get("error"), dict):
            line += f": {data['error'].get('type')}: {_clip(data['error'].get('message', ''))}"
        return line
    if event.type == "progress":
        line = f"{round(float(data.get('progress', 0)) * 100)}%"
        return f"{line} {data['message']}" if data.get("message") else line
    if event.type == "agent":
        return f"agent {data.get('agent')}"
    if event.type == "model_turn":
        return (
            f"{data.get('agent')}: model turn {data.get('turn')} "
            f"({data.get('total_tokens')} tokens)"
        )
    if event.type == "tool_call":
        return f"{data.get('agent')} → {data.get('tool')}({_clip(data.get('arguments', ''))})"
    if event.type == "tool_result":
        return f"{data.get('agent')} ← {data.get('tool')}: {_clip(data.get('output', ''))}"
    if event.type == "handoff":
        return f"handoff {data.get('from')} → {data.get('to')}"
    if event.type == "cancel_requested":
        return "cancel requested"
    return _clip(data)


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # Text as it is: no highlighting, and no `:x:` turned into an emoji.
        self.console = Console(highlight=False, emoji=False, soft_wrap=True)
        self.errors = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)

    @property
    def live(self) -> bool:
        """Bars and colours: a person is watching."""
        return not self.as_json and self.console.is_terminal

    def data(self, value: BaseModel | list[Any] | dict[str, Any]) -> None:
        """The machine-readable answer, on one line."""
        if isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            text = json.dumps(
                [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
                if isinstance(value, list)
                else value
            )
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def line(self, text: str, style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False)

    def note(self, text: str) -> None:
        """Commentary, on stderr, so that stdout stays the answer."""
        self.errors.print(text, markup=False)

    def api_error(self, error: APIError) -> int:
        self.errors.print(f"error: {error}", markup=False, style="red")
        return USAGE

    def job(self, job: Job) -> None:
        if self.as_json:
            self.data(job)
            return
        self.line(f"job {job.id}  {job.kind}")
        self.line(
            f"  status   {job.status} (attempt {job.attempts}/{job.max_attempts})",
            STATUS_STYLE.get(job.status),
        )
        if job.result is not None:
            self.line(f"  result   {json.dumps(job.result, ensure_ascii=False)}")
        if job.error is not None:
            self.line(f"  error    {job.error.get('type')}: {job.error.get('message')}")
        if job.withheld:
            self.line(f"  withheld {', '.join(job.withheld)}")

    def finished(self, job: Job) -> int:
        """The job as it ended, and the exit code that says how."""
        self.job(job)
        if job.status == "succeeded":
            return SUCCEEDED
        if not self.as_json and job.error is not None:
            self.errors.print(
                f"job {job.status}: {job.error.get('type')}: {job.error.get('message')}",
                markup=False,
            )
        elif not self.as_json:
            self.errors.print(f"job {job.status}", markup=False)
        return FAILED

    def event(self, event: JobEvent) -> None:
        if self.as_json:
            self.data(event)
        else:
            self.line(f"#{event.seq:<4} {event.at:%H:%M:%S}  {event.type:<16} {describe(event)}")


@contextmanager
def _live(out: Output, *columns: ProgressColumn) -> Iterator[Progress | None]:
    """A live display on a terminal; None when there is none to draw."""
    if not out.live:
        yield None
        return
    with Progress(*columns, console=out.console) as progress:
        yield progress


class Watch:
    """Shows a job's events as they arrive: a live bar (percent and message, attempt,
    retries) with agent steps printed above it on a terminal; one line per event
    otherwise; nothing with `--json`, whose answer is the job at its end."""

    def __init__(self, out: Output, job: Job, progress: Progress | None) -> None:
        self._out = out
        self._job = job
        self._progress = progress
        self._status = job.status
        self._attempt = job.attempts
        self._task = TaskID(0)
        if progress is not None:
            self._task = progress.add_task(
                self._title(), total=STEPS, completed=round(job.progress * STEPS), note=""
            )

    def _title(self) -> str:
        return f"{self._job.kind} {str(self._job.id)[:8]} {self._status} #{self._attempt}"

    def event(self, event: JobEvent) -> None:
        if self._out.as_json:
            return
        if self._progress is None:
            self._out.event(event)
            return
        changes: dict[str, Any] = {}
        if event.type == "status":
            self._status = str(event.data.get("status"))
            self._attempt = int(event.data.get("attempt") or self._attempt)
            changes["description"] = self._title()
            if self._status == "succeeded":
                changes["completed"] = STEPS
            if event.data.get("reason") or event.data.get("error"):
                self._progress.console.print(describe(event), markup=False, style="yellow")
        elif event.type == "progress":
            changes["completed"] = round(float(event.data.get("progress", 0)) * STEPS)
            changes["note"] = str(event.data.get("message") or "")
        else:
            self._progress.console.print(f"  {describe(event)}", markup=False)
        self._progress.update(self._task, **changes)

    def reconnecting(self, error: APIError, pause: float) -> None:
        if self._out.as_json:
            return
        text = f"stream interrupted ({error.detail}); reconnecting in {pause:.1f}s"
        if self._progress is not None:
            self._progress.update(self._task, note=text)
        else:
            self._out.note(text)


@contextmanager
def watching(out: Output, job: Job) -> Iterator[Watch]:
    columns = (TaskProgressColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"))
    with _live(out, TextColumn("{task.description}"), BarColumn(), *columns) as progress:
        yield Watch(out, job, progress)


@contextmanager
def transferring(out: Output, name: str) -> Iterator[Callable[[int, int], None]]:
    """The bytes of an upload as they go out (what to call with them): a bar on a
    terminal, nothing otherwise."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with _live(out, *columns, TransferSpeedColumn()) as progress:
        if progress is None:
            yield lambda _done, _total: None
            return
        task = progress.add_task(f"uploading {name}", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
