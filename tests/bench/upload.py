"""The upload bench itself (see UPLOAD_DESCRIPTION in tests/bench/__init__.py).

Order of a run: S3 (moto started, or the configured endpoint checked), a fresh database
and Redis database, the api, a registered user; then a small untimed upload each way,
and `repeats` rounds of one api upload and one boto3 upload of the same file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import pstats
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import httpx
import psutil

from core.settings import Settings
from core.storage import StorageError
from core.storage.s3 import S3Storage
from tests.bench import cpu
from tests.bench.runner import (
    HTTP_TIMEOUT_SECONDS,
    REPO_ROOT,
    BenchError,
    LoggedGroup,
    Servers,
    _cpu_line,
    _expect,
    _interrupt,
    _load,
    _python_module,
    _roots,
    check_port_free,
    log_in,
    say,
    wait_ready,
)
from tests.bench.s3 import S3Target, start_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOG_DIR = Path(".conveyor") / "bench-upload"
MIB = 1024 * 1024
# What the client hands httpx at a time; large enough that the client's Python overhead
# per byte is small next to the api's.
CLIENT_CHUNK = MIB
# Fixed, and long enough that random file bytes will not contain it.
BOUNDARY = "conveyor-bench-upload-3b9e41c07d5a4f26a8d1"
FILENAME = "bench.bin"
# Three parts at the default part size: the warm-up goes through the whole multipart
# path (create, parts, complete), not just one put_object.
WARMUP_BYTES = 24 * MIB
RSS_INTERVAL_SECONDS = 0.05
# Goals the figures are reported against.
RATIO_GOAL = 0.6
RSS_GOAL_MIB = 150.0


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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> UploadOptions:
        return cls(
            size_mib=args.size_mib,
            repeats=args.repeats,
            environment=args.environment,
            port=args.port,
            database_name=args.database_name,
            timeout=args.timeout,
            profile_api=args.profile_api,
            verbose=args.verbose,
        )

    @property
    def size(self) -> int:
        return self.size_mib * MIB


# --- the file and the body -------------------------------------------------------------


@dataclass(frozen=True)
class BenchFile:
    path: Path
    size: int
    sha256: str


def make_file(path: Path, size: int) -> BenchFile:
    """Random bytes, so nothing on the way can compress them; written a chunk at a time
    so the bench never holds the file in memory."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(MIB, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return BenchFile(path, size, digest.hexdigest())


def multipart_envelope() -> tuple[bytes, bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{FILENAME}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


async def multipart_body(
    file: BenchFile, head: bytes, tail: bytes, sent: list[float]
) -> AsyncIterator[bytes]:
    """The body read from disk as it is sent. httpx's `files=` would stream an open file
    too, 64 KiB at a time; this says when the first byte went and sends larger chunks.
    httpcore starts iterating the body once the request headers are written."""
    sent.append(time.perf_counter())
    yield head
    with file.path.open("rb") as source:
        remaining = file.size
        while remaining:
            chunk = source.read(min(CLIENT_CHUNK, remaining))
            if not chunk:
                raise BenchError(f"{file.path} is shorter than {file.size} bytes")
            remaining -= len(chunk)
            yield chunk
    yield tail


# --- resident memory -------------------------------------------------------------------


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for member in [proc, *proc.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _proc_file(pid: int, name: str) -> Path:
    return Path("/proc") / str(pid) / name


def reset_high_water_mark(pid: int) -> bool:
    """Linux: `5` to clear_refs resets the kernel's peak RSS (VmHWM) of a process."""
    try:
        _proc_file(pid, "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def high_water_mark(pid: int) -> int | None:
    try:
        status = _proc_file(pid, "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class RssSampler:
    """Resident memory of a process and its children, every 50 ms from a thread of its
    own (the event loop's thread is busy sending). The kernel's high-water mark of the
    process, reset on entry, catches a peak that falls between two samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.sampled_peak = 0
        self.kernel_peak: int | None = None
        self._hwm_reset = False

    def _sample(self) -> None:
        try:
            self.sampled_peak = max(self.sampled_peak, _tree_rss(self._proc))
        except psutil.NoSuchProcess:
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_SECONDS):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._hwm_reset = reset_high_water_mark(self.pid)
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._hwm_reset:
            self.kernel_peak = high_water_mark(self.pid)


# --- the uploads -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    size: int
    cpu: cpu.Usage | None
    sampled_rss: int = 0
    kernel_rss: int | None = None

    @property
    def mib_per_s(self) -> float:
        return self.size / MIB / self.seconds

    @property
    def peak_rss(self) -> int:
        return max(self.sampled_rss, self.kernel_rss or 0)


async def api_upload(client: httpx.AsyncClient, file: BenchFile, timeout: float) -> float:
    """One upload through the api, checked and then deleted; the seconds from its first
    body byte to the 201."""
    head, tail = multipart_envelope()
    sent: list[float] = []
    response = await client.post(
        "/api/v1/uploads",
        content=multipart_body(file, head, tail, sent),
        headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(head) + file.size + len(tail)),
        },
        timeout=timeout,
    )
    answered = time.perf_counter()
    upload = _expect(response, 201).json()["upload"]
    if upload["size"] != file.size or upload["sha256"] != file.sha256:
        raise BenchError(
            f"the api stored {upload['size']} bytes with sha256 {upload['sha256']}, "
            f"not the {file.size} bytes with sha256 {file.sha256} sent"
        )
    # Deleted through the api, which removes the object and the row: moto keeps objects
    # in memory, and a growing moto would slow later runs down.
    _expect(await client.delete(f"/api/v1/uploads/{upload['id']}"), 204)
    return answered - sent[0]


def boto3_upload(client: S3Client, bucket: str, file: BenchFile) -> float:
    key = f"bench-upload/boto3-{uuid.uuid4().hex}"
    with file.path.open("rb") as source:
        start = time.perf_counter()
        # The default TransferConfig: what a plain boto3 client does.
        client.upload_fileobj(source, bucket, key)
        seconds = time.perf_counter() - start
    stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    client.delete_object(Bucket=bucket, Key=key)
    if stored != file.size:
        raise BenchError(f"boto3 stored {stored} bytes, not {file.size}")
    return seconds


@dataclass
class Results:
    api: list[Run] = field(default_factory=list)
    boto3: list[Run] = field(default_factory=list)
    rss_before: int = 0
    rss_after_warmup: int = 0
    part_size: int = 0
    # Whether the S3 server is the bench's own moto, whose CPU it then accounts for.
    moto: bool = True


def _mib(size: float) -> str:
    return f"{size / MIB:.1f} MiB"


async def drive(
    opts: UploadOptions,
    group: LoggedGroup,
    s3: S3Client,
    bucket: str,
    warmup: BenchFile,
    file: BenchFile,
    part_size: int,
    moto: bool,
) -> Results:
    results = Results(part_size=part_size, moto=moto)
    api_pid = group.procs["api"].pid
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{opts.port}", timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await wait_ready(client, group)
        client.headers["Authorization"] = f"Bearer {await log_in(client)}"
        results.rss_before = _tree_rss(psutil.Process(api_pid))
        say(f"api rss before the first upload: {_mib(results.rss_before)}")

        say(f"warming up: one {_mib(warmup.size)} upload each way, untimed")
        await api_upload(client, warmup, opts.timeout)
        await asyncio.to_thread(boto3_upload, s3, bucket, warmup)
        results.rss_after_warmup = _tree_rss(psutil.Process(api_pid))

        roots = _roots(group)
        for round_ in range(1, opts.repeats + 1):
            group.check_alive()
            before = cpu.snapshot(time.monotonic())
            with RssSampler(api_pid) as rss:
                seconds = await api_upload(client, file, opts.timeout)
            used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
            run = Run(seconds, file.size, used, rss.sampled_peak, rss.kernel_peak)
            results.api.append(run)
            kernel = f", kernel high-water mark {_mib(run.kernel_rss)}" if run.kernel_rss else ""
            say(
                f"  api   {round_}/{opts.repeats}: {_mib(file.size)} in {seconds:.2f} s "
                f"-> {run.mib_per_s:.1f} MiB/s; api rss peak {_mib(run.sampled_rss)} "
                f"(sampled){kernel}"
            )

            before = cpu.snapshot(time.monotonic())
            seconds = await asyncio.to_thread(boto3_upload, s3, bucket, file)
            used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
            run = Run(seconds, file.size, used)
            results.boto3.append(run)
            say(
                f"  boto3 {round_}/{opts.repeats}: {_mib(file.size)} in {seconds:.2f} s "
                f"-> {run.mib_per_s:.1f} MiB/s"
            )
    return results


# --- processes -------------------------------------------------------------------------


def api_env(
    opts: UploadOptions, servers: Servers, target: S3Target, secret_key: str
) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": opts.environment,
        "SECRET_KEY": secret_key,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        # BROKER_URL wins over REDIS_URL; pin it to the Redis database just flushed.
        "BROKER_URL": servers.redis_url,
        # One token serves the whole run, however long --timeout lets it be.
        "ACCESS_TOKEN_MINUTES": "1440",
        "DATA_DIR": str(REPO_ROOT / LOG_DIR),
        "MAX_UPLOAD_BYTES": str(opts.size),
        "PYTHONUNBUFFERED": "1",
        **target.overrides,
    }


# `python -c` program for --profile-api: uvicorn.run in a profiler, with the same
# arguments as the plain api. After shutting down, uvicorn raises again the SIGTERM it
# stopped on; with Python's default action the process would die before the profile is
# written, so here it becomes SystemExit, which runs the `finally`.
PROFILED_API = """
import cProfile, signal, sys
import uvicorn
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
profile = cProfile.Profile()
profile.enable()
try:
    uvicorn.run("api.main:app", host="127.0.0.1", port=int(sys.argv[2]), workers=1)
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
"""


def api_argv(opts: UploadOptions) -> list[str]:
    if opts.profile_api is not None:
        return [sys.executable, "-c", PROFILED_API, str(opts.profile_api.resolve()), str(opts.port)]
    return _python_module(
        "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(opts.port), "--workers", "1"
    )


def print_profile(path: Path) -> None:
    if not path.exists():
        say(f"no profile in {path}: the api did not exit cleanly")
        return
    say(f"api profile (event loop thread only) in {path}; top functions by own time:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(20)
    sys.stdout.flush()


# --- report ----------------------------------------------------------------------------

S3_CPU_NOTE = "S3 is not started by the bench: if it runs on this machine, its CPU is 'other'"


def report(opts: UploadOptions, results: Results) -> None:
    api_rate = statistics.median([r.mib_per_s for r in results.api])
    boto3_rate = statistics.median([r.mib_per_s for r in results.boto3])
    ratio = api_rate / boto3_rate
    peak = max(r.peak_rss for r in results.api)
    total_mib = opts.size_mib * opts.repeats
    api_cpu = cpu.combine([r.cpu for r in results.api])
    boto3_cpu = cpu.combine([r.cpu for r in results.boto3])
    s3_note = [] if results.moto else [S3_CPU_NOTE]
    lines = [
        "",
        *s3_note,
        f"api upload (POST /api/v1/uploads, S3 parts of {_mib(results.part_size)})",
        f"  median {api_rate:.1f} MiB/s over {opts.repeats} runs "
        f"({', '.join(f'{r.seconds:.2f}' for r in results.api)} s)",
        f"  api rss: {_mib(results.rss_before)} before the first upload, "
        f"{_mib(results.rss_after_warmup)} after the warm-up, peak {_mib(peak)} while receiving",
        *_cpu_line(api_cpu, total_mib, "MiB"),
        "boto3 upload_fileobj (default TransferConfig)",
        f"  median {boto3_rate:.1f} MiB/s over {opts.repeats} runs "
        f"({', '.join(f'{r.seconds:.2f}' for r in results.boto3)} s)",
        *_cpu_line(boto3_cpu, total_mib, "MiB"),
        f"api / boto3 = {ratio:.3f} (goal: >= {RATIO_GOAL}); api peak rss {_mib(peak)} "
        f"(goal: < {RSS_GOAL_MIB:.0f} MiB)",
        f"upload_mib_per_s={api_rate:.2f} boto3_mib_per_s={boto3_rate:.2f} "
        f"ratio={ratio:.3f} api_peak_rss_mib={peak / MIB:.1f}",
    ]
    say("\n".join(lines))


# --- main ------------------------------------------------------------------------------


def _describe_s3(target: S3Target, settings: Settings) -> str:
    where = "moto, started for this run" if target.moto else "S3_ENDPOINT_URL"
    return f"S3 {settings.s3_endpoint_url} bucket {settings.do_spaces_bucket} ({where})"


def measure(opts: UploadOptions, servers: Servers, group: LoggedGroup, workdir: Path) -> Results:
    secret_key = secrets.token_urlsafe(36)
    target = start_s3(group)
    settings = target.settings(environment=opts.environment, secret_key=secret_key)
    bucket = settings.do_spaces_bucket
    assert bucket is not None
    storage = S3Storage(settings)
    say(f"  {_describe_s3(target, settings)}")
    if target.moto:
        storage.ensure_bucket()
    else:
        # Someone else's bucket: used as it is, never created.
        try:
            storage.ping()
        except StorageError as exc:
            raise BenchError(f"{exc} (bucket {bucket}: the bench does not create it)") from exc
    # The api's own client settings (endpoint, addressing, timeouts, checksums), so the
    # two kinds of upload differ in the path the bytes take, not in the client.
    s3 = storage.client()

    say("preparing: fresh database, migrations, empty Redis database")
    servers.recreate_database()
    servers.flush_redis()
    say(f"preparing: {opts.size_mib} MiB of random bytes in {workdir}")
    warmup = make_file(workdir / "warmup.bin", min(WARMUP_BYTES, opts.size))
    file = make_file(workdir / FILENAME, opts.size)

    group.env = api_env(opts, servers, target, secret_key)
    group.start("api", api_argv(opts))
    return asyncio.run(
        drive(opts, group, s3, bucket, warmup, file, settings.s3_part_size_bytes, target.moto)
    )


def main(opts: UploadOptions) -> int:
    servers = Servers.from_environment(opts.database_name)
    log_dir = REPO_ROOT / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    # The environment of the api is set once the S3 endpoint is known.
    group = LoggedGroup(
        env=dict(os.environ), cwd=str(REPO_ROOT), quiet=not opts.verbose, log_dir=log_dir
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        check_port_free(opts.port)
        say(
            f"conveyor bench-upload: {opts.size_mib} MiB, {opts.repeats} runs each way, "
            f"environment {opts.environment}"
        )
        say(f"  {servers.describe()}; {os.cpu_count()} cores, load {_load()}")
        say(f"  process output in {REPO_ROOT / LOG_DIR}/")
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-upload-") as workdir:
            try:
                results = measure(opts, servers, group, Path(workdir))
            finally:
                # Stopped before the report: cProfile writes its file as the api exits.
                group.stop()
    except BenchError as exc:
        group.print_tails()
        say(f"bench-upload failed: {exc}")
        return 1
    except Exception as exc:  # a server refused or went away: still stop cleanly, say why
        traceback.print_exc()
        group.print_tails()
        say(f"bench-upload failed: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        say("bench-upload interrupted; everything it started has been stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if opts.profile_api is not None:
        print_profile(opts.profile_api.resolve())
    report(opts, results)
    return 0
