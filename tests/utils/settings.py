"""Settings for the one-process system in a test's own directory: real SQLite, an in-process queue
of its own, the seeded weights and gallery."""

from __future__ import annotations

import uuid
from pathlib import Path

from classifier_common.config import Settings


def embedded_settings(tmp_path: Path, seeded: tuple[Path, Path], **overrides: object) -> Settings:
    models_dir, gallery_dir = seeded
    values: dict[str, object] = {
        "broker_url": f"memory://test-{uuid.uuid4().hex}",
        "store_url": f"sqlite:///{tmp_path}/jobs.db",
        "models_dir": models_dir,
        "gallery_dir": gallery_dir,
        "models": ["efficientnet_lite0"],
        "spool_dir": tmp_path / "queue",
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)
