"""`conveyor agents list|run`: agent workflows, and runs followed step by step."""

from __future__ import annotations

import argparse

from core.cli.display import SUCCEEDED, Output
from core.cli.jobs import add_waiting, follow, parse_input
from core.client import Client


def _list(client: Client, out: Output, _: argparse.Namespace) -> int:
    workflows = client.agents.list()
    if out.as_json:
        out.data(workflows)
        return SUCCEEDED
    for workflow in workflows:
        out.line(f"{workflow.name:<20} {workflow.description}")
    return SUCCEEDED


def _run(client: Client, out: Output, args: argparse.Namespace) -> int:
    job = client.agents.run(
        args.workflow, parse_input(args.input), idempotency_key=args.idempotency_key
    )
    if args.wait:
        return follow(client, out, job, args.cancel_on_interrupt)
    out.job(job)
    return SUCCEEDED


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    agents = commands.add_parser("agents", help="agent workflows and their runs")
    sub = agents.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[common], help="the workflows and what they take")
    listing.set_defaults(run=_list)
    run = sub.add_parser("run", parents=[common], help="start a run of a workflow")
    run.add_argument("workflow")
    run.add_argument(
        "--input", required=True, metavar="JSON|@FILE", help="a JSON object, @file or @- (stdin)"
    )
    run.add_argument("--idempotency-key")
    add_waiting(run, "--follow")
    run.set_defaults(run=_run)
