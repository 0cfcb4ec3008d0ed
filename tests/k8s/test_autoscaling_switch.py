"""Switching a release between the HPA and KEDA, both ways, and KEDA right after a deploy.

HPA -> KEDA is one `helm upgrade`: the ScaledObject asks KEDA to take the chart's HPA over (its
admission webhook refuses a ScaledObject for a workload another HPA scales). KEDA -> HPA is
scripts/keda-off.sh; with no API server here, it runs against stand-ins for kubectl and helm that
record their calls and answer as a cluster with KEDA at zero workers would."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts import versions
from scripts.versions_check import version_key
from tests.k8s.chart import CHART, REPO, chart_values, one, render, validate

KEDA = ("--values", str(CHART / "ci" / "keda-values.yaml"))


def test_the_scaled_object_takes_over_the_hpa_the_release_had() -> None:
    hpa = one(render(), "HorizontalPodAutoscaler", "classifier-worker-default")
    scaled = one(render(*KEDA), "ScaledObject", "classifier-worker-default")
    assert scaled["metadata"]["annotations"]["scaledobject.keda.sh/transfer-hpa-ownership"] == "true"
    # KEDA adopts the HPA of this name: the chart's own.
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == hpa["metadata"]["name"]
    assert scaled["spec"]["scaleTargetRef"] == hpa["spec"]["scaleTargetRef"]


def test_the_scaled_object_is_valid_for_the_keda_version_kind_up_installs() -> None:
    # initialCooldownPeriod and the annotation-driven takeover need KEDA 2.13 or newer.
    scaled = one(render(*KEDA), "ScaledObject", "classifier-worker-default")
    assert validate(scaled) == "package"
    # The model is KEDA's API at most one minor release ahead of the KEDA kind-up installs (a
    # field newer than that would pass here and fail on the cluster).
    package = json.loads((REPO / "tools" / "crd-schemas" / "package.json").read_text())
    modelled = version_key(package["upstreamVersions"]["keda"])
    installed = version_key(versions.load()["KEDA_CHART_VERSION"].value)
    assert modelled[0] == installed[0] and 0 <= modelled[1] - installed[1] <= 1, (modelled, installed)
    wrong = copy.deepcopy(scaled)
    wrong["spec"]["initialCoolDownPeriod"] = wrong["spec"].pop("initialCooldownPeriod")
    with pytest.raises(AssertionError, match="initialCoolDownPeriod"):
        validate(wrong)


def test_keda_does_not_scale_to_zero_right_after_a_deploy() -> None:
    scaled = one(render(*KEDA), "ScaledObject", "classifier-worker-default")
    # KEDA's default is 0: the workers went away before `helm test` and the e2e suite ran.
    assert scaled["spec"]["initialCooldownPeriod"] == chart_values()["autoscaling"]["keda"]["initialCooldownPeriod"]
    assert scaled["spec"]["initialCooldownPeriod"] >= 300
    again = one(
        render(*KEDA, "--set", "autoscaling.keda.initialCooldownPeriod=900"),
        "ScaledObject",
        "classifier-worker-default",
    )
    assert again["spec"]["initialCooldownPeriod"] == 900


STAND_IN = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "{log}"
case "$*" in
  *"get scaledobjects.keda.sh"*) {scaled_objects} ;;
  *"get deployment"*) printf '0' ;;
  *"status keda"*) exit 0 ;;
esac
exit 0
"""


def run_keda_off(tmp_path: Path, has_scaled_object: bool) -> list[str]:
    log = tmp_path / "calls.log"
    for tool in ("kubectl", "helm"):
        path = tmp_path / tool
        listed = "printf 'scaledobject.keda.sh/classifier-worker-lite\\nscaledobject.keda.sh/classifier-worker-big\\n'"
        path.write_text(STAND_IN.format(log=log, scaled_objects=listed if has_scaled_object else "exit 1"))
        path.chmod(0o755)
    env = {**os.environ, "KUBECTL": str(tmp_path / "kubectl"), "HELM": str(tmp_path / "helm")}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "keda-off.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def position(calls: list[str], *words: str) -> int:
    (index,) = [i for i, call in enumerate(calls) if all(word in call for word in words)]
    return index


def test_the_way_back_deletes_the_scaled_object_first_and_removes_keda_last(tmp_path: Path) -> None:
    calls = run_keda_off(tmp_path, has_scaled_object=True)
    listed = position(calls, "kubectl", "get scaledobjects.keda.sh", "app.kubernetes.io/component=worker")
    upgraded = position(calls, "helm upgrade classifier", "--reuse-values", "autoscaling.keda.enabled=false")
    removed = position(calls, "helm", "uninstall keda")
    # Every pool's: KEDA's finalizer must still run to remove its HPA; the chart's HPA needs a
    # worker to scale from; helm must still know the ScaledObject kind when it drops it.
    for pool in ("lite", "big"):
        deleted = position(calls, "kubectl", f"delete scaledobjects.keda.sh classifier-worker-{pool} ")
        scaled = position(calls, "kubectl", f"scale deployment classifier-worker-{pool} --replicas=1")
        assert listed < deleted < scaled < upgraded < removed


def test_without_a_scaled_object_only_keda_is_removed(tmp_path: Path) -> None:
    calls = run_keda_off(tmp_path, has_scaled_object=False)
    assert not any(word in call for call in calls for word in (" delete ", " upgrade ", " scale "))
    assert any("uninstall keda" in call for call in calls)


def test_make_keda_off_runs_the_script_and_kind_up_points_to_it() -> None:
    result = subprocess.run(["make", "-n", "keda-off"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "scripts/keda-off.sh" in result.stdout
    assert "make keda-off" in (REPO / "scripts" / "kind-up.sh").read_text()
