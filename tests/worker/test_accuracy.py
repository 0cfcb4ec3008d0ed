"""Top-1 accuracy of each EfficientNet-Lite on the 41 gallery photos with the worker's own
loading and preprocessing (the HTTP path is checked for Lite0 in tests/e2e/test_accuracy.py).
Measured: Lite0 37/41, Lite1 38/41, Lite2 38/41; the floor catches broken preprocessing or labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_common.catalog import get_spec
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode

MIN_CORRECT = {"efficientnet_lite0": 37, "efficientnet_lite1": 37, "efficientnet_lite2": 37}


@pytest.mark.parametrize("name", sorted(MIN_CORRECT))
def test_gallery_top1(name: str, seeded: tuple[Path, Path], gallery_labels: dict[str, int]) -> None:
    models_dir, gallery_dir = seeded
    model = LoadedModel.load(get_spec(name), models_dir)
    wrong = {}
    for file, true_index in gallery_labels.items():
        top1 = model.predict([decode((gallery_dir / file).read_bytes(), model.spec)])[0][0]
        if top1.class_index != true_index:
            wrong[file] = top1.label
    correct = len(gallery_labels) - len(wrong)
    print(f"\n{name} gallery top-1: {correct}/{len(gallery_labels)}; wrong: {wrong}")
    assert correct >= MIN_CORRECT[name], wrong
