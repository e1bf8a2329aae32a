"""Who used the CPU during a phase, from /proc (Linux): each started process with its
descendants, the bench itself, PostgreSQL and Redis, and everything else on the machine.

On a small machine the client, the api, the worker and the servers share the cores, so
the split says which of them a phase was waiting for. Elsewhere it reports nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Server processes named by their `comm`; anything not ours and not these is "other".
_SERVERS = {"postgres": "postgres", "redis-server": "redis"}


@dataclass(frozen=True)
class _Proc:
    ppid: int
    comm: str
    cpu: float
    # For a PostgreSQL backend, the database it serves; None for the server's own.
    database: str | None = None
    # CPU of its children that have exited (and been waited for).
    exited_children: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    procs: Mapping[int, _Proc]
    busy: float
    wall: float


def _read_procs() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # comm may contain spaces and parentheses; it ends at the last ')'.
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        database = _postgres_database(entry) if comm == "postgres" else None
        procs[int(entry.name)] = _Proc(
            int(fields[1]), comm, (utime + stime) / _TICKS, database, (cutime + cstime) / _TICKS
        )
    return procs


def _postgres_database(entry: Path) -> str | None:
    """A backend's title reads "postgres: [<cluster>: ]<user> <database> <client>
    <activity>"; the server's own processes ("postgres: walwriter", ...) name no client."""
    try:
        title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    parts = title.split()
    for index, part in enumerate(parts[3:], start=3):
        if part == "[local]" or ("(" in part and part.endswith(")")):
            return parts[index - 1]
    return None


def _busy_seconds() -> float:
    """CPU time spent not idle since boot, all cores together."""
    values = [int(v) for v in (_PROC / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def available() -> bool:
    return (_PROC / "stat").exists() and (_PROC / "self" / "stat").exists()


def snapshot(wall: float) -> Snapshot | None:
    if not available():
        return None
    return Snapshot(procs=_read_procs(), busy=_busy_seconds(), wall=wall)


def _descendants(procs: Mapping[int, _Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    found = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


@dataclass(frozen=True)
class Usage:
    """CPU seconds per consumer over a phase, and the phase's length."""

    seconds: dict[str, float]
    busy: float
    wall: float

    @property
    def capacity(self) -> float:
        return self.wall * (os.cpu_count() or 1)

    @property
    def others_share(self) -> float:
        """Share of the machine used by processes that are not part of the bench."""
        return self.seconds.get("other", 0.0) / self.capacity if self.capacity else 0.0

    def ours(self) -> float:
        """CPU seconds of everything the phase exercised: not "other"."""
        return sum(value for name, value in self.seconds.items() if name != "other")

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value:.1f}" for name, value in self.seconds.items())
        cores = os.cpu_count() or 1
        return (
            f"cpu-s: {parts}; machine busy {self.busy:.1f} of "
            f"{self.wall * cores:.1f} ({cores} cores x {self.wall:.1f} s)"
        )

    def describe_cost(self, count: int, unit: str) -> str:
        """CPU per unit of work: unlike a rate, barely moved by a busy neighbour."""
        parts = ", ".join(
            f"{name} {value / count * 1000:.2f}"
            for name, value in self.seconds.items()
            if name != "other"
        )
        return f"cpu-ms per {unit}: {self.ours() / count * 1000:.2f} ({parts})"


def combine(parts: Sequence[Usage | None]) -> Usage | None:
    """One usage for several phases, as if they had run back to back."""
    if not parts or any(part is None for part in parts):
        return None
    seconds: dict[str, float] = {}
    for part in parts:
        assert part is not None
        for name, value in part.seconds.items():
            seconds[name] = seconds.get(name, 0.0) + value
    return Usage(
        seconds=seconds,
        busy=sum(p.busy for p in parts if p is not None),
        wall=sum(p.wall for p in parts if p is not None),
    )


def usage(
    start: Snapshot | None,
    end: Snapshot | None,
    roots: Mapping[str, int],
    database: str | None = None,
) -> Usage | None:
    """Attribute the CPU used between two snapshots. A process that exited in between
    is missing from its owner and shows up only in the machine's busy total, except a
    PostgreSQL backend, whose CPU the postmaster collects. Live backends serving another
    database than `database` count as "other"."""
    if start is None or end is None:
        return None
    owner: dict[int, str] = {os.getpid(): "bench"}
    for name, root in roots.items():
        for pid in _descendants(end.procs, root):
            owner[pid] = name
    seconds = {name: 0.0 for name in [*roots, "bench", *_SERVERS.values()]}
    for pid, proc in end.procs.items():
        consumer = owner.get(pid) or _SERVERS.get(proc.comm)
        if consumer is None or proc.database not in (None, database):
            continue
        before = start.procs.get(pid)
        # A pid reused by another command is a new process.
        seconds[consumer] += proc.cpu - (before.cpu if before and before.comm == proc.comm else 0.0)
    seconds["postgres"] += _exited_backends(start, end)
    busy = end.busy - start.busy
    # Everything else, including processes that came and went between the snapshots.
    seconds["other"] = max(0.0, busy - sum(seconds.values()))
    return Usage(seconds=seconds, busy=busy, wall=end.wall - start.wall)


def _exited_backends(start: Snapshot, end: Snapshot) -> float:
    """CPU of the PostgreSQL backends that exited between the snapshots: the postmaster
    collects it when it waits for them. A connection opened and closed per request
    would otherwise vanish from the figures. Backends of every database count here."""
    total = 0.0
    for pid, proc in end.procs.items():
        parent = end.procs.get(proc.ppid)
        if proc.comm != "postgres" or (parent is not None and parent.comm == "postgres"):
            continue
        before = start.procs.get(pid)
        total += proc.exited_children - (before.exited_children if before else 0.0)
    return total


# Above this share of the machine used by unrelated processes, a figure is flagged.
DISTURBED_SHARE = 0.10


def report_lines(usage: Usage | None, count: int, unit: str) -> list[str]:
    """A phase's CPU for a report: per unit of work, per consumer, and a warning when
    other processes took enough of the machine to lower the phase's figure."""
    if usage is None:
        return []
    lines = [f"  {usage.describe_cost(count, unit)}", f"  {usage.describe()}"]
    if usage.others_share > DISTURBED_SHARE:
        lines.append(
            f"  WARNING: other processes used {usage.others_share:.0%} of the machine during "
            "this phase; the figure is lower than on a quiet machine"
        )
    return lines


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
