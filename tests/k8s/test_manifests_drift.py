"""k8s/ (kustomize base + kind overlay for kubectl users) renders, validates, and creates exactly
what the chart's default render creates: a test fails when they drift apart."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from tests.k8s.chart import REPO, find, kustomize, name_of, one, render, validate_all

KIND_OVERLAY = REPO / "k8s" / "overlays" / "kind"
BASE = REPO / "k8s" / "base"


@pytest.mark.parametrize("path", [KIND_OVERLAY, BASE], ids=["overlays/kind", "base"])
def test_kustomize_renders_and_every_object_validates(path) -> None:
    objects = kustomize(path)
    assert len(objects) > 10
    validate_all(objects)


def by_identity(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    out = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        assert key not in out, f"duplicate {key}"
        out[key] = obj
    return out


def test_kind_overlay_equals_the_chart_default_render() -> None:
    chart = by_identity(render(skip_tests=True))
    applied = by_identity(kustomize(KIND_OVERLAY))
    # The overlay adds the Namespace that `helm --create-namespace` makes.
    namespace = applied.pop(("Namespace", "", "classifier"))
    assert namespace["apiVersion"] == "v1"
    assert sorted(applied) == sorted(chart)
    for key, expected in chart.items():
        actual = applied[key]
        if key[0] == "Secret":
            # The chart's passwords are random per render; compare everything but the values.
            assert actual["type"] == expected["type"]
            assert actual["metadata"]["labels"] == expected["metadata"]["labels"]
            assert sorted(actual["data"]) == sorted(expected["data"])
            continue
        assert actual == expected, f"{name_of(expected)} differs: run `make k8s-manifests`"


def test_kustomize_secrets_are_marked_placeholders() -> None:
    secrets = find(kustomize(BASE), "Secret")
    assert {s["metadata"]["name"] for s in secrets} == {"classifier-rabbitmq", "classifier-mongodb"}
    for secret in secrets:
        password = base64.b64decode(secret["data"]["password"]).decode()
        assert password.startswith("CHANGE-ME"), secret["metadata"]["name"]


def test_base_leaves_out_the_kind_only_hostpath_volumes() -> None:
    base = kustomize(BASE)
    assert find(base, "PersistentVolume") == []
    assert len(find(kustomize(KIND_OVERLAY), "PersistentVolume")) == 2
    one(base, "PersistentVolumeClaim", "classifier-models")


def test_render_script_reports_no_drift() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.render_k8s", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
