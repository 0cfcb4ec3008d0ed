"""scripts/crd_validate.py on a small CRD written here: what it accepts and refuses, so the chart's
custom resources are checked the way the API server with strict field validation would."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from scripts import crd_validate

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
def crds(tmp_path: Path) -> crd_validate.CrdSchemas:
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump(CRD))
    return crd_validate.CrdSchemas.load([tmp_path])


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
def test_valid_resources_pass(crds: crd_validate.CrdSchemas, spec: dict) -> None:
    crd_validate.validate(widget(**spec), crds)


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
def test_invalid_resources_fail(crds: crd_validate.CrdSchemas, spec: dict, complaint: str) -> None:
    with pytest.raises(jsonschema.ValidationError, match=complaint):
        crd_validate.validate(widget(**spec), crds)


def test_an_unserved_version_or_unknown_kind_has_no_schema(crds: crd_validate.CrdSchemas) -> None:
    with pytest.raises(crd_validate.NoSchema):
        crd_validate.validate({**widget(size=1), "apiVersion": "example.com/v0"}, crds)
    with pytest.raises(crd_validate.NoSchema):
        crd_validate.validate({**widget(size=1), "kind": "Gadget"}, crds)


def test_the_command_fails_on_an_invalid_or_required_but_unchecked_resource(tmp_path: Path, capsys) -> None:
    crd_dir = tmp_path / "crds"
    crd_dir.mkdir()
    (crd_dir / "widgets.yaml").write_text(yaml.safe_dump(CRD))
    good = tmp_path / "good.yaml"
    core = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    gadget = {**widget(size=1), "apiVersion": "other.example.org/v1", "kind": "Gadget"}
    good.write_text(yaml.safe_dump_all([core, widget(size=2), gadget]))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([widget(size=2, colour="red")]))

    assert crd_validate.main(["--crds", str(crd_dir), str(good)]) == 0
    out, err = capsys.readouterr()
    assert "Widget/w: valid against widgets.yaml" in out
    assert "Gadget/w: not validated" in err
    assert crd_validate.main(["--crds", str(crd_dir), "--require", "Gadget", str(good)]) == 1
    assert crd_validate.main(["--crds", str(crd_dir), str(bad)]) == 1
    assert "colour" in capsys.readouterr().err
