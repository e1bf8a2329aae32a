"""`python -m tests.bench pipeline|upload`: the benchmarks behind `make bench` and
`make bench-upload`. Tooling, not product: the production image leaves it out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests import bench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench.add_arguments(
        commands.add_parser("pipeline", help="the job pipeline against bare Celery")
    )
    bench.add_upload_arguments(
        commands.add_parser("upload", help="POST /api/v1/uploads against a plain boto3 upload")
    )
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
