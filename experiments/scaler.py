"""Who decides the worker count during an experiment.

- :class:`EmulatedHPA`: without a cluster, the HPA v2 algorithm (:mod:`experiments.hpa`) runs
  every sync period on the backlog Prometheus reports and resizes a local :class:`WorkerPool`.
  Its spec is the chart's own HorizontalPodAutoscaler (``helm template``), so the local run
  tries exactly the ``autoscaling`` values a deployment would get.
- :class:`KubernetesHPA`: on a cluster, the real HPA decides; this only reads its status and the
  Deployment's ready replicas with kubectl.

Local runs are shorter than real ones: :func:`time_scaled` compresses the HPA's time constants
(sync period, stabilisation windows, policy periods) by the same factor as the load profile.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from classifier_common.config import DEFAULT_POOL
from devstack.paths import REPO
from experiments import hpa
from experiments.workers import WorkerPool

logger = logging.getLogger(__name__)

CHART = REPO / "helm" / "classifier"
HPA_TEMPLATE = "templates/worker/horizontalpodautoscaler.yaml"
SYNC_PERIOD_S = 15.0  # kube-controller-manager --horizontal-pod-autoscaler-sync-period


def helm_binary() -> str | None:
    local = REPO / ".tools" / "bin" / "helm"
    return str(local) if local.is_file() else shutil.which("helm")


POOL_LABEL = "classifier/pool"


def chart_hpa_manifest(
    values_files: Sequence[Path] = (), set_values: Sequence[str] = (), *, pool: str | None = None
) -> dict[str, Any]:
    """The worker HPA as the chart renders it (helm template). Without helm, the same object is
    built from values.yaml's ``autoscaling`` block (values files and --set are then ignored).

    ``pool``: the HPA of that worker pool (labelled ``classifier/pool``) when the chart renders one
    per pool, else the default pool's; a chart rendering one worker HPA gives that one to every
    pool."""
    helm = helm_binary()
    if helm is None:
        logger.warning("helm not found (make tools): building the HPA from %s/values.yaml", CHART)
        return _manifest_from_values(chart_values()["autoscaling"])
    command = [helm, "template", "classifier", str(CHART), "--show-only", HPA_TEMPLATE]
    for path in values_files:
        command += ["--values", str(path)]
    for setting in set_values:
        command += ["--set", setting]
    rendered = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return pool_hpa([d for d in yaml.safe_load_all(rendered) if d], pool)


def pool_hpa(manifests: Sequence[dict[str, Any]], pool: str | None) -> dict[str, Any]:
    """The HPA among ``manifests`` that scales ``pool``'s workers (see :func:`chart_hpa_manifest`)."""
    hpas = [m for m in manifests if m.get("kind") == "HorizontalPodAutoscaler"]
    if len(hpas) == 1 and (pool is None or POOL_LABEL not in _labels(hpas[0])):
        return hpas[0]
    if pool is None:
        raise LookupError(f"the chart renders {len(hpas)} worker HPAs: name the pool")
    matching = [m for m in hpas if _labels(m).get(POOL_LABEL) == pool]
    if not matching:  # a pool the chart does not define (an experiment's own) scales like its default
        matching = [m for m in hpas if _labels(m).get(POOL_LABEL) == DEFAULT_POOL]
    if len(matching) != 1:
        found = sorted(_labels(m).get(POOL_LABEL, "?") for m in hpas)
        raise LookupError(f"no worker HPA of pool {pool!r} in the chart's rendering (pools with one: {found})")
    return matching[0]


def _labels(manifest: dict[str, Any]) -> dict[str, str]:
    return dict((manifest.get("metadata") or {}).get("labels") or {})


def _manifest_from_values(autoscaling: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "spec": {
            "minReplicas": autoscaling["minReplicas"],
            "maxReplicas": autoscaling["maxReplicas"],
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "classifier_queue_backlog"},
                        "target": {"type": "AverageValue", "averageValue": str(autoscaling["targetBacklogPerWorker"])},
                    },
                }
            ],
            "behavior": autoscaling.get("behavior") or {},
        },
    }


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def time_scaled(spec: hpa.HPASpec, factor: float) -> hpa.HPASpec:
    """``spec`` with every time constant multiplied by ``factor`` (at least 1 s each)."""

    def seconds(value: float) -> int:
        return max(1, round(value * factor))

    def rules(r: hpa.ScalingRules) -> hpa.ScalingRules:
        return dataclasses.replace(
            r,
            stabilization_window_seconds=0
            if r.stabilization_window_seconds == 0
            else seconds(r.stabilization_window_seconds),
            policies=tuple(dataclasses.replace(p, period_seconds=seconds(p.period_seconds)) for p in r.policies),
        )

    behavior = hpa.Behavior(scale_up=rules(spec.behavior.scale_up), scale_down=rules(spec.behavior.scale_down))
    return dataclasses.replace(spec, behavior=behavior)


@dataclass(frozen=True)
class ScalingEvent:
    t_s: float
    metric: float | None
    current: int
    proposal: int | None
    desired: int
    reason: str


class EmulatedHPA(threading.Thread):
    """Every ``sync_period_s``: read the metric, run one HPA reconcile, resize the pool."""

    def __init__(
        self,
        spec: hpa.HPASpec,
        pool: WorkerPool,
        metric: Callable[[], float | None],
        *,
        sync_period_s: float,
        clock: Callable[[], float],
        name: str = "emulated-hpa",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.autoscaler = hpa.Autoscaler(spec)
        self.pool = pool
        self.metric = metric
        self.sync_period_s = sync_period_s
        self.clock = clock
        self.events: list[ScalingEvent] = []
        self.desired = pool.replicas
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.sync_period_s):
                self.sync()
        except BaseException as exc:  # reported by the runner, which fails the run
            logger.exception("the emulated HPA failed")
            self.error = exc

    def sync(self) -> None:
        now = self.clock()
        current = self.pool.replicas
        try:
            value = self.metric()
        except Exception as exc:  # the real HPA reports FailedGetExternalMetric and keeps the count
            logger.warning("no metric (%s): the HPA keeps %d replicas", exc, current)
            value = None
        if value is None:
            self.events.append(ScalingEvent(now, None, current, None, current, "FailedGetExternalMetric"))
            return
        decision = self.autoscaler.step(now, current, value)
        self.desired = decision.desired_replicas
        if decision.desired_replicas != current:
            logger.info(
                "%s: %d -> %d (backlog %.0f, %s)", self.name, current, decision.desired_replicas, value, decision.reason
            )
            self.pool.scale_to(decision.desired_replicas)
        self.events.append(
            ScalingEvent(now, value, current, decision.proposal, decision.desired_replicas, decision.reason)
        )

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


class KubernetesHPA:
    """The real HPA's status and the worker Deployment's ready replicas, through kubectl."""

    def __init__(self, namespace: str, name: str, kubectl: str = "kubectl") -> None:
        self.namespace = namespace
        self.name = name
        self.kubectl = kubectl

    def _get(self, kind: str, name: str) -> dict[str, Any]:
        result = subprocess.run(
            [self.kubectl, "-n", self.namespace, "get", kind, name, "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return json.loads(result.stdout)

    def replicas(self) -> tuple[int, int]:
        """(desired, ready): the HPA's status.desiredReplicas and the Deployment's readyReplicas.
        With KEDA the HPA is KEDA's own, named keda-hpa-<ScaledObject>."""
        status = self._get("hpa", self.name).get("status", {})
        deployment = self._get("deployment", self.name.removeprefix("keda-hpa-")).get("status", {})
        return int(status.get("desiredReplicas", 0)), int(deployment.get("readyReplicas", 0))

    def spec(self) -> dict[str, Any]:
        return self._get("hpa", self.name)
