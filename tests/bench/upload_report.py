"""What `make bench-upload` measured, and what it prints at the end: each kind of
upload's median rate and CPU, the api's memory, the ratio against the goals, and last
the machine-readable line."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tests.bench import cpu
from tests.bench.options import UploadOptions
from tests.bench.output import MIB, mib, say

# Goals the figures are reported against.
RATIO_GOAL = 0.6
RSS_GOAL_MIB = 150.0
S3_CPU_NOTE = "S3 is not started by the bench: if it runs on this machine, its CPU is 'other'"


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


@dataclass
class Results:
    api: list[Run] = field(default_factory=list)
    boto3: list[Run] = field(default_factory=list)
    rss_before: int = 0
    rss_after_warmup: int = 0
    part_size: int = 0
    # Whether the S3 server is the bench's own moto, whose CPU it then accounts for.
    moto: bool = True


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
        f"api upload (POST /api/v1/uploads, S3 parts of {mib(results.part_size)})",
        f"  median {api_rate:.1f} MiB/s over {opts.repeats} runs "
        f"({', '.join(f'{r.seconds:.2f}' for r in results.api)} s)",
        f"  api rss: {mib(results.rss_before)} before the first upload, "
        f"{mib(results.rss_after_warmup)} after the warm-up, peak {mib(peak)} while receiving",
        *cpu.report_lines(api_cpu, total_mib, "MiB"),
        "boto3 upload_fileobj (default TransferConfig)",
        f"  median {boto3_rate:.1f} MiB/s over {opts.repeats} runs "
        f"({', '.join(f'{r.seconds:.2f}' for r in results.boto3)} s)",
        *cpu.report_lines(boto3_cpu, total_mib, "MiB"),
        f"api / boto3 = {ratio:.3f} (goal: >= {RATIO_GOAL}); api peak rss {mib(peak)} "
        f"(goal: < {RSS_GOAL_MIB:.0f} MiB)",
        f"upload_mib_per_s={api_rate:.2f} boto3_mib_per_s={boto3_rate:.2f} "
        f"ratio={ratio:.3f} api_peak_rss_mib={peak / MIB:.1f}",
    ]
    say("\n".join(lines))
