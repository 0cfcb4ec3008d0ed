"""Validate custom resources against their CustomResourceDefinitions' schemas, offline.

kubernetes-validate knows Kubernetes' own kinds only; a custom resource (an operator's
RabbitmqCluster, say) it skips with a warning. This module reads CRDs (the YAML the projects
publish, kept in a directory) and checks each custom resource against the openAPIV3Schema of its
apiVersion, as strictly as `kubectl apply` does: an unknown field is an error unless the schema
keeps unknown fields (x-kubernetes-preserve-unknown-fields). CEL rules (x-kubernetes-validations)
are not evaluated.

    python -m scripts.crd_validate [--crds DIR]... [--require KIND]... FILE...

Every object in the files whose group and kind a CRD in the directories defines is validated;
objects of Kubernetes' own groups are left to kubernetes-validate. A custom resource without a
CRD here is listed as "not validated", and fails the run only when its kind is named by
--require. Directories default to CRD_DIRS below (those that exist).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from devstack.paths import REPO

# Where CRDs are looked for: CLASSIFIER_CRD_DIRS (os.pathsep-separated) when set, then helm/crds.
CRD_DIRS = (REPO / "helm" / "crds",)


def default_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("CLASSIFIER_CRD_DIRS", "").split(os.pathsep) if p]
    return [d for d in (*extra, *CRD_DIRS) if d.is_dir()]


def to_json_schema(schema: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema as a JSON Schema that rejects unknown fields."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: to_json_schema(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    # An object schema that lists its fields allows no others (metadata, listed by none, is the
    # API server's to check).
    keeps_unknown = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and not keeps_unknown:
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@dataclass(frozen=True)
class CrdSchemas:
    """Schemas by (group, version, kind), with the file each came from."""

    schemas: dict[tuple[str, str, str], dict]
    sources: dict[tuple[str, str], Path]

    @classmethod
    def load(cls, directories: Iterable[Path]) -> CrdSchemas:
        schemas: dict[tuple[str, str, str], dict] = {}
        sources: dict[tuple[str, str], Path] = {}
        for directory in directories:
            for path in sorted(Path(directory).rglob("*.y*ml")):
                for doc in yaml.safe_load_all(path.read_text()):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                    if (group, kind) in sources:
                        continue  # the first directory wins
                    sources[(group, kind)] = path
                    for version in doc["spec"]["versions"]:
                        if version.get("served", True):
                            raw = version["schema"]["openAPIV3Schema"]
                            schemas[(group, version["name"], kind)] = to_json_schema(raw)
        return cls(schemas, sources)

    def kinds(self) -> set[str]:
        return {kind for _, kind in self.sources}


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def is_custom(obj: dict) -> bool:
    """Not one of Kubernetes' own API groups (core, apps, *.k8s.io ...)."""
    group, _ = _group_version(obj.get("apiVersion", ""))
    return "." in group and not group.endswith(".k8s.io")


class NoSchema(LookupError):
    pass


def validate(obj: dict, crds: CrdSchemas) -> None:
    """Raises jsonschema.ValidationError (invalid) or NoSchema (no CRD for its kind here)."""
    group, version = _group_version(obj["apiVersion"])
    schema = crds.schemas.get((group, version, obj["kind"]))
    if schema is None:
        raise NoSchema(f"no CRD schema for {obj['kind']} {obj['apiVersion']}")
    jsonschema.Draft4Validator(schema).validate(obj)


def objects(paths: Iterable[Path]) -> Iterator[tuple[Path, dict]]:
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc:
                yield path, doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crds", action="append", type=Path, help="a directory of CRD YAML (repeatable)")
    parser.add_argument("--require", action="append", default=[], help="a kind that must be validated")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    crds = CrdSchemas.load(args.crds if args.crds else default_dirs())
    failed = 0
    for path, obj in objects(args.files):
        if not is_custom(obj):
            continue
        name = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        try:
            validate(obj, crds)
        except NoSchema as exc:
            required = obj["kind"] in args.require
            print(f"{path}: {name}: not validated: {exc}", file=sys.stderr)
            failed += required
        except jsonschema.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path) or "(top)"
            print(f"{path}: {name}: {where}: {exc.message}", file=sys.stderr)
            failed += 1
        else:
            source = crds.sources[(_group_version(obj["apiVersion"])[0], obj["kind"])]
            print(f"{path}: {name}: valid against {source.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
