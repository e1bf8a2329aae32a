from __future__ import annotations

import os

import pytest

from tests.bench import cpu
from tests.bench.job_throughput import PipelineResult
from tests.bench.pipeline_report import RoundRatios, StackResults, _ceilings, paired_ratios

JOBS = 2000


def _round(per_second: float, cpu_seconds: float | None = None) -> PipelineResult:
    seconds = JOBS / per_second
    usage = (
        None
        if cpu_seconds is None
        else cpu.Usage(
            seconds={"api": cpu_seconds, "other": 1.0}, busy=cpu_seconds + 1.0, wall=seconds
        )
    )
    return PipelineResult(
        jobs=JOBS,
        submit_seconds=seconds,
        submit_latencies=[],
        total_seconds=seconds,
        job_latencies=[],
        cpu=usage,
    )


def _results(
    pipeline: list[PipelineResult],
    peer: list[PipelineResult],
    durable_peer: list[PipelineResult] | None = None,
) -> StackResults:
    return StackResults(
        pipeline=pipeline,
        peer=peer,
        durable_peer=durable_peer or peer,
        batch=_round(300, cpu_seconds=8.0),
        peer_batch=_round(800, cpu_seconds=4.0),
        durable_peer_batch=_round(450, cpu_seconds=5.0),
        poll=None,  # type: ignore[arg-type]  # read by neither
        reset=None,  # type: ignore[arg-type]
    )


def test_paired_ratios_compare_each_round_with_the_other_stacks_in_its_turn() -> None:
    # Paired by turn: 100/400 and 300/200. Sorted, they would pair 100/200 and 300/400.
    ours = [_round(100), _round(300)]
    theirs = [_round(400), _round(200)]
    assert paired_ratios(ours, theirs) == pytest.approx([0.25, 1.5])


def test_paired_ratios_refuse_rounds_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="longer"):
        paired_ratios([_round(100)], [_round(200), _round(200)])


def test_round_ratios_pair_every_stack_by_turn() -> None:
    ratios = RoundRatios.of(
        _results(
            pipeline=[_round(100), _round(300)],
            peer=[_round(400), _round(200)],
            durable_peer=[_round(200), _round(100)],
        )
    )
    assert ratios.peer == pytest.approx([0.25, 1.5])
    assert ratios.durable_peer == pytest.approx([0.5, 0.5])
    assert ratios.pipeline_vs_durable_peer == pytest.approx([0.5, 3.0])


def test_ceilings_are_each_phase_at_every_core_busy_over_the_peers_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    # With 2 cores, 2000 jobs in 20 CPU-s make 200 jobs/s at most: over the peer's
    # 400 and 250 tasks/s in their turns, 0.5 and 0.8; what "other" used is not theirs.
    pipeline = [_round(100, cpu_seconds=20.0), _round(120, cpu_seconds=20.0)]
    peer = [_round(400, cpu_seconds=10.0), _round(250, cpu_seconds=10.0)]
    (line,) = _ceilings(_results(pipeline, peer), peer[1])
    assert "ceiling_peer_ratio=0.650 " in line
    # The batches against the peer's 250 tasks/s: 500 and 800 jobs/s at most.
    assert "ceiling_batch_ratio=2.000 " in line
    assert "ceiling_durable_peer_batch_ratio=3.200 " in line


def test_ceilings_are_left_out_where_cpu_was_not_measured() -> None:
    pipeline = [_round(100, cpu_seconds=20.0), _round(120)]
    peer = [_round(200), _round(200)]
    assert _ceilings(_results(pipeline, peer), peer[0]) == []
