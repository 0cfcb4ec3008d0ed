"""Render the helm chart with the real helm binary and walk the rendered objects.

Shared by the tests in tests/k8s. helm comes from $HELM, PATH or the project's .tools/bin/helm
(`make tools`); kubectl (for kustomize) from $KUBECTL or PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import yaml

from devstack.paths import REPO
from scripts import validate_k8s, versions

CHART = REPO / "helm" / "classifier"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "classifier"
NAMESPACE = "classifier"
K8S_VERSION = "1.33.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


TOOLS_BIN = REPO / ".tools" / "bin"


def _tool(env: str, local: Path | None, name: str) -> str:
    """$<env>, else the user's own on PATH, else the one `make tools` installed (as mk/k8s.mk)."""
    if os.environ.get(env):
        return os.environ[env]
    user_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != TOOLS_BIN)
    found = shutil.which(name, path=user_path)
    if found:
        return found
    if local is not None and local.is_file():
        return str(local)
    raise RuntimeError(f"{name} not found: run `make tools` (helm) or install it")


def helm() -> str:
    return _tool("HELM", TOOLS_BIN / "helm", "helm")


def kubectl() -> str:
    return _tool("KUBECTL", None, "kubectl")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, cwd=REPO)


def render_text(*args: str, skip_tests: bool = False) -> str:
    """`helm template` with extra args (--values, --set ...); raises with helm's message on failure."""
    command = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args]
    if skip_tests:
        command.append("--skip-tests")
    result = run_helm(*command)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result.stdout


class RenderError(Exception):
    pass


@lru_cache(maxsize=64)
def _render_cached(args: tuple[str, ...], skip_tests: bool) -> str:
    return render_text(*args, skip_tests=skip_tests)


def render(*args: str, skip_tests: bool = False) -> list[dict]:
    """The rendered objects. Cached by arguments, so call freely; the objects are fresh copies."""
    return [doc for doc in yaml.safe_load_all(_render_cached(tuple(args), skip_tests)) if doc]


def values_args(values_file: Path | None) -> tuple[str, ...]:
    return () if values_file is None else ("--values", str(values_file))


def kustomize(path: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kind_node_version() -> str:
    """The Kubernetes version of kind's default node (KUBECTL_VERSION is pinned to its minor)."""
    major_minor = versions.value("KUBECTL_VERSION").removeprefix("v").rsplit(".", 1)[0]
    return f"{major_minor}.0"


def validate(obj: dict, version: str = K8S_VERSION) -> str:
    """scripts/validate_k8s.py: Kubernetes' own kinds strictly against the API's schemas (one
    without a schema, a wrong apiVersion, fails), KEDA/Traefik/Prometheus Operator objects with the
    models in tools/crd-schemas, Gateway API objects and the operators' kinds against their CRDs
    in tools/upstream-schemas. Returns how it was checked: "kubernetes", "package" or "crd"."""
    return validate_all([obj], version)[0]


def validate_all(objects: list[dict], version: str = K8S_VERSION) -> list[str]:
    """validate() for many objects at once (the package-modelled ones in one node run)."""
    outcomes = validate_k8s.validate_all(objects, version)
    errors = [f"{name_of(obj)}: {o.error}" for obj, o in zip(objects, outcomes, strict=True) if not o.valid]
    if errors:
        raise AssertionError("\n".join(errors))
    return [outcome.how for outcome in outcomes]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def containers(obj: dict, include_init: bool = True) -> Iterator[tuple[str, dict]]:
    """(role, container) for every container of an object's pod spec; role is "init" or "main"."""
    spec = pod_spec(obj)
    if spec is None:
        return
    if include_init:
        for container in spec.get("initContainers", []):
            yield "init", container
    for container in spec.get("containers", []):
        yield "main", container


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
