"""bench.allocator's report: both malloc modes measured in fresh processes, written as JSON and a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import allocator


def test_the_report_has_both_modes(
    tmp_path: Path, seeded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models_dir, gallery_dir = seeded
    monkeypatch.setenv("CLASSIFIER_RUNTIME", "torch")  # no runtime check: quicker, the same allocations
    args = ["--rounds", "1", "--passes", "1", "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir)]
    assert allocator.main([*args, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "allocator.json").read_text())
    assert set(report["medians"]) == set(allocator.MODES)
    for values in report["medians"].values():
        assert values["cpu_ms"] > 0 and values["faults"] >= 0 and values["kernel_ms"] >= 0
    table = (tmp_path / "allocator.md").read_text()
    assert "| default |" in table and "| worker |" in table
    assert "python -m bench.allocator --rounds 1 --passes 1" in capsys.readouterr().out
