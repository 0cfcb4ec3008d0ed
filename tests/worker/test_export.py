"""The ONNX export: made from the loaded checkpoint, verified by its recorded sha256, refused and
made again when its file no longer matches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from classifier_common.catalog import get_spec
from classifier_worker import export, quantize
from classifier_worker.models import LoadedModel, weights_version
from classifier_worker.runtimes import OnnxRuntime
from classifier_worker.seed import seed_exports

SPEC = get_spec("efficientnet_lite0")


@pytest.fixture(scope="module")
def lite0(seeded: tuple[Path, Path]) -> LoadedModel:
    return LoadedModel.load(SPEC, seeded[0])


@pytest.fixture(scope="module")
def made(lite0: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export, made once for the module (copied by the tests that change it)."""
    return export.export(lite0.module, SPEC, tmp_path_factory.mktemp("made") / export.export_name(SPEC, lite0.version))


def _copy(made: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for path in (made, made.with_name(made.name + ".sha256")):
        shutil.copy(path, directory / path.name)
    return directory / made.name


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_export_computes_what_torch_computes(lite0: LoadedModel, made: Path) -> None:
    export.verify(made)
    batch = torch.randn(3, 3, SPEC.input_size, SPEC.input_size)  # a batch of 3: the batch axis is dynamic
    with torch.inference_mode():
        expected = lite0.module(batch)
    got = torch.from_numpy(OnnxRuntime(made, threads=1)(batch.numpy()))
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)


def test_a_seeded_export_is_used_as_it_is(lite0: LoadedModel, made: Path, tmp_path: Path) -> None:
    seeded = _copy(made, tmp_path / "models" / export.EXPORTS_DIR)
    found = export.ensure_export(lite0.module, SPEC, lite0.version, tmp_path / "models", tmp_path / "cache")
    assert found == seeded
    assert not (tmp_path / "cache").exists()


def test_a_tampered_export_is_refused_and_made_again(lite0: LoadedModel, made: Path, tmp_path: Path) -> None:
    seeded = _copy(made, tmp_path / "models" / export.EXPORTS_DIR)
    _tamper(seeded)
    with pytest.raises(export.ExportRefused, match="sha256"):
        export.verify(seeded)
    found = export.ensure_export(lite0.module, SPEC, lite0.version, tmp_path / "models", tmp_path / "cache")
    assert found == tmp_path / "cache" / seeded.name
    export.verify(found)
    # Tampered in the cache too: refused there as well, and made again in its place.
    _tamper(found)
    again = export.ensure_export(lite0.module, SPEC, lite0.version, tmp_path / "models", tmp_path / "cache")
    assert again == found
    export.verify(again)


def test_an_export_without_its_digest_is_refused(made: Path, tmp_path: Path) -> None:
    copy = _copy(made, tmp_path)
    copy.with_name(copy.name + ".sha256").unlink()
    with pytest.raises(export.ExportRefused):
        export.verify(copy)


def test_new_weights_never_meet_an_old_export(lite0: LoadedModel) -> None:
    assert lite0.version.rsplit("-", 1)[1] in export.export_name(SPEC, lite0.version)


def test_the_seed_step_exports_once_and_records_its_check(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    models_dir, gallery = tmp_path / "models", tmp_path / "gallery"
    shutil.copytree(seeded[0], models_dir)
    gallery.mkdir()
    for photo in sorted(seeded[1].glob("*.JPEG"))[:3]:  # the check itself is tested in test_onnx_only.py
        shutil.copy(photo, gallery / photo.name)
    assert seed_exports(models_dir, ["efficientnet_lite0"], gallery) == {"efficientnet_lite0": "exported"}
    spec = get_spec("efficientnet_lite0")
    version = weights_version(spec, models_dir)
    path = models_dir / export.EXPORTS_DIR / export.export_name(spec, version)
    int8 = models_dir / export.EXPORTS_DIR / quantize.int8_name(spec, version)
    assert sorted((models_dir / export.EXPORTS_DIR).glob("*.onnx")) == sorted([path, int8])
    record = export.read_agreement(path, export.verify(path))
    assert (record.photos, record.agreeing, record.refused) == (3, 3, None)
    int8_record = export.read_agreement(int8, export.verify(int8))
    assert (int8_record.photos, int8_record.refused) == (3, None)
    int8_made = int8.stat().st_mtime_ns
    assert seed_exports(models_dir, ["efficientnet_lite0"], gallery) == {"efficientnet_lite0": "present"}
    assert export.read_agreement(path, export.verify(path)) == record  # neither made nor checked again
    assert export.read_agreement(int8, export.verify(int8)) == int8_record
    assert int8.stat().st_mtime_ns == int8_made
    _tamper(path)
    assert seed_exports(models_dir, ["efficientnet_lite0"], gallery) == {"efficientnet_lite0": "exported"}
    assert export.read_agreement(path, export.verify(path)).export_sha256 == export.verify(path)


EXPORT_IN_A_PROCESS = """
import sys
from pathlib import Path
from classifier_common.catalog import get_spec
from classifier_worker import export, quantize
from classifier_worker.models import LoadedModel, weights_version
spec = get_spec("efficientnet_lite0")
loaded = LoadedModel.load(spec, Path(sys.argv[1]))
print(export.export(loaded.module, spec, Path(sys.argv[2])))
"""


def test_workers_starting_together_may_export_the_same_model_at_once(
    seeded: tuple[Path, Path], lite0: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker's process exports the same model to the same place, start to finish, while
    this one is between writing its export and putting it in place."""
    target = tmp_path / "cache" / export.export_name(SPEC, lite0.version)
    write = torch.onnx.export

    def write_then_let_the_other_worker_finish(*args: object, **kwargs: object) -> None:
        write(*args, **kwargs)
        other = [sys.executable, "-c", EXPORT_IN_A_PROCESS, str(seeded[0]), str(target)]
        subprocess.run(other, check=True, capture_output=True, timeout=300)

    monkeypatch.setattr(torch.onnx, "export", write_then_let_the_other_worker_finish)
    assert export.export(lite0.module, SPEC, target) == target
    export.verify(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".sha256"]
