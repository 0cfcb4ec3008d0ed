"""CPU time and memory of processes, read from /proc (Linux; no dependency).

A scenario snapshots the CPU seconds of every process it cares about before and after its load,
and the machine's busy CPU time too: what the machine spent beyond our processes is other
tenants' work, reported as ``foreign_cpu_s`` so a noisy run is visible in the results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    raw = (PROC / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB: VmRSS and VmHWM from /proc/<pid>/status."""
    values = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _unit = line.split()
            values[key[:-1]] = int(amount) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (BentoML and uvicorn --workers fork their workers)."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def find_pid(*needles: str) -> int | None:
    """The longest-running process whose command line contains every needle (e.g. the shared
    RabbitMQ, started with the machine: a test's own node, started later, is not taken for it)."""
    found: list[tuple[int, int]] = []  # (start time in clock ticks since boot, pid)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            started = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if all(needle in cmdline for needle in needles):
            found.append((started, int(entry.name)))
    return min(found)[1] if found else None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / CLOCK_TICKS


@dataclass
class ProcessUsage:
    name: str
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float


class Meter:
    """Measures named process trees (a pid and its descendants) over one stretch of load."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self._cpu0: dict[str, float] = {}
        self._busy0 = 0.0

    def _tree(self, pid: int) -> list[int]:
        return [pid, *children(pid)] if pid != os.getpid() else [pid]

    def _cpu(self, pid: int) -> float:
        total = 0.0
        for p in self._tree(pid):
            try:
                total += cpu_seconds(p)
            except OSError:
                pass  # exited in between
        return total

    def start(self) -> None:
        self._busy0 = machine_busy_seconds()
        self._cpu0 = {name: self._cpu(pid) for name, pid in self.pids.items()}

    def stop(self) -> tuple[list[ProcessUsage], float]:
        """Per-process usage since start(), and the CPU seconds spent by processes not ours."""
        busy = machine_busy_seconds() - self._busy0
        usages = []
        for name, pid in self.pids.items():
            rss = peak = 0.0
            for p in self._tree(pid):
                try:
                    current, high = memory_mb(p)
                except OSError:
                    continue
                rss += current
                peak += high
            usages.append(ProcessUsage(name, self._cpu(pid) - self._cpu0[name], rss, peak))
        ours = sum(u.cpu_s for u in usages)
        return usages, max(0.0, busy - ours)
