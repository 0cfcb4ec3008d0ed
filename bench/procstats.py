"""CPU time and memory of processes, read from /proc (Linux; no dependency).

A scenario snapshots the CPU seconds of every process it cares about before and after its load,
and the machine's busy CPU time too: what the machine spent beyond our processes is other
tenants' work, reported as ``foreign_cpu_s`` so a noisy run is visible in the results.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    return _fields((PROC / str(pid) / "stat").read_text())


def _fields(raw: str) -> list[str]:
    """The fields of a stat file after the command name (field 2), which is in parentheses and
    may contain spaces."""
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


@dataclass(frozen=True)
class ThreadTimes:
    name: str  # the kernel's name for it (at most 15 characters)
    user_s: float
    system_s: float
    voluntary: int  # context switches it asked for (it waited)
    involuntary: int  # context switches forced on it (preempted)


def thread_times(pid: int) -> dict[int, ThreadTimes]:
    """Every thread of ``pid`` as it stands now, by thread id; threads that end meanwhile are left out."""
    out = {}
    for task in (PROC / str(pid) / "task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue
        fields = _fields(stat)
        switches = dict(re.findall(r"^(voluntary_ctxt_switches|nonvoluntary_ctxt_switches):\s+(\d+)", status, re.M))
        out[int(task.name)] = ThreadTimes(
            name=stat[stat.index("(") + 1 : stat.rindex(")")],
            user_s=int(fields[11]) / CLOCK_TICKS,
            system_s=int(fields[12]) / CLOCK_TICKS,
            voluntary=int(switches.get("voluntary_ctxt_switches", 0)),
            involuntary=int(switches.get("nonvoluntary_ctxt_switches", 0)),
        )
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB: VmRSS and VmHWM from /proc/<pid>/status."""
    values = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _unit = line.split()
            values[key[:-1]] = int(amount) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def reset_peak(pid: int) -> None:
    """Start ``pid``'s peak RSS (VmHWM) afresh at its current RSS, through Linux's
    ``/proc/<pid>/clear_refs`` (allowed to the process's own user and to root). Where it is not
    allowed nothing changes: the peak is then the process's lifetime's."""
    with contextlib.suppress(OSError):
        (PROC / str(pid) / "clear_refs").write_text("5")


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


# A process that is not the benchmark's own (the machine's RabbitMQ, Redis) is named with this:
# its peak RSS is the peak during the stretch measured, not since it started, where it can be reset.
SHARED = " (shared)"


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
        for name, pid in self.pids.items():
            if name.endswith(SHARED):
                for p in self._tree(pid):
                    reset_peak(p)
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
