"""Validate Kubernetes objects offline, the way an API server would check their shape.

    python -m scripts.validate_k8s --kubernetes-version 1.33.0 FILE...   # exit 1 on any error

Each object is checked against one schema source, chosen by its API group (`schema_source`):
- Kubernetes' own kinds (core, apps, batch, *.k8s.io ...): kubernetes-validate in strict mode
  (unknown fields are errors); a kind it has no schema for is an error too (a wrong apiVersion).
- KEDA, Traefik and Prometheus Operator objects: the @kubernetes-models npm packages pinned in
  tools/crd-schemas/package.json (generated from those projects' API types), through
  tools/crd-schemas/check.mjs: the packages' validators, then their type definitions with the
  TypeScript compiler so unknown fields are refused. Needs node and `make crd-schemas`.
- Gateway API objects (the standard-channel CRDs `make kind-up` installs) and the operators'
  RabbitmqCluster and MongoDBCommunity: their CRDs as the projects publish them at the versions in
  versions.env, kept in tools/upstream-schemas and refused unless their SHA-256 is the one pinned
  there; the openAPIV3Schema read as strict field validation does (unknown fields are errors
  unless x-kubernetes-preserve-unknown-fields). No network needed.
- Anything else is reported as not checked.
CEL rules (x-kubernetes-validations) and admission webhooks are a cluster's to check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from devstack.paths import REPO
from scripts import versions

# libyaml's loader where PyYAML has it: the Gateway API and RabbitMQ CRDs are large.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CRD_SCHEMAS = REPO / "tools" / "crd-schemas"
# Files as their projects publish them, each held to a SHA-256 in versions.env (README.md there).
UPSTREAM_SCHEMAS = REPO / "tools" / "upstream-schemas"

# API group -> the npm package (in tools/crd-schemas/package.json) that models it.
PACKAGES = {
    "keda.sh": "@kubernetes-models/keda",
    "traefik.io": "@kubernetes-models/traefik",
    "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
}
# (API group, kind) -> the versions.env pin holding the SHA-256 of its CRD; the pin's source
# (sha256-of:<URL>) is where the file in tools/upstream-schemas comes from. Gateway API: the
# standard channel, as kind-up applies it (the npm model would also pass experimental fields).
CRDS = {
    ("gateway.networking.k8s.io", "Gateway"): "GATEWAY_API_GATEWAY_CRD_SHA256",
    ("gateway.networking.k8s.io", "HTTPRoute"): "GATEWAY_API_HTTPROUTE_CRD_SHA256",
    ("rabbitmq.com", "RabbitmqCluster"): "RABBITMQ_CLUSTER_CRD_SHA256",
    ("mongodbcommunity.mongodb.com", "MongoDBCommunity"): "MONGODB_COMMUNITY_CRD_SHA256",
}


class InvalidObject(Exception):
    pass


class ToolMissing(Exception):
    """A schema source that has to be installed first (node, the npm packages)."""


class PinnedFileError(Exception):
    """A file pinned in versions.env is missing from tools/upstream-schemas or is not the pinned one."""


def group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def schema_source(obj: dict) -> str:
    """Where an object's schema comes from: "package", "crd", "kubernetes" or "none"."""
    group, _ = group_version(obj["apiVersion"])
    if group in PACKAGES:
        return "package"
    if (group, obj["kind"]) in CRDS:
        return "crd"
    if "." not in group or group.endswith(".k8s.io"):
        return "kubernetes"
    return "none"


# -- CRD files -------------------------------------------------------------------------------


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
    """Schemas by (group, version, kind), from CRD files."""

    schemas: dict[tuple[str, str, str], dict]

    @classmethod
    def load(cls, paths: Iterable[Path]) -> CrdSchemas:
        schemas: dict[tuple[str, str, str], dict] = {}
        for path in paths:
            for doc in yaml.load_all(Path(path).read_text(), Loader=SAFE_LOADER):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    if version.get("served", True):
                        raw = version["schema"]["openAPIV3Schema"]
                        schemas[(group, version["name"], kind)] = to_json_schema(raw)
        return cls(schemas)

    def validate(self, obj: dict) -> None:
        """Raises InvalidObject; an apiVersion or kind the CRDs do not serve is invalid too."""
        group, version = group_version(obj["apiVersion"])
        schema = self.schemas.get((group, version, obj["kind"]))
        if schema is None:
            raise InvalidObject(f"no CRD here serves {obj['kind']} in {obj['apiVersion']}")
        errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            raise InvalidObject("; ".join(_describe(e) for e in errors[:5]))


def pinned_url(pin: versions.Pin) -> str:
    kind, _, url = pin.source.partition(":")
    assert kind == "sha256-of", pin
    return url


def pinned_file(pin_name: str, where: Path | None = None, pins: dict[str, versions.Pin] | None = None) -> Path:
    """The file a versions.env pin names (``sha256-of:<URL>``), kept in ``where`` under the URL's
    last part; its SHA-256 must be the pinned one. Raises PinnedFileError."""
    pin = (pins or versions.load())[pin_name]
    where = where or UPSTREAM_SCHEMAS
    url = pinned_url(pin)
    path = where / url.rsplit("/", 1)[1]
    if not path.is_file():
        raise PinnedFileError(f"{path} is missing: download {url} there ({pin_name} pins its SHA-256)")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != pin.value.lower():
        raise PinnedFileError(
            f"{path}: SHA-256 {actual}, {pin_name} pins {pin.value}: refused "
            f"(after moving the pin, replace the file with {url})"
        )
    return path


@cache
def pinned_crd(group: str, kind: str) -> CrdSchemas:
    """The schemas of the CRD pinned for a kind (tools/upstream-schemas)."""
    return CrdSchemas.load([pinned_file(CRDS[(group, kind)])])


# -- the npm packages --------------------------------------------------------------------------


def check_with_packages(objects: list[dict]) -> list[list[str]]:
    """Each object's errors (empty: valid) from tools/crd-schemas/check.mjs, in one node run."""
    if not objects:
        return []
    node = shutil.which("node")
    if node is None or not (CRD_SCHEMAS / "node_modules" / ".installed").is_file():
        raise ToolMissing(f"the models of {', '.join(sorted(PACKAGES))} need node and `make crd-schemas`")
    items = [{"object": obj, "package": PACKAGES[group_version(obj["apiVersion"])[0]]} for obj in objects]
    result = subprocess.run(
        [node, str(CRD_SCHEMAS / "check.mjs")], input=json.dumps(items), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolMissing(f"tools/crd-schemas/check.mjs failed: {result.stderr.strip()}")
    return [entry["errors"] for entry in json.loads(result.stdout)]


# -- all together ----------------------------------------------------------------------------


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{path}: {error.message}"


@dataclass(frozen=True)
class Outcome:
    """How an object was checked ("kubernetes", "package", "crd" or "unchecked"), and its error."""

    how: str
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None


def _validate_one(obj: dict, kubernetes_version: str) -> Outcome:
    source = schema_source(obj)
    if source == "crd":
        try:
            pinned_crd(group_version(obj["apiVersion"])[0], obj["kind"]).validate(obj)
        except InvalidObject as exc:
            return Outcome("crd", str(exc))
        return Outcome("crd")
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return Outcome("kubernetes", _describe(exc))
    except SchemaNotFoundError as exc:
        if source == "kubernetes":
            return Outcome("kubernetes", exc.message)
        return Outcome("unchecked")
    return Outcome("kubernetes")


def validate_all(objects: list[dict], kubernetes_version: str = "1.33.0") -> list[Outcome]:
    """Each object's Outcome, in order (the package-modelled ones in one node run)."""
    modelled = [i for i, obj in enumerate(objects) if schema_source(obj) == "package"]
    outcomes: dict[int, Outcome] = {}
    for i, errors in zip(modelled, check_with_packages([objects[i] for i in modelled]), strict=True):
        outcomes[i] = Outcome("package", "; ".join(errors) if errors else None)
    for i, obj in enumerate(objects):
        if i not in outcomes:
            outcomes[i] = _validate_one(obj, kubernetes_version)
    return [outcomes[i] for i in range(len(objects))]


def validate(obj: dict, kubernetes_version: str = "1.33.0") -> str:
    """Raises InvalidObject; returns how the object was checked (see Outcome)."""
    (outcome,) = validate_all([obj], kubernetes_version)
    if not outcome.valid:
        raise InvalidObject(outcome.error)
    return outcome.how


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubernetes-version", default="1.33.0")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    named = [(path, obj) for path in args.files for obj in yaml.safe_load_all(path.read_text()) if obj]
    try:
        outcomes = validate_all([obj for _, obj in named], args.kubernetes_version)
    except (ToolMissing, PinnedFileError) as exc:
        print(f"ERROR {exc}")
        return 1
    counts: dict[str, int] = {}
    failed = 0
    for (path, obj), outcome in zip(named, outcomes, strict=True):
        name = f"{path.name}: {obj['kind']}/{obj['metadata']['name']}"
        if not outcome.valid:
            print(f"ERROR {name}: {outcome.error}")
            failed += 1
            continue
        counts[outcome.how] = counts.get(outcome.how, 0) + 1
        if outcome.how == "unchecked":
            print(f"WARN {name}: no schema for {obj['apiVersion']} (not checked)")
    summary = ", ".join(f"{n} {how}" for how, n in sorted(counts.items()))
    print(f"{failed} invalid; {summary or 'nothing'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
