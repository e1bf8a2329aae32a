"""The command line of each bench: what it measures, the arguments it takes and the
options they make."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from tests.bench.output import MIB

PIPELINE_DESCRIPTION = """\
`make bench`: the job pipeline against the stack a user would build instead.

It starts the real stack (api + worker + beat) on a fresh PostgreSQL database and a
flushed Redis database (PostgreSQL with autovacuum on: turned on for the run if the
server has it off, and set back after; the tables analyzed after each warmup), and
beside it the peer: a minimal FastAPI + Celery app as the
common tutorials write it (`POST /tasks` -> `.delay()`, `GET /tasks/{id}` -> a Redis
result backend, a static bearer token, a no-op task), with the same uvicorn and Celery
settings, pool and concurrency, on a Redis database of its own. Both are driven by the
same client at the same concurrency, in alternating rounds: N `diagnostics.echo` jobs
submitted over HTTP and timed until they have succeeded, against N no-op tasks timed
until they have a result. Then N jobs go through `POST /api/v1/jobs/batch`, and
`GET /api/v1/jobs/{id}` is timed against the peer's `GET /tasks/{id}` and `GET /healthz`.
A no-op Celery task published from Python is timed first, for information.

Last, it times `POST /api/v1/auth/password-reset/request` for one registered email
against a fresh unregistered one each time, one request in flight, and prints
`reset_timing_ratio=<median registered / median unregistered>`: 1.0 means the response
time does not tell whether an email has an account; far from 1.0 means it does.

The last line of output is machine-readable (medians of the rounds):

    pipeline_jobs_per_s=<f> peer_jobs_per_s=<f> peer_ratio=<f> peer_poll_ratio=<f>
    batch_jobs_per_s=<f> batch_ratio=<f>

(all on one line). `peer_ratio` is the median of each round's jobs/s over the tasks/s
of the peer's round in the same turn, so not `pipeline_jobs_per_s / peer_jobs_per_s`
(the median rounds); `batch_ratio` is the batch's jobs/s over the peer's median round.
The line above the goals gives the ceilings of `peer_ratio` and `batch_ratio` at the
CPU a job cost.
"""

UPLOAD_DESCRIPTION = """\
`make bench-upload`: how far `POST /api/v1/uploads` is from a plain boto3 upload.

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

FAIRNESS_DESCRIPTION = """\
`make bench-fairness`: what one tenant's flood costs another, with fair dispatch and
without it.

On one stack as the Procfile runs it (api, job worker, system worker, beat), with a
local SMTP server: the quiet tenant's jobs alone on an idle system (solo); then a noisy
tenant's flood with the quiet tenant's jobs submitted a moment after it starts, once
with both tenants' caps off (fifo: one first-come line, as before fair dispatch) and
once with TENANT_CONCURRENCY's caps (fair). During each flood, password resets are
timed from the request to the email reaching SMTP. Jobs are `diagnostics.sleep`.

The last line of output is machine-readable:

    fair_wait_p95_s=<f> solo_wait_p95_s=<f> fifo_wait_p95_s=<f> fair_throughput_ratio=<f>

(the quiet tenant's p95 wait from submit to start, fair, solo and fifo; and jobs/s of
the fair flood over the fifo one's).
"""

WEBHOOKS_DESCRIPTION = """\
`make bench-webhooks`: how long after a job ends its webhook arrives.

On the dev stack as `conveyor dev` runs it (api, job worker, webhooks worker, beat),
with a local receiver that verifies each delivery with the `standardwebhooks` package:
one endpoint, then `--jobs` `diagnostics.echo` jobs submitted one at a time, `--gap`
seconds apart, on an otherwise idle system. Each event's latency is the time it arrived
at the receiver less the job's `finished_at` (the moment its end was committed; the
same machine's clock).

The last line of output is machine-readable:

    webhook_latency_p50_s=<f> webhook_latency_p95_s=<f> webhook_latency_max_s=<f> delivered=<n>/<n>
"""

LINES_DESCRIPTION = """\
`make bench-lines`: what handing a slot on costs as a tenant's line grows.

PostgreSQL only, no other process. A hand-off is what a worker does for each job: the
claim of a job given a slot, then its success, which gives the slot to the line's next
job, on one connection. It is timed on two tenants' lines in one database, their slots
full: one of 100 waiting jobs and one of `--length`, submitted in batches of up to
1,000 as `POST /api/v1/jobs/batch` takes them, beside `--history` finished jobs. Each
line is topped up after every 10 hand-offs, untimed, so it keeps its length. They are
timed in alternating rounds of `--hand-offs`, each figure the median of its rounds:
first as the planner sees a table it has no statistics of yet (new, or changing faster
than autovacuum analyzes it; autovacuum is off for the table until then), then once
the table is analyzed.

The last line of output is machine-readable:

    line_cost_ratio_fresh=<f> line_cost_ratio_analyzed=<f> line_cost_ratio=<f>

(the long line's ms per hand-off over the short one's, in each phase, and the larger).
"""

DEFAULT_DATABASE_NAME = "conveyor_bench"
DEFAULT_PORT = 8200
# Its own database and port, so `bench-upload` never drops the one a `bench` is using.
DEFAULT_UPLOAD_DATABASE_NAME = "conveyor_bench_upload"
DEFAULT_UPLOAD_PORT = 8201
DEFAULT_FAIRNESS_DATABASE_NAME = "conveyor_bench_fairness"
DEFAULT_FAIRNESS_PORT = 8202
DEFAULT_WEBHOOKS_DATABASE_NAME = "conveyor_bench_webhooks"
DEFAULT_WEBHOOKS_PORT = 8203
DEFAULT_LINES_DATABASE_NAME = "conveyor_bench_lines"

_DATABASE_NAME = re.compile(r"^conveyor_bench[a-z0-9_]*$")


@dataclass(frozen=True)
class PipelineOptions:
    jobs: int
    rounds: int
    concurrency: int
    worker_concurrency: int
    poll_requests: int
    reset_requests: int
    api_workers: int
    warmup: int
    environment: str
    port: int
    database_name: str
    timeout: float
    verbose: bool


@dataclass(frozen=True)
class FairnessOptions:
    noisy_jobs: int
    quiet_jobs: int
    job_seconds: float
    quiet_after: float
    resets: int
    concurrency: int
    worker_concurrency: int
    environment: str
    port: int
    database_name: str
    timeout: float
    verbose: bool


@dataclass(frozen=True)
class WebhookOptions:
    jobs: int
    gap: float
    environment: str
    port: int
    database_name: str
    timeout: float
    verbose: bool


@dataclass(frozen=True)
class LineOptions:
    length: int
    history: int
    hand_offs: int
    rounds: int
    database_name: str


@dataclass(frozen=True)
class UploadOptions:
    size_mib: int
    repeats: int
    environment: str
    port: int
    database_name: str
    timeout: float
    profile_api: Path | None
    verbose: bool

    @property
    def size(self) -> int:
        return self.size_mib * MIB


Options = TypeVar(
    "Options", PipelineOptions, UploadOptions, FairnessOptions, WebhookOptions, LineOptions
)


def options_from(kind: type[Options], args: argparse.Namespace) -> Options:
    """The options of one bench from its parsed arguments (each field is an argument's
    destination)."""
    return kind(**{option.name: getattr(args, option.name) for option in fields(kind)})


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


def _add_stack_arguments(
    parser: argparse.ArgumentParser,
    *,
    started: str,
    port: int,
    database: str,
    timeout_help: str,
    environment: str = "production",
) -> None:
    """The arguments every bench takes for the stack it starts."""
    parser.add_argument(
        "--environment",
        choices=["production", "dev"],
        default=environment,
        help=f"ENVIRONMENT of {started} ({environment})",
    )
    parser.add_argument("--port", type=int, default=port, help=f"port of the api ({port})")
    parser.add_argument(
        "--database-name",
        type=_database_name,
        default=database,
        help=f"database created (dropped first) on the DATABASE_URL server ({database})",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help=timeout_help)


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="show the output of the processes started"
    )


def _describe(parser: argparse.ArgumentParser, description: str) -> None:
    parser.description = description
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _add_count(parser: argparse.ArgumentParser, flag: str, default: int, meaning: str) -> None:
    """A whole number of at least 1; its help ends with the default."""
    parser.add_argument(flag, type=_positive, default=default, help=f"{meaning} ({default})")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    _describe(parser, PIPELINE_DESCRIPTION)
    _add_count(parser, "--jobs", 2000, "jobs and no-op tasks to time, per round")
    _add_count(
        parser, "--rounds", 3, "rounds of the pipeline and of its peer, alternating; medians count"
    )
    _add_count(parser, "--concurrency", 16, "client requests in flight")
    _add_count(
        parser,
        "--worker-concurrency",
        2,
        "prefork processes of the job worker and of the no-op worker",
    )
    _add_count(
        parser,
        "--poll-requests",
        3000,
        "GET /api/v1/jobs/{id} and GET /healthz requests to time, each",
    )
    _add_count(
        parser,
        "--reset-requests",
        300,
        "password reset requests to time for a registered email and for unregistered ones, each",
    )
    _add_count(parser, "--api-workers", 1, "uvicorn --workers")
    _add_count(
        parser, "--warmup", 100, "untimed jobs, tasks and requests sent first to warm each path up"
    )
    _add_stack_arguments(
        parser,
        started="the processes started",
        port=DEFAULT_PORT,
        database=DEFAULT_DATABASE_NAME,
        timeout_help="upper bound in seconds on each wait: a batch to finish, a request "
        "round (600)",
    )
    _add_verbose(parser)


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    _describe(parser, UPLOAD_DESCRIPTION)
    _add_count(parser, "--size-mib", 512, "size of the file in MiB")
    _add_count(
        parser,
        "--repeats",
        3,
        "timed uploads of each kind, api and boto3 in turn; the medians count",
    )
    _add_stack_arguments(
        parser,
        started="the api",
        port=DEFAULT_UPLOAD_PORT,
        database=DEFAULT_UPLOAD_DATABASE_NAME,
        timeout_help="upper bound in seconds on each request and each start-up wait (600)",
    )
    parser.add_argument(
        "--profile-api",
        metavar="FILE",
        type=Path,
        default=None,
        help="run the api under cProfile, write its stats to FILE and print the top "
        "functions; it profiles the event loop's thread only and slows the api down",
    )
    _add_verbose(parser)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, not {value}")
    return value


def add_fairness_arguments(parser: argparse.ArgumentParser) -> None:
    _describe(parser, FAIRNESS_DESCRIPTION)
    _add_count(parser, "--noisy-jobs", 1000, "jobs the noisy tenant floods the system with")
    _add_count(parser, "--quiet-jobs", 20, "jobs the quiet tenant submits")
    parser.add_argument(
        "--job-seconds", type=_seconds, default=0.2, help="how long each job sleeps (0.2)"
    )
    parser.add_argument(
        "--quiet-after",
        type=_seconds,
        default=2.0,
        help="seconds from the flood's start to the quiet tenant's submits (2)",
    )
    _add_count(parser, "--resets", 10, "password resets timed during each flood, one a second")
    _add_count(parser, "--concurrency", 16, "client requests in flight per tenant")
    _add_count(parser, "--worker-concurrency", 4, "prefork processes of the job worker")
    _add_stack_arguments(
        parser,
        started="the processes started",
        port=DEFAULT_FAIRNESS_PORT,
        database=DEFAULT_FAIRNESS_DATABASE_NAME,
        timeout_help="upper bound in seconds on each wait (600)",
    )
    _add_verbose(parser)


def add_webhook_arguments(parser: argparse.ArgumentParser) -> None:
    _describe(parser, WEBHOOKS_DESCRIPTION)
    _add_count(parser, "--jobs", 200, "jobs whose webhooks are timed")
    parser.add_argument(
        "--gap", type=_seconds, default=0.05, help="seconds between two submits (0.05)"
    )
    _add_stack_arguments(
        parser,
        started="the processes started (http:// receivers need dev)",
        port=DEFAULT_WEBHOOKS_PORT,
        database=DEFAULT_WEBHOOKS_DATABASE_NAME,
        timeout_help="upper bound in seconds on each wait (600)",
        environment="dev",
    )
    _add_verbose(parser)


def add_line_arguments(parser: argparse.ArgumentParser) -> None:
    _describe(parser, LINES_DESCRIPTION)
    _add_count(parser, "--length", 10_000, "jobs waiting in the long line")
    _add_count(parser, "--history", 100_000, "finished jobs beside the lines")
    _add_count(parser, "--hand-offs", 200, "hand-offs timed per line and round")
    _add_count(parser, "--rounds", 3, "alternating rounds")
    parser.add_argument(
        "--database-name",
        type=_database_name,
        default=DEFAULT_LINES_DATABASE_NAME,
        help=f"database created (dropped first) on the DATABASE_URL server "
        f"({DEFAULT_LINES_DATABASE_NAME})",
    )
