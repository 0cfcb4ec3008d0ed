"""What the CPU can do, from the flags the kernel reports in /proc/cpuinfo."""

from __future__ import annotations

from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# bf16 arithmetic in hardware: AVX-512 BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids
# and later). Without one, torch emulates bf16 and autocast is slower than fp32.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The flags of the first processor listed (all are alike on the machines we run on)."""
    text = CPUINFO.read_text() if cpuinfo is None and CPUINFO.is_file() else (cpuinfo or "")
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model(cpuinfo: str | None = None) -> str:
    text = CPUINFO.read_text() if cpuinfo is None and CPUINFO.is_file() else (cpuinfo or "")
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def has_bf16(flags: frozenset[str]) -> bool:
    return bool(flags & BF16_FLAGS)


@cache
def this_cpu_has_bf16() -> bool:
    return has_bf16(cpu_flags())
