from __future__ import annotations

import os

import pytest

from tests.bench import cpu
from tests.bench.job_throughput import PipelineResult
from tests.bench.pipeline_report import StackResults, _ceilings, paired_ratios

JOBS = 2000


def _round(per_second: float, cpu_seconds: float | None = None) -> PipelineResult:
    seconds = JOBS / per_second
    usage = (
        None
        if cpu_seconds is None
        else cpu.Usage(seconds={"api": cpu_seconds, "other": 1.0}, busy=cpu_seconds, wall=seconds)
    )
    return PipelineResult(
        jobs=JOBS,
        submit_seconds=seconds,
        submit_latencies=[],
        total_seconds=seconds,
        job_latencies=[],
        cpu=usage,
    )


def test_paired_ratios_compare_each_round_with_the_one_beside_it() -> None:
    # The machine doubles its speed after the first pair: each pair still says 0.5.
    ours = [_round(100), _round(200), _round(200)]
    theirs = [_round(200), _round(400), _round(400)]
    assert paired_ratios(ours, theirs) == pytest.approx([0.5, 0.5, 0.5])


def test_paired_ratios_refuse_rounds_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="longer"):
        paired_ratios([_round(100)], [_round(200), _round(200)])


def _results(pipeline: list[PipelineResult], peer: list[PipelineResult]) -> StackResults:
    return StackResults(
        pipeline=pipeline,
        peer=peer,
        durable_peer=peer,
        batch=_round(300, cpu_seconds=8.0),
        peer_batch=_round(800, cpu_seconds=4.0),
        durable_peer_batch=_round(450, cpu_seconds=6.0),
        poll=None,  # type: ignore[arg-type]  # not read by the ceilings
        reset=None,  # type: ignore[arg-type]
    )


def test_ceilings_are_the_rates_at_every_core_busy_against_the_peer() -> None:
    # A job costs twice the peer's CPU in every round: the pipeline's ceiling is 0.5.
    # What "other" used is not the phase's.
    pipeline = [_round(100, cpu_seconds=20.0), _round(120, cpu_seconds=20.0)]
    peer = [_round(200, cpu_seconds=10.0), _round(240, cpu_seconds=10.0)]
    (line,) = _ceilings(_results(pipeline, peer), peer[0])
    cores = os.cpu_count() or 1
    assert "ceiling_peer_ratio=0.500 " in line
    # The batch: JOBS jobs in 8 CPU-s, every core busy, over the peer's 200 tasks/s.
    assert f"ceiling_batch_ratio={cores * JOBS / 8.0 / 200:.3f} " in line
    assert f"ceiling_durable_peer_batch_ratio={cores * JOBS / 6.0 / 200:.3f} " in line


def test_ceilings_are_left_out_where_cpu_was_not_measured() -> None:
    pipeline = [_round(100, cpu_seconds=20.0)]
    peer = [_round(200)]
    assert _ceilings(_results(pipeline, peer), peer[0]) == []
