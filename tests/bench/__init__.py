"""`conveyor bench`: how far the job pipeline is from bare Celery on this machine.

It starts the real stack (api + worker) on a fresh PostgreSQL database and a flushed
Redis database, submits `diagnostics.echo` jobs over HTTP and times them until they have
succeeded; in the same run it times a no-op Celery task with the same broker, settings,
pool and concurrency, and compares `GET /api/v1/jobs/{id}` with `GET /healthz`.

Last, it times `POST /api/v1/auth/password-reset/request` for one registered email
against a fresh unregistered one each time, one request in flight, and prints
`reset_timing_ratio=<median registered / median unregistered>`: 1.0 means the response
time does not tell whether an email has an account; far from 1.0 means it does.

The last line of output is machine-readable:

    pipeline_jobs_per_s=<f> celery_tasks_per_s=<f> ratio=<f> poll_ratio=<f>
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DEFAULT_DATABASE_NAME = "conveyor_bench"
# Its own database and port, so `bench-upload` never drops the one a `bench` is using.
DEFAULT_UPLOAD_DATABASE_NAME = "conveyor_bench_upload"
DEFAULT_UPLOAD_PORT = 8201

# Shared by the bench and its no-op worker (tests/bench/noop.py), which must not import
# each other: the worker module builds a Celery app from the environment at import.
NOOP_TASK = "conveyor.bench.noop"


def noop_done_key(counter: str) -> str:
    return f"{counter}:done"


_DATABASE_NAME = re.compile(r"^conveyor_bench[a-z0-9_]*$")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _database_name(text: str) -> str:
    # The bench drops this database first, so it only accepts names that are its own.
    if not _DATABASE_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: must start with {DEFAULT_DATABASE_NAME!r} (lower case, digits, _)"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--jobs", type=_positive, default=2000, help="jobs and no-op tasks to time (2000)"
    )
    parser.add_argument(
        "--concurrency", type=_positive, default=16, help="client requests in flight (16)"
    )
    parser.add_argument(
        "--worker-concurrency",
        type=_positive,
        default=2,
        help="prefork processes of the job worker and of the no-op worker (2)",
    )
    parser.add_argument(
        "--poll-requests",
        type=_positive,
        default=3000,
        help="GET /api/v1/jobs/{id} and GET /healthz requests to time, each (3000)",
    )
    parser.add_argument(
        "--reset-requests",
        type=_positive,
        default=300,
        help="password reset requests to time for a registered email and for unregistered "
        "ones, each (300)",
    )
    parser.add_argument("--api-workers", type=_positive, default=1, help="uvicorn --workers (1)")
    parser.add_argument(
        "--warmup",
        type=_positive,
        default=100,
        help="untimed jobs, tasks and requests sent first to warm each path up (100)",
    )
    parser.add_argument(
        "--environment",
        choices=["production", "dev"],
        default="production",
        help="ENVIRONMENT of the processes started (production)",
    )
    parser.add_argument("--port", type=int, default=8200, help="port of the api (8200)")
    parser.add_argument(
        "--database-name",
        type=_database_name,
        default=DEFAULT_DATABASE_NAME,
        help="database created (dropped first) on the DATABASE_URL server (conveyor_bench)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="upper bound in seconds on each wait: a batch to finish, a request round (600)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the output of the processes started"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that other `conveyor` commands do not load the bench's clients.
    from tests.bench.runner import BenchOptions, main

    return main(BenchOptions.from_args(args))


UPLOAD_DESCRIPTION = """\
`conveyor bench-upload`: how far `POST /api/v1/uploads` is from a plain boto3 upload.

It makes a file of random bytes, then in turn streams it as multipart/form-data
through the api (uvicorn, one worker, on a fresh PostgreSQL database and a flushed Redis
database) into S3, and uploads it to the same S3 endpoint with boto3's upload_fileobj
and its default TransferConfig. S3 is S3_ENDPOINT_URL with DO_SPACES_BUCKET and the
credentials from the environment if set, else a moto server started for the run, in a
fresh bucket. No job worker is started: the processing jobs of the uploads stay queued.
Each upload is deleted after it is timed. While the api receives a file, its resident
memory (with any children) is sampled every 50 ms; the peak reported is the larger of
the highest sample and the kernel's high-water mark of the process (VmHWM, reset before
each upload), which also catches a peak between two samples.

The last line of output is machine-readable:

    upload_mib_per_s=<f> boto3_mib_per_s=<f> ratio=<f> api_peak_rss_mib=<f>
"""


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = UPLOAD_DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--size-mib", type=_positive, default=512, help="size of the file in MiB (512)"
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="timed uploads of each kind, api and boto3 in turn; the medians count (3)",
    )
    parser.add_argument(
        "--environment",
        choices=["production", "dev"],
        default="production",
        help="ENVIRONMENT of the api (production)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_UPLOAD_PORT, help="port of the api (8201)"
    )
    parser.add_argument(
        "--database-name",
        type=_database_name,
        default=DEFAULT_UPLOAD_DATABASE_NAME,
        help="database created (dropped first) on the DATABASE_URL server (conveyor_bench_upload)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="upper bound in seconds on each request and each start-up wait (600)",
    )
    parser.add_argument(
        "--profile-api",
        metavar="FILE",
        type=Path,
        default=None,
        help="run the api under cProfile, write its stats to FILE and print the top "
        "functions; it profiles the event loop's thread only and slows the api down",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the output of the processes started"
    )
    parser.set_defaults(func=run_upload)


def run_upload(args: argparse.Namespace) -> int:
    # Imported here, like `run`, so other commands do not load the bench's clients.
    from tests.bench.upload import UploadOptions, main

    return main(UploadOptions.from_args(args))
