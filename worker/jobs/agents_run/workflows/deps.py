from __future__ import annotations

from dataclasses import dataclass

from worker.jobs.agents_run.library import Library


@dataclass(frozen=True)
class RunDeps:
    """What a run's tools reach through their context: only the uploads the run names,
    already checked to be the job's tenant's."""

    library: Library
