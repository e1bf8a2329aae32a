"""`python -m tests.bench pipeline|upload`: the benchmarks behind `make bench` and
`make bench-upload`. Tooling, not product: the production image leaves it out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.bench import pipeline, upload
from tests.bench.options import (
    PipelineOptions,
    UploadOptions,
    add_pipeline_arguments,
    add_upload_arguments,
    options_from,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_pipeline_arguments(
        commands.add_parser("pipeline", help="the job pipeline against bare Celery")
    )
    add_upload_arguments(
        commands.add_parser("upload", help="POST /api/v1/uploads against a plain boto3 upload")
    )
    args = parser.parse_args(argv)
    if args.command == "pipeline":
        return pipeline.main(options_from(PipelineOptions, args))
    return upload.main(options_from(UploadOptions, args))


if __name__ == "__main__":
    sys.exit(main())
