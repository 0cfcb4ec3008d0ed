"""python -m bench.gpu, the script a GPU machine runs, runs end to end: here on the CPU
(``--device cpu``, the same code with the GPU runtime's module on the CPU), briefly. Structure
only: no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.utils.modules import run_module

pytestmark = [pytest.mark.slow]


def test_the_gpu_script_measures_every_row(seeded: tuple[Path, Path], repo: Path, tmp_path: Path) -> None:
    models_dir, gallery_dir = seeded
    stdout = run_module(
        repo, "bench.gpu", "--device", "cpu", "--duration", "0.5", "--batches", "2", "--waits", "5",
        "--clients", "4", "--worker-threads", "2",
        "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir), "--out", str(tmp_path),
    )  # fmt: skip
    out = json.loads((tmp_path / "gpu.json").read_text())
    rows = {row["row"]: row for row in out["rows"]}
    expected = [
        "forward only, batch 2, torch-cuda on cpu",
        "(2) preprocess, runtime torch",
        "(2) preprocess, runtime auto",
        "(6q) onnxruntime-int8, runtime auto",
        "system, max batch 2, batch wait 5 ms",
    ]
    assert list(rows) == expected, stdout
    assert all(row["images_per_s"] > 0 for row in rows.values()), rows
    assert all(row.get("errors", 0) == 0 for row in rows.values()), rows
    assert out["header"].startswith("Device: CPU") and "python -m bench.gpu --device cpu" in out["header"]
    assert (tmp_path / "gpu.md").read_text() in stdout
    assert "Best batch wait per max batch: max batch 2: batch wait" in stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_gpu_script_says_so_where_there_is_no_gpu(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no CUDA device here"):
        run_module(repo, "bench.gpu", "--out", str(tmp_path))
    assert not (tmp_path / "gpu.json").exists()
