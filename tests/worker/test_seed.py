"""The seed step: copies verified weights and gallery photos, is idempotent, refuses bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifier_worker import export
from classifier_worker.models import file_sha256
from classifier_worker.seed import MARKER, SeedError, expected_digest, main, seed_gallery, seed_models
from devstack.paths import REPO


def test_seed_copies_lite_weights_and_skips_torchvision_offline(tmp_path: Path) -> None:
    outcome = seed_models(tmp_path, ["efficientnet_lite0", "resnet18"], download=False)
    assert outcome["efficientnet_lite0"] == "copied"
    assert outcome["resnet18"].startswith("skipped")
    weights = tmp_path / "efficientnet-lite0-57934424.pth"
    assert file_sha256(weights) == expected_digest(weights.name)
    assert seed_models(tmp_path, ["efficientnet_lite0"], download=False)["efficientnet_lite0"] == "present"


def test_seed_replaces_a_corrupt_weights_file(tmp_path: Path) -> None:
    (tmp_path / "efficientnet-lite0-57934424.pth").write_bytes(b"corrupt")
    assert seed_models(tmp_path, ["efficientnet_lite0"], download=False)["efficientnet_lite0"] == "copied"


def test_torchvision_digest_comes_from_the_published_file_name() -> None:
    assert expected_digest("resnet18-f37072fd.pth") == "f37072fd"
    with pytest.raises(SeedError):
        expected_digest("mystery.pth")


def test_gallery_seed_verifies_checksums(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "gallery", source)
    assert seed_gallery(tmp_path / "gallery", source) == 42  # 41 photos + labels.csv
    (source / "n01531178_goldfinch.JPEG").write_bytes(b"tampered")
    (tmp_path / "gallery" / "n01531178_goldfinch.JPEG").unlink()
    with pytest.raises(SeedError, match="sha256"):
        seed_gallery(tmp_path / "gallery", source)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--models-dir",
        str(tmp_path / "m"),
        "--gallery-dir",
        str(tmp_path / "g"),
        "--gallery-source",
        str(REPO / "gallery"),
    ]
    assert main([*args, "--models", "efficientnet_lite0"]) == 0
    assert "seeded 1 models" in capsys.readouterr().out
    # The models volume is marked seeded only once the export, its int8 model and their checks are
    # recorded (pods wait for the marker; an ONNX-only worker needs them).
    records = list((tmp_path / "m" / export.EXPORTS_DIR).glob(f"*{export.CHECK_SUFFIX}"))
    assert len(records) == 2  # the export's and its int8 model's
    assert all((tmp_path / "m" / MARKER).stat().st_mtime_ns >= r.stat().st_mtime_ns for r in records)
    assert main([*args, "--models", "resnet18"]) == 1  # nothing usable seeded
