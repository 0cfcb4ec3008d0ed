"""CPU feature detection from /proc/cpuinfo text: bf16 only where the hardware computes it."""

from __future__ import annotations

import pytest

from classifier_worker.cpu import cpu_flags, cpu_model, has_bf16

ZEN3 = "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu sse sse2 avx avx2 fma sha_ni vaes\n"
ZEN4 = "model name\t: AMD EPYC 9B14\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 avx512vl\n"
SAPPHIRE_RAPIDS = "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: avx512f avx512_vnni amx_tile amx_bf16\n"
AVX512_WITHOUT_BF16 = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: avx2 avx512f avx512bw avx512vl\n"


@pytest.mark.parametrize(
    ("cpuinfo", "bf16"),
    [(ZEN3, False), (AVX512_WITHOUT_BF16, False), (ZEN4, True), (SAPPHIRE_RAPIDS, True), ("", False)],
)
def test_bf16_only_with_avx512_bf16_or_amx(cpuinfo: str, bf16: bool) -> None:
    assert has_bf16(cpu_flags(cpuinfo)) is bf16


def test_cpu_model_is_read() -> None:
    assert cpu_model(ZEN3) == "AMD EPYC 7B13 64-Core Processor"
