"""`conveyor jobs …`: submit, list, read, follow and cancel jobs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli.display import INTERRUPTED, SUCCEEDED, Output, watching
from core.client import APIError, Client, Job


class BadInput(Exception):
    """`--input` is not a JSON object (exit 2, nothing sent)."""


def parse_input(text: str) -> dict[str, Any]:
    """`--input` as given: JSON, `@path` for a file's, `@-` for stdin's."""
    if text.startswith("@"):
        name = text[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
        except OSError as exc:
            raise BadInput(f"--input {text}: {exc.strerror}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--input is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadInput("--input must be a JSON object")
    return value


def follow(client: Client, out: Output, job: Job, cancel_on_interrupt: bool) -> int:
    """Watch the job to its end; the exit code says how it ended. Ctrl-C stops
    watching, and with `--cancel-on-interrupt` asks the API to cancel the job first."""
    try:
        with watching(out, job) as watch:
            final = client.jobs.wait(job.id, on_event=watch.event, on_retry=watch.reconnecting)
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            try:
                cancelled = client.jobs.cancel(job.id)
                out.note(f"interrupted: cancel requested, job {job.id} is {cancelled.status}")
            except APIError as exc:
                out.note(f"interrupted: could not cancel job {job.id}: {exc}")
        else:
            out.note(f"interrupted: job {job.id} goes on (conveyor jobs watch {job.id})")
        return INTERRUPTED
    return out.finished(final)


def _submit(client: Client, out: Output, args: argparse.Namespace) -> int:
    job = client.jobs.submit(
        args.kind,
        parse_input(args.input),
        idempotency_key=args.idempotency_key,
        delay_seconds=args.delay,
    )
    if args.wait:
        return follow(client, out, job, args.cancel_on_interrupt)
    out.job(job)
    return SUCCEEDED


def _list(client: Client, out: Output, args: argparse.Namespace) -> int:
    page = client.jobs.list(
        status=args.status, kind=args.kind, limit=args.limit, cursor=args.cursor
    )
    if out.as_json:
        out.data(page)
        return SUCCEEDED
    for job in page.items:
        out.line(f"{job.id}  {job.created_at:%Y-%m-%d %H:%M:%S}  {job.status:<10} {job.kind}")
    if page.next_cursor:
        out.note(f"more: --cursor {page.next_cursor}")
    return SUCCEEDED


def _get(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.job(client.jobs.get(args.job_id))
    return SUCCEEDED


def _events(client: Client, out: Output, args: argparse.Namespace) -> int:
    """Printed as they are, one per line; `--follow` keeps going until the job ends."""
    if args.follow:
        for event in client.jobs.stream(args.job_id, after=args.after):
            out.event(event)
        return SUCCEEDED
    after = args.after
    while True:
        page = client.jobs.events(args.job_id, after=after, limit=1000)
        for event in page.items:
            out.event(event)
        # Not by `items`: a page of events hidden from the caller is empty.
        if page.next_after <= after:
            return SUCCEEDED
        after = page.next_after


def _cancel(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.job(client.jobs.cancel(args.job_id))
    return SUCCEEDED


def _watch(client: Client, out: Output, args: argparse.Namespace) -> int:
    return follow(client, out, client.jobs.get(args.job_id), args.cancel_on_interrupt)


def _kinds(client: Client, out: Output, _: argparse.Namespace) -> int:
    kinds = client.jobs.kinds()
    if out.as_json:
        out.data(kinds)
        return SUCCEEDED
    for kind in kinds:
        out.line(f"{kind.name:<20} {kind.queue:<8} {kind.description}")
    return SUCCEEDED


def add_waiting(parser: argparse.ArgumentParser, wait_flag: str | None) -> None:
    if wait_flag:
        parser.add_argument(
            wait_flag,
            dest="wait",
            action="store_true",
            help="follow the job with a live progress bar until it ends; exit 0 if it "
            "succeeded, 1 if not",
        )
    parser.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="on Ctrl-C, cancel the job before exiting (130)",
    )


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    jobs = commands.add_parser("jobs", help="submit, list, follow and cancel jobs")
    sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    submit = sub.add_parser("submit", parents=[common], help="submit a job")
    submit.add_argument("kind", help="its kind (conveyor jobs kinds)")
    submit.add_argument(
        "--input", default="{}", metavar="JSON|@FILE", help="a JSON object, @file or @- (stdin)"
    )
    submit.add_argument("--idempotency-key", help="a repeat with the same key is the same job")
    submit.add_argument("--delay", type=float, metavar="SECONDS", help="run it this much later")
    add_waiting(submit, "--wait")
    submit.set_defaults(run=_submit)

    listing = sub.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument(
        "--status", choices=["queued", "running", "succeeded", "failed", "cancelled"]
    )
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor", help="the next page (printed after a full one)")
    listing.set_defaults(run=_list)

    get = sub.add_parser("get", parents=[common], help="a job, with its input and result")
    get.add_argument("job_id")
    get.set_defaults(run=_get)

    events = sub.add_parser("events", parents=[common], help="a job's events")
    events.add_argument("job_id")
    events.add_argument("--after", type=int, default=0, metavar="SEQ")
    events.add_argument("--follow", action="store_true", help="keep going until the job ends")
    events.set_defaults(run=_events)

    cancel = sub.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_cancel)

    watch = sub.add_parser("watch", parents=[common], help="follow a job live until it ends")
    watch.add_argument("job_id")
    add_waiting(watch, None)
    watch.set_defaults(run=_watch)

    kinds = sub.add_parser("kinds", parents=[common], help="the job kinds a client may submit")
    kinds.set_defaults(run=_kinds)
