"""The worker scrape targets file of the local Prometheus (monitoring/prometheus/local.yml).

Prometheus' file-based discovery re-reads ``data/stack/prometheus-targets.json`` whenever it
changes, so whoever starts or stops worker processes (the stack script, the experiments runner)
rewrites it. Format: a JSON list of target groups, one per worker, labelled with its index and,
when given, the worker pool it serves (the `pool` label the rules and dashboards group by, as
the chart's PodMonitor sets it on Kubernetes):

    [{"targets": ["127.0.0.1:9100"], "labels": {"worker": "0", "pool": "lite"}}, ...]

No ``service`` label: the services' own metrics carry one, and a target label of the same name
would rename theirs to ``exported_service``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_TARGETS_FILE = Path("data/stack/prometheus-targets.json")


def worker_target_groups(
    ports: Sequence[int],
    host: str = "127.0.0.1",
    worker_ids: Sequence[int] | None = None,
    pools: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One group per worker, labelled with its id (its position in ``ports`` unless
    ``worker_ids`` is given: a pool that stops worker 0 keeps calling the others 1, 2, ... so
    their series stay the same series) and, with ``pools`` (one per port), its worker pool."""
    if len(set(ports)) != len(ports):
        raise ValueError(f"duplicate worker ports: {list(ports)}")
    ids = list(range(len(ports))) if worker_ids is None else list(worker_ids)
    if len(ids) != len(ports):
        raise ValueError("one worker id per port")
    if pools is not None and len(pools) != len(ports):
        raise ValueError("one pool per port")
    groups = []
    for n, (i, port) in enumerate(zip(ids, ports, strict=True)):
        labels = {"worker": str(i)} if pools is None else {"worker": str(i), "pool": pools[n]}
        groups.append({"targets": [f"{host}:{port}"], "labels": labels})
    return groups


def write_worker_targets(
    path: Path,
    ports: Sequence[int],
    host: str = "127.0.0.1",
    worker_ids: Sequence[int] | None = None,
    pools: Sequence[str] | None = None,
) -> None:
    """Replace the targets file atomically, so Prometheus never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.dumps(worker_target_groups(ports, host, worker_ids, pools), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(document)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
