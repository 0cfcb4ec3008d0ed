"""The claim-check benchmark's harness (bench/claim_check.py) on two sizes: both paths deliver the
bytes, and a stored upload's message costs the broker a small fraction of an inline one."""

from __future__ import annotations

import pytest

from bench import claim_check

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_smoke_run_measures_both_paths() -> None:
    result = claim_check.run(claim_check.SMOKE_SIZES, smoke=True)
    rows = {(row["bytes"], row["path"]): row for row in result["rows"]}
    assert set(rows) == {(size, path) for size in claim_check.SMOKE_SIZES for path in ("inline", "stored")}
    for row in rows.values():
        assert 0 < row["submit_ms"] <= row["total_ms"]
    mib = 1024 * 1024
    assert rows[(mib, "inline")]["broker_bytes_per_message"] > mib * 0.9
    assert rows[(mib, "stored")]["broker_bytes_per_message"] < mib * 0.1
    assert "| 1,024 KiB | stored |" in claim_check.markdown(result)
