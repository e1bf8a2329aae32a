"""The `conveyor` command.

Client commands talk to any Conveyor API over its public endpoints (core/client):
`login`, `logout`, `whoami`, `jobs …`, `upload`, `agents …`. Operator commands run
beside a deployment: `dev`, `migrate`, `flower`, `tenant-limits`.

Exit codes: 0 done (a waited-on job succeeded), 1 the job failed or was cancelled,
2 bad usage or an API error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from core.cli import account, agents, jobs, operations, uploads
from core.cli.credentials import NotLoggedIn, connect
from core.cli.display import INTERRUPTED, USAGE, Output
from core.cli.jobs import BadInput
from core.client import APIError

BROKEN_PIPE = 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The options every client command takes, after its name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the API (CONVEYOR_URL, else the stored login's)")
    common.add_argument("--tenant", metavar="ID", help="act in this tenant (CONVEYOR_TENANT)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    account.add_commands(commands, common)
    jobs.add_commands(commands, common)
    uploads.add_commands(commands, common)
    agents.add_commands(commands, common)
    operations.add_commands(commands)
    return parser


def _client_command(args: argparse.Namespace) -> int:
    out = Output(getattr(args, "json", False))
    try:
        if hasattr(args, "local"):
            result: int = args.local(out, args)
            return result
        with connect(args.url, args.tenant) as client:
            result = args.run(client, out, args)
            return result
    except APIError as exc:
        return out.api_error(exc)
    except (NotLoggedIn, BadInput) as exc:
        out.note(f"error: {exc}")
        return USAGE
    except BrokenPipeError:
        raise  # stdout's reader left: see main
    except OSError as exc:  # a file to upload or read input from
        out.note(f"error: {exc}")
        return USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "run") or hasattr(args, "local"):
            return _client_command(args)
        result: int = args.func(args)
        return result
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # `conveyor jobs list | head`: the reader had enough. Quiet, as other commands
        # are, with the shell's code for a death by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
