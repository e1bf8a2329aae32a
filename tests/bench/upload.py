"""`make bench-upload`, the run (what it measures: UPLOAD_DESCRIPTION in options.py).

Order of a run: S3 (moto started, or the configured endpoint checked), a fresh database
and Redis database, the api, a registered user; then a small untimed upload each way,
and `repeats` rounds of one api upload and one boto3 upload of the same file.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

from core.settings import Settings
from core.storage import StorageError
from core.storage.s3 import S3Storage
from tests.bench import cpu
from tests.bench.api_client import HTTP_TIMEOUT_SECONDS, api_url, expect, sign_in_when_ready
from tests.bench.api_profile import print_profile, profiled_api_argv
from tests.bench.failures import BenchError, failures_explained
from tests.bench.options import UploadOptions
from tests.bench.output import MIB, mib, say
from tests.bench.rss import RssSampler, tree_rss
from tests.bench.s3 import S3Target, start_s3
from tests.bench.stack import LoggedGroup, Stack, api_argv, check_port_free
from tests.bench.upload_body import (
    BOUNDARY,
    FILENAME,
    BenchFile,
    make_file,
    multipart_body,
    multipart_envelope,
)
from tests.bench.upload_report import Results, Run, report

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOG_DIR = Path(".conveyor") / "bench-upload"
# Three parts at the default part size: the warm-up goes through the whole multipart
# path (create, parts, complete), not just one put_object.
WARMUP_BYTES = 24 * MIB


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
    upload = expect(response, 201).json()["upload"]
    if upload["size"] != file.size or upload["sha256"] != file.sha256:
        raise BenchError(
            f"the api stored {upload['size']} bytes with sha256 {upload['sha256']}, "
            f"not the {file.size} bytes with sha256 {file.sha256} sent"
        )
    # Deleted through the api, which removes the object and the row: moto keeps objects
    # in memory, and a growing moto would slow later runs down.
    expect(await client.delete(f"/api/v1/uploads/{upload['id']}"), 204)
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
        base_url=api_url(opts.port), timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        await sign_in_when_ready(client, group)
        results.rss_before = tree_rss(psutil.Process(api_pid))
        say(f"api rss before the first upload: {mib(results.rss_before)}")

        say(f"warming up: one {mib(warmup.size)} upload each way, untimed")
        await api_upload(client, warmup, opts.timeout)
        await asyncio.to_thread(boto3_upload, s3, bucket, warmup)
        results.rss_after_warmup = tree_rss(psutil.Process(api_pid))

        roots = group.roots()
        for round_ in range(1, opts.repeats + 1):
            group.check_alive()
            before = cpu.snapshot(time.monotonic())
            with RssSampler(api_pid) as rss:
                seconds = await api_upload(client, file, opts.timeout)
            used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
            run = Run(seconds, file.size, used, rss.sampled_peak, rss.kernel_peak)
            results.api.append(run)
            kernel = f", kernel high-water mark {mib(run.kernel_rss)}" if run.kernel_rss else ""
            say(
                f"  api   {round_}/{opts.repeats}: {mib(file.size)} in {seconds:.2f} s "
                f"-> {run.mib_per_s:.1f} MiB/s; api rss peak {mib(run.sampled_rss)} "
                f"(sampled){kernel}"
            )

            before = cpu.snapshot(time.monotonic())
            seconds = await asyncio.to_thread(boto3_upload, s3, bucket, file)
            used = cpu.usage(before, cpu.snapshot(time.monotonic()), roots, opts.database_name)
            run = Run(seconds, file.size, used)
            results.boto3.append(run)
            say(
                f"  boto3 {round_}/{opts.repeats}: {mib(file.size)} in {seconds:.2f} s "
                f"-> {run.mib_per_s:.1f} MiB/s"
            )
    return results


def upload_api_argv(opts: UploadOptions) -> list[str]:
    if opts.profile_api is not None:
        return profiled_api_argv(opts.profile_api.resolve(), opts.port)
    return api_argv(opts.port, 1)


def _describe_s3(target: S3Target, settings: Settings) -> str:
    where = "moto, started for this run" if target.moto else "S3_ENDPOINT_URL"
    return f"S3 {settings.s3_endpoint_url} bucket {settings.do_spaces_bucket} ({where})"


def measure(opts: UploadOptions, stack: Stack, group: LoggedGroup, workdir: Path) -> Results:
    target = start_s3(group)
    settings = target.settings(environment=opts.environment, secret_key=stack.secret_key)
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

    stack.servers.prepare()
    say(f"preparing: {opts.size_mib} MiB of random bytes in {workdir}")
    warmup = make_file(workdir / "warmup.bin", min(WARMUP_BYTES, opts.size))
    file = make_file(workdir / FILENAME, opts.size)

    group.start("api", upload_api_argv(opts))
    return asyncio.run(
        drive(opts, group, s3, bucket, warmup, file, settings.s3_part_size_bytes, target.moto)
    )


def main(opts: UploadOptions) -> int:
    stack = Stack.for_run(opts, LOG_DIR, {"MAX_UPLOAD_BYTES": str(opts.size)})
    with failures_explained("bench-upload", stack.groups) as outcome:
        check_port_free(opts.port)
        say(
            f"make bench-upload: {opts.size_mib} MiB, {opts.repeats} runs each way, "
            f"environment {opts.environment}"
        )
        stack.say_where()
        with (
            tempfile.TemporaryDirectory(prefix="conveyor-bench-upload-") as workdir,
            # Left, so stopped, before the report: cProfile writes its file as the api exits.
            stack.group() as group,
        ):
            results = measure(opts, stack, group, Path(workdir))
    if outcome.code:
        return outcome.code
    if opts.profile_api is not None:
        print_profile(opts.profile_api.resolve())
    report(opts, results)
    return 0
