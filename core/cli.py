"""The `conveyor` command: `dev` (the whole system on one machine), `bench`, `migrate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _migrate(_: argparse.Namespace) -> int:
    from core.migrate import upgrade
    from core.settings import Settings

    upgrade(Settings(environment="dev").sqlalchemy_url())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from core import bench, devstack

    devstack.add_arguments(
        commands.add_parser(
            "dev", help="run api, worker, beat and flower; embedded servers unless configured"
        )
    )
    bench.add_arguments(
        commands.add_parser(
            "bench", help="measure the pipeline against bare Celery on this machine"
        )
    )
    commands.add_parser("migrate", help="alembic upgrade head").set_defaults(func=_migrate)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
