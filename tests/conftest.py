"""Fixtures shared by the whole suite: the repo's seeded data and the gallery ground truth."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from mongomock.gridfs import enable_gridfs_integration

from devstack.paths import REPO
from tests.utils.server import Server, embedded_server

# pymongo's gridfs checks that it is given a pymongo Database; this lets it take mongomock's, in
# every test that builds the Mongo adapter on mongomock.
enable_gridfs_integration()

GALLERY_SOURCE = REPO / "gallery"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models_dir, gallery_dir) seeded by the real seed step into a temporary folder."""
    from classifier_worker.seed import seed_gallery, seed_models

    root = tmp_path_factory.mktemp("seeded")
    models_dir, gallery_dir = root / "models", root / "gallery"
    seed_models(models_dir, ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"], download=False)
    seed_gallery(gallery_dir, GALLERY_SOURCE)
    return models_dir, gallery_dir


@pytest.fixture(scope="session")
def seeded_lite0_export(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Path:
    """A models folder with efficientnet_lite0's weights and the ONNX export the seed step makes
    of them, with its recorded check against torch on the gallery (what a worker without torch
    serves)."""
    import shutil

    from classifier_common.catalog import get_spec
    from classifier_worker.seed import seed_exports

    spec = get_spec("efficientnet_lite0")
    models_dir = tmp_path_factory.mktemp("seeded-export")
    shutil.copy(spec.weights_path(seeded[0]), spec.weights_path(models_dir))
    seed_exports(models_dir, [spec.name], seeded[1])
    return models_dir


@pytest.fixture(scope="session")
def gallery_labels() -> dict[str, int]:
    """{file name: true ImageNet class index} for the 41 gallery photos."""
    with (GALLERY_SOURCE / "labels.csv").open() as fh:
        return {row["file"]: int(row["class_index"]) for row in csv.DictReader(fh)}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Server]:
    """The one-process system (`make run`) at a real URL, shared by the CLI and client tests."""
    models_dir, gallery_dir = seeded
    with embedded_server(tmp_path_factory.mktemp("server"), models_dir, gallery_dir) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/ui drives Chromium: marked `browser` so `make test-fast` can leave it out."""
    ui = REPO / "tests" / "ui"
    for item in items:
        if ui in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
