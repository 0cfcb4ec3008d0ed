"""The environment of the one-process system (``python -m classifier_standalone``, ``make run``) on
a port of its own, with everything it writes in one folder: the tests' servers and the GPU
benchmark start it with this."""

from __future__ import annotations

from pathlib import Path


def embedded_env(port: int, state_dir: Path, models_dir: Path, gallery_dir: Path, **env: str) -> dict[str, str]:
    """CLASSIFIER_* variables: the in-process queue, SQLite in ``state_dir``, Lite0; ``env`` adds or
    overrides."""
    return {
        "CLASSIFIER_HOST": "127.0.0.1",
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_BROKER_URL": "memory://",
        "CLASSIFIER_STORE_URL": f"sqlite:///{state_dir}/jobs.db",
        "CLASSIFIER_SPOOL_DIR": str(state_dir / "queue"),
        "CLASSIFIER_MODELS": "efficientnet_lite0",
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_LOG_FORMAT": "text",
        **env,
    }
