"""The multi-process topology (devstack) for a test: up and ready over the seeded models, its
processes' log records and metrics."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from devstack.isolated import isolated_stack
from devstack.stack import Stack


@contextlib.contextmanager
def running_stack(
    tmp: Path, seeded: tuple[Path, Path], workers: int = 2, nginx: bool = False, pools: str = "", **env: str
) -> Iterator[Stack]:
    """An isolated stack over the seeded models and gallery, up and ready; stopped and its queues
    deleted afterwards. With ``pools``, ``workers`` workers per pool."""
    models_dir, gallery_dir = seeded
    stack = isolated_stack(
        tmp,
        workers=workers,
        nginx=nginx,
        pools=pools,
        CLASSIFIER_MODELS_DIR=str(models_dir),
        CLASSIFIER_GALLERY_DIR=str(gallery_dir),
        **env,
    )
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()
        stack.delete_queues()


def log_records(stack: Stack, name_prefix: str) -> list[dict]:
    records = []
    for path in stack.state_dir.glob(f"{name_prefix}*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def metric_value(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total
