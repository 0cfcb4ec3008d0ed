"""Render the helm chart with the real helm binary and walk the rendered objects.

Shared by the tests in tests/k8s. helm comes from $HELM, the project's .tools/bin/helm
(`make tools`) or PATH; kubectl (for kustomize) from $KUBECTL or PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from devstack.paths import REPO

CHART = REPO / "helm" / "classifier"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "classifier"
NAMESPACE = "classifier"
K8S_VERSION = "1.33.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def _tool(env: str, local: Path | None, name: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    if local is not None and local.is_file():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make tools` (helm) or install it")
    return found


def helm() -> str:
    return _tool("HELM", REPO / ".tools" / "bin" / "helm", "helm")


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


def is_core_api(api_version: str) -> bool:
    """Kubernetes' own API groups (core, apps, batch, *.k8s.io ...), whose schemas must exist."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


def validate(obj: dict, version: str = K8S_VERSION) -> None:
    """kubernetes-validate --strict; an object of Kubernetes' own API groups without a schema
    (a wrong apiVersion) fails too, where the CLI would only warn."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except SchemaNotFoundError as exc:
        if is_core_api(obj["apiVersion"]):
            raise AssertionError(exc.message) from None


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
