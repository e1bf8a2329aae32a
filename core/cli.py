"""The `conveyor` command: `dev` (the whole system on one machine), `migrate`, `flower`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _migrate(_: argparse.Namespace) -> int:
    from core.migrate import upgrade
    from core.settings import Settings

    upgrade(Settings(environment="dev").sqlalchemy_url())
    return 0


def _flower(args: argparse.Namespace) -> int:
    """Flower is never served without authentication: refuse to start instead."""
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    users = [pair for pair in auth.split(",") if pair]
    if not users or not all(":" in pair and pair.split(":", 1)[1] for pair in users):
        print(
            "conveyor flower: FLOWER_BASIC_AUTH must be set to user:password "
            "(comma-separated for several users); refusing to serve Flower without auth.",
            file=sys.stderr,
        )
        return 2
    celery = str(Path(sys.executable).with_name("celery"))
    # Flower reads FLOWER_BASIC_AUTH itself, so the password never appears in `ps`.
    argv = [
        celery,
        "-A",
        "worker.flower",
        "flower",
        f"--address={args.address}",
        f"--port={args.port}",
    ]
    os.execv(celery, argv)  # noqa: S606 - replaces this process with Flower


def _no_dev_tooling(_: argparse.Namespace) -> int:
    print(
        "conveyor dev: the dev tooling (core/dev) is not installed here; "
        "run it from a source checkout",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "dev", help="run api, worker, beat and flower; embedded servers unless configured"
    )
    try:
        from core.dev import stack
    except ModuleNotFoundError as exc:
        if exc.name != "core.dev":
            raise
        dev.set_defaults(func=_no_dev_tooling)  # the production image leaves it out
    else:
        stack.add_arguments(dev)
    commands.add_parser("migrate", help="alembic upgrade head").set_defaults(func=_migrate)
    flower = commands.add_parser("flower", help="Flower, refusing to start without basic auth")
    flower.add_argument("--address", default="0.0.0.0")  # noqa: S104 - a server's listen address
    flower.add_argument("--port", type=int, default=5555)
    flower.set_defaults(func=_flower)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
