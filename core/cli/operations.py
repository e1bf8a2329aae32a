"""The operator's commands: `dev` (the whole system on one machine), `migrate`, `flower`,
`tenant-limits`. They run beside a deployment's code and settings, unlike the client
commands, which only talk to an API."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
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


# `--concurrency` not given: show the cap, change nothing.
UNCHANGED = object()


def _cap(text: str) -> int | None:
    """`--concurrency`: a number of jobs, 0 for no cap, or `default` for the setting's."""
    if text == "default":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("a number of jobs (0: no cap) or 'default'")
    return value


def _tenant_limits(args: argparse.Namespace) -> int:
    """Show a tenant's concurrency cap, or set its own (operators only: a tenant's
    members can read it at GET /api/v1/tenants/{id}/limits, never change it)."""
    from core.db import Database
    from core.errors import ConveyorError
    from core.identity import tenants
    from core.settings import get_settings

    settings = get_settings()
    db = Database(settings, "cli")
    try:
        with db.transaction() as session:
            tenant = tenants.get(session, args.tenant_id)
            if args.concurrency is not UNCHANGED:
                tenant.max_concurrency = args.concurrency
            own = tenant.max_concurrency
            name = tenant.name
    except ConveyorError as exc:
        print(f"conveyor tenant-limits: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    cap = settings.tenant_concurrency if own is None else own
    source = "TENANT_CONCURRENCY" if own is None else "its own"
    shown = f"{cap} per queue" if cap else "none"
    print(f"{args.tenant_id} ({name}): concurrency cap {shown} ({source})")
    return 0


def _no_dev_tooling(_: argparse.Namespace) -> int:
    print(
        "conveyor dev: the dev tooling (core/dev) is not installed here; "
        "run it from a source checkout",
        file=sys.stderr,
    )
    return 2


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    limits = commands.add_parser(
        "tenant-limits", help="show a tenant's concurrency cap, or set its own (operators)"
    )
    limits.add_argument("tenant_id", type=uuid.UUID)
    limits.add_argument(
        "--concurrency",
        type=_cap,
        default=UNCHANGED,
        metavar="N|default",
        help="its jobs sent or running at once per queue (0: no cap), or 'default' for "
        "TENANT_CONCURRENCY's",
    )
    limits.set_defaults(func=_tenant_limits)
