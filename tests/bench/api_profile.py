"""`make bench-upload --profile-api`: the api run under cProfile, and its top functions
printed after it exits."""

from __future__ import annotations

import pstats
import sys
from pathlib import Path

from tests.bench.output import say

# `python -c` program: uvicorn.run in a profiler, with the same arguments as the plain
# api. After shutting down, uvicorn raises again the SIGTERM it stopped on; with Python's
# default action the process would die before the profile is written, so here it becomes
# SystemExit, which runs the `finally`.
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


def profiled_api_argv(stats_path: Path, port: int) -> list[str]:
    return [sys.executable, "-c", PROFILED_API, str(stats_path), str(port)]


def print_profile(path: Path) -> None:
    if not path.exists():
        say(f"no profile in {path}: the api did not exit cleanly")
        return
    say(f"api profile (event loop thread only) in {path}; top functions by own time:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(20)
    sys.stdout.flush()
