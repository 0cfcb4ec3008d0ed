"""scripts/validate_k8s.py: a CRD's schema on a small CRD written here (what it accepts and
refuses, as the API server with strict field validation would); the pinned files in
tools/upstream-schemas (present, held to their SHA-256, taken from the release each version pin
names), so the custom resources are checked without network; and the command over a file of
mixed objects."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack.paths import REPO
from scripts import validate_k8s, versions

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "note": {"type": "string", "nullable": True},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                        },
                    }
                },
            },
            {"name": "v0", "served": False, "storage": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
        ],
    },
}


@pytest.fixture
def crds(tmp_path: Path) -> validate_k8s.CrdSchemas:
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump(CRD))
    return validate_k8s.CrdSchemas.load([tmp_path / "widgets.yaml"])


def widget(**spec: object) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"size": 3},
        {"size": 3, "port": 80},
        {"size": 3, "port": "http"},
        {"size": 3, "note": None},
        {"size": 3, "labels": {"any": "thing"}},
        {"size": 3, "extra": {"whatever": {"nested": [1]}}},
    ],
)
def test_valid_resources_pass(crds: validate_k8s.CrdSchemas, spec: dict) -> None:
    crds.validate(widget(**spec))


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"size": 3, "sise": 3}, "sise"),
        ({}, "size"),
        ({"size": "3"}, "integer"),
        ({"size": 0}, "minimum"),
        ({"size": 3, "port": 1.5}, "port|1.5"),
        ({"size": 3, "labels": {"a": 1}}, "string"),
    ],
)
def test_invalid_resources_fail(crds: validate_k8s.CrdSchemas, spec: dict, complaint: str) -> None:
    with pytest.raises(validate_k8s.InvalidObject, match=complaint):
        crds.validate(widget(**spec))


def test_an_unserved_version_or_unknown_kind_is_refused(crds: validate_k8s.CrdSchemas) -> None:
    with pytest.raises(validate_k8s.InvalidObject, match="no CRD here serves"):
        crds.validate({**widget(size=1), "apiVersion": "example.com/v0"})
    with pytest.raises(validate_k8s.InvalidObject, match="no CRD here serves"):
        crds.validate({**widget(size=1), "kind": "Gadget"})


# -- the pinned files: in the repository, held to their SHA-256 ---------------------------------

CRD_BYTES = yaml.safe_dump(CRD).encode()


def pins_for(tmp_path: Path, body: bytes = CRD_BYTES) -> dict[str, versions.Pin]:
    path = tmp_path / "versions.env"
    digest = hashlib.sha256(body).hexdigest()
    path.write_text(f"WIDGET_CRD_SHA256={digest}  # pinned 2026-12-05 sha256-of:https://example.com/v1/widgets.yaml\n")
    return versions.load(path)


def test_a_pinned_file_is_read_from_its_directory_when_its_checksum_matches(tmp_path: Path) -> None:
    (tmp_path / "widgets.yaml").write_bytes(CRD_BYTES)
    path = validate_k8s.pinned_file("WIDGET_CRD_SHA256", tmp_path, pins_for(tmp_path))
    assert path == tmp_path / "widgets.yaml"
    validate_k8s.CrdSchemas.load([path]).validate(widget(size=2))


def test_a_pinned_file_that_differs_or_is_missing_is_refused_naming_its_url(tmp_path: Path) -> None:
    pins = pins_for(tmp_path)
    with pytest.raises(validate_k8s.PinnedFileError, match="missing: download https://example.com/v1/widgets.yaml"):
        validate_k8s.pinned_file("WIDGET_CRD_SHA256", tmp_path, pins)
    (tmp_path / "widgets.yaml").write_bytes(CRD_BYTES + b"# changed\n")
    with pytest.raises(validate_k8s.PinnedFileError, match="refused .*replace the file with https://example.com"):
        validate_k8s.pinned_file("WIDGET_CRD_SHA256", tmp_path, pins)


def test_every_pinned_schema_is_in_the_repository_with_its_pinned_checksum() -> None:
    """No network needed: the static checks never skip a custom resource for want of its CRD."""
    pins = versions.load()
    names = [name for name, pin in pins.items() if pin.kind == "sha256-of"]
    assert set(validate_k8s.CRDS.values()) | {"TRAEFIK_VALUES_SCHEMA_SHA256"} == set(names)
    for name in names:
        validate_k8s.pinned_file(name)
    for (group, kind), _ in validate_k8s.CRDS.items():
        assert validate_k8s.pinned_crd(group, kind).schemas, kind
    kept = {path.name for path in validate_k8s.UPSTREAM_SCHEMAS.iterdir()} - {"README.md"}
    assert kept == {validate_k8s.pinned_url(pins[name]).rsplit("/", 1)[1] for name in names}


def test_each_pinned_schema_comes_from_the_release_its_version_pin_names() -> None:
    pins = versions.load()

    def url(name: str) -> str:
        return validate_k8s.pinned_url(pins[name])

    for name in (*validate_k8s.CRDS.values(), "TRAEFIK_VALUES_SCHEMA_SHA256"):
        assert url(name).startswith("https://raw.githubusercontent.com/"), url(name)
    gateway_api = pins["GATEWAY_API_VERSION"].value
    for name in ("GATEWAY_API_GATEWAY_CRD_SHA256", "GATEWAY_API_HTTPROUTE_CRD_SHA256"):
        assert f"/kubernetes-sigs/gateway-api/{gateway_api}/config/crd/standard/" in url(name)
    assert f"/{pins['RABBITMQ_CLUSTER_OPERATOR_VERSION'].value}/" in url("RABBITMQ_CLUSTER_CRD_SHA256")
    assert f"/{pins['MONGODB_KUBERNETES_CHART_VERSION'].value}/" in url("MONGODB_COMMUNITY_CRD_SHA256")
    assert f"/traefik-helm-chart/v{pins['TRAEFIK_CHART_VERSION'].value}/" in url("TRAEFIK_VALUES_SCHEMA_SHA256")


def test_gateway_api_objects_are_held_to_the_standard_channel() -> None:
    """The standard-channel CRDs kind-up applies: a field only the experimental channel has
    (an HTTPRoute rule's retry, a Gateway's defaultScope) is refused, as that cluster would."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"parentRefs": [{"name": "g"}], "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]},
    }
    assert validate_k8s.validate(route) == "crd"
    route["spec"]["rules"][0]["retry"] = {"attempts": 2}
    with pytest.raises(validate_k8s.InvalidObject, match="retry"):
        validate_k8s.validate(route)
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "g"},
        "spec": {"gatewayClassName": "c", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    assert validate_k8s.validate(gateway) == "crd"
    gateway["spec"]["defaultScope"] = "All"
    with pytest.raises(validate_k8s.InvalidObject, match="defaultScope"):
        validate_k8s.validate(gateway)


# -- the command ----------------------------------------------------------------------------------


def run_command(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.validate_k8s", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_the_command_checks_each_object_by_its_source_and_fails_on_any_error(tmp_path: Path) -> None:
    core = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"parentRefs": [{"name": "g"}], "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]},
    }
    middleware = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "m"},
        "spec": {"rateLimit": {"average": 1, "burst": 2}},
    }
    gadget = {**widget(size=1), "apiVersion": "other.example.org/v1", "kind": "Gadget"}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all([core, route, middleware, gadget]))
    result = run_command(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN good.yaml: Gadget/w: no schema for other.example.org/v1 (not checked)" in result.stdout
    assert result.stdout.rstrip().endswith("0 invalid; 1 crd, 1 kubernetes, 1 package, 1 unchecked")

    bad = tmp_path / "bad.yaml"
    typo = {**route, "spec": {**route["spec"], "hostname": ["a.example"]}}
    wrong_core = {**core, "dataa": {}}
    bad.write_text(yaml.safe_dump_all([typo, wrong_core]))
    result = run_command(bad)
    assert result.returncode == 1
    assert "ERROR bad.yaml: HTTPRoute/r:" in result.stdout and "hostname" in result.stdout
    assert "ERROR bad.yaml: ConfigMap/c:" in result.stdout and "dataa" in result.stdout
