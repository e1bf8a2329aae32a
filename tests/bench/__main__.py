"""`python -m tests.bench pipeline|upload|fairness|webhooks|lines`: the benchmarks behind
`make bench`, `make bench-upload`, `make bench-fairness`, `make bench-webhooks` and
`make bench-lines`.
Tooling, not product: the production image leaves it out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.bench import fairness, line_length, pipeline, upload, webhook_latency
from tests.bench.options import (
    FairnessOptions,
    LineOptions,
    PipelineOptions,
    UploadOptions,
    WebhookOptions,
    add_fairness_arguments,
    add_line_arguments,
    add_pipeline_arguments,
    add_upload_arguments,
    add_webhook_arguments,
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
    add_fairness_arguments(
        commands.add_parser("fairness", help="one tenant's flood, with fair dispatch and without")
    )
    add_webhook_arguments(
        commands.add_parser("webhooks", help="from a job's end to its webhook's arrival")
    )
    add_line_arguments(
        commands.add_parser("lines", help="a hand-off's cost as a tenant's line grows")
    )
    args = parser.parse_args(argv)
    if args.command == "pipeline":
        return pipeline.main(options_from(PipelineOptions, args))
    if args.command == "webhooks":
        return webhook_latency.main(options_from(WebhookOptions, args))
    if args.command == "lines":
        return line_length.main(options_from(LineOptions, args))
    if args.command == "fairness":
        return fairness.main(options_from(FairnessOptions, args))
    return upload.main(options_from(UploadOptions, args))


if __name__ == "__main__":
    sys.exit(main())
