"""The chaos suite's summary: one line per scenario, then the totals, printed at the end
of any run that included tests/chaos (under pytest-xdist too: each test's record travels
with its report)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

TOTALS = pytest.StashKey[str]()


@dataclass
class Scenario:
    name: str
    submitted: int = 0
    succeeded: int = 0
    # Not finished when the scenario ended: lost, as far as the user can tell.
    stuck: int = 0
    # Ran more than one attempt, each recorded as an event (a requeue and its reason).
    rerun: int = 0
    # Ran to the end of its handler more than once: the work was done twice.
    duplicated: int = 0
    # From the fault's end (or the kill) to the last affected job finished, in seconds.
    recovery_s: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    records: dict[str, dict[str, Any]] = {}
    passed: dict[str, bool] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            if report.when == "call" or (report.when == "setup" and report.failed):
                passed[report.nodeid] = report.passed
            for key, value in report.user_properties:
                if key == "chaos" and isinstance(value, str):
                    records[report.nodeid] = json.loads(value)
    if not records:
        return
    terminalreporter.section("chaos")
    worst = 0.0
    for nodeid, record in sorted(records.items()):
        recovery = record["recovery_s"]
        if recovery is not None:
            worst = max(worst, recovery)
        terminalreporter.write_line(
            f"{record['name']}: submitted={record['submitted']} "
            f"succeeded={record['succeeded']} stuck={record['stuck']} "
            f"rerun={record['rerun']} duplicated={record['duplicated']} "
            f"recovery_s={'-' if recovery is None else f'{recovery:.1f}'}"
            f"{'' if passed.get(nodeid) else ' FAILED'}"
        )
    totals = (
        f"chaos_scenarios={len(records)} passed={sum(passed.get(n, False) for n in records)} "
        f"worst_recovery_s={worst:.1f} "
        f"lost={sum(r['stuck'] for r in records.values())} "
        f"duplicated={sum(r['duplicated'] for r in records.values())}"
    )
    terminalreporter.write_line(totals)
    terminalreporter.config.stash[TOTALS] = totals


def pytest_unconfigure(config: pytest.Config) -> None:
    """The totals again, as the very last line of the run (after pytest's own)."""
    totals = config.stash.get(TOTALS, None)
    if totals is not None:
        print(totals)  # noqa: T201 - the run's last line, for scripts to read
