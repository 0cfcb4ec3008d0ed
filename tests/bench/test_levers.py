"""The performance levers that changed code keep doing what they were kept for
(docs/performance.md has their numbers): the worker answers with torchvision's ImageNet category
names without importing torchvision (~165 MB less memory per worker). The long-poll lever's tests
are in tests/results/test_long_poll.py, the store's ``finished_among`` in the store contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from classifier_worker.models import imagenet_categories


def test_category_names_are_torchvisions() -> None:
    from torchvision.models import ResNet18_Weights

    assert imagenet_categories() == tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_a_worker_classifies_without_importing_torchvision(seeded: tuple[Path, Path]) -> None:
    models_dir, gallery_dir = seeded
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from classifier_common.catalog import get_spec\n"
        "import classifier_worker.__main__, classifier_worker.worker, classifier_worker.processor\n"
        "from classifier_worker.models import LoadedModel\n"
        "from classifier_worker.preprocess import decode\n"
        f"model = LoadedModel.load(get_spec('efficientnet_lite0'), Path({str(models_dir)!r}))\n"
        f"data = Path({str(gallery_dir)!r}, 'n01531178_goldfinch.JPEG').read_bytes()\n"
        "top = model.predict([decode(data, model.spec)])[0][0]\n"
        "print(top.label, 'torchvision' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["goldfinch", "False"]
