"""scripts/validate_k8s.py: a CRD's schema on a small CRD written here (what it accepts and
refuses, as the API server with strict field validation would); how an operator's CRD is had
(downloaded once, SHA-256 checked, cached; skipped with the reason without network); and the
command over a file of mixed objects."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack.paths import REPO
from scripts import validate_k8s, versions
from tests.utils.file_server import file_server

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


# -- an operator's CRD: downloaded once, checked against its pinned SHA-256 ------------------------

CRD_BYTES = yaml.safe_dump(CRD).encode()


def pins_for(tmp_path: Path, url: str, body: bytes = CRD_BYTES) -> dict[str, versions.Pin]:
    path = tmp_path / "versions.env"
    digest = hashlib.sha256(body).hexdigest()
    path.write_text(f"WIDGET_CRD_SHA256={digest}  # pinned 2026-12-05 sha256-of:{url}\n")
    return versions.load(path)


def test_a_crd_is_downloaded_once_checked_and_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with file_server({"/crds/widgets.yaml": CRD_BYTES}) as server:
        pins = pins_for(tmp_path, f"{server.url}/crds/widgets.yaml")
        first = validate_k8s.fetch_crd("WIDGET_CRD_SHA256", cache, pins)
        again = validate_k8s.fetch_crd("WIDGET_CRD_SHA256", cache, pins)
    assert first == again == cache / "widgets.yaml"
    assert server.requested == ["/crds/widgets.yaml"]  # the second from the cache
    validate_k8s.CrdSchemas.load([first]).validate(widget(size=2))


def test_a_crd_whose_checksum_differs_is_refused_and_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with file_server({"/crds/widgets.yaml": CRD_BYTES + b"# changed\n"}) as server:
        pins = pins_for(tmp_path, f"{server.url}/crds/widgets.yaml")
        with pytest.raises(validate_k8s.ChecksumMismatch, match="refused"):
            validate_k8s.fetch_crd("WIDGET_CRD_SHA256", cache, pins)
    assert not (cache / "widgets.yaml").exists()
    # A cached copy is held to the pin too.
    cache.mkdir()
    (cache / "widgets.yaml").write_bytes(CRD_BYTES + b"# changed\n")
    with pytest.raises(validate_k8s.ChecksumMismatch):
        validate_k8s.fetch_crd("WIDGET_CRD_SHA256", cache, pins)


def test_without_network_a_crd_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    pins = pins_for(tmp_path, "http://127.0.0.1:1/crds/widgets.yaml")
    with pytest.raises(validate_k8s.CrdUnavailable, match="127.0.0.1:1/crds/widgets.yaml"):
        validate_k8s.fetch_crd("WIDGET_CRD_SHA256", tmp_path / "cache", pins)


def test_the_pinned_operator_crds_are_downloaded_from_their_release_tags() -> None:
    pins = versions.load()
    for name in validate_k8s.OPERATOR_CRDS.values():
        url = validate_k8s.crd_url(pins[name])
        assert url.startswith("https://") and url.endswith(".yaml"), url
    rabbitmq = validate_k8s.crd_url(pins["RABBITMQ_CLUSTER_CRD_SHA256"])
    assert f"/{pins['RABBITMQ_CLUSTER_OPERATOR_VERSION'].value}/" in rabbitmq
    mongodb = validate_k8s.crd_url(pins["MONGODB_COMMUNITY_CRD_SHA256"])
    assert f"/{pins['MONGODB_KUBERNETES_CHART_VERSION'].value}/" in mongodb


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
    gadget = {**widget(size=1), "apiVersion": "other.example.org/v1", "kind": "Gadget"}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all([core, route, gadget]))
    result = run_command(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN good.yaml: Gadget/w: no schema for other.example.org/v1 (not checked)" in result.stdout
    assert result.stdout.rstrip().endswith("0 invalid; 1 kubernetes, 1 package, 1 unchecked")

    bad = tmp_path / "bad.yaml"
    typo = {**route, "spec": {**route["spec"], "hostname": ["a.example"]}}
    wrong_core = {**core, "dataa": {}}
    bad.write_text(yaml.safe_dump_all([typo, wrong_core]))
    result = run_command(bad)
    assert result.returncode == 1
    assert "ERROR bad.yaml: HTTPRoute/r:" in result.stdout and "hostname" in result.stdout
    assert "ERROR bad.yaml: ConfigMap/c:" in result.stdout and "dataa" in result.stdout
