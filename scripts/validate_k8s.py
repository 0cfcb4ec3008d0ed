"""Validate Kubernetes objects offline, the way an API server would check their shape.

    python -m scripts.validate_k8s --kubernetes-version 1.33.0 FILE...   # exit 1 on any error

Each object is checked against one schema source, chosen by its API group (`schema_source`):
- Kubernetes' own kinds (core, apps, batch, *.k8s.io ...): kubernetes-validate in strict mode
  (unknown fields are errors); a kind it has no schema for is an error too (a wrong apiVersion).
- Gateway API, KEDA, Traefik and Prometheus Operator objects: the @kubernetes-models npm packages
  pinned in tools/crd-schemas/package.json (generated from those projects' API types), through
  tools/crd-schemas/check.mjs: the packages' validators, then their type definitions with the
  TypeScript compiler so unknown fields are refused. Needs node and `make crd-schemas`.
- The operators' RabbitmqCluster and MongoDBCommunity: their CRDs as the operators publish them
  at the versions in versions.env, downloaded once into .tools/crds and refused unless their
  SHA-256 is the one pinned there; the openAPIV3Schema read as strict field validation does
  (unknown fields are errors unless x-kubernetes-preserve-unknown-fields). Without network to
  the download and no cached copy, these objects are skipped and the reason printed.
- Anything else is reported as not checked.
CEL rules (x-kubernetes-validations) and admission webhooks are a cluster's to check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
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

CRD_SCHEMAS = REPO / "tools" / "crd-schemas"
CRD_CACHE = Path(os.environ.get("CLASSIFIER_CRD_CACHE", REPO / ".tools" / "crds"))
DOWNLOAD_TIMEOUT_S = 15

# API group -> the npm package (in tools/crd-schemas/package.json) that models it.
PACKAGES = {
    "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
    "keda.sh": "@kubernetes-models/keda",
    "traefik.io": "@kubernetes-models/traefik",
    "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
}
# (API group, kind) -> the versions.env pin holding the SHA-256 of its CRD; the pin's source
# (sha256-of:<URL>) is where the CRD is downloaded from.
OPERATOR_CRDS = {
    ("rabbitmq.com", "RabbitmqCluster"): "RABBITMQ_CLUSTER_CRD_SHA256",
    ("mongodbcommunity.mongodb.com", "MongoDBCommunity"): "MONGODB_COMMUNITY_CRD_SHA256",
}


class InvalidObject(Exception):
    pass


class ToolMissing(Exception):
    """A schema source that has to be installed first (node, the npm packages)."""


class CrdUnavailable(Exception):
    """An operator's CRD could not be had (no network to it and no cached copy)."""


class ChecksumMismatch(Exception):
    pass


def group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def schema_source(obj: dict) -> str:
    """Where an object's schema comes from: "package", "crd", "kubernetes" or "none"."""
    group, _ = group_version(obj["apiVersion"])
    if group in PACKAGES:
        return "package"
    if (group, obj["kind"]) in OPERATOR_CRDS:
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
            for doc in yaml.safe_load_all(Path(path).read_text()):
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


def crd_url(pin: versions.Pin) -> str:
    kind, _, url = pin.source.partition(":")
    assert kind == "sha256-of", pin
    return url


def fetch_crd(pin_name: str, cache: Path | None = None, pins: dict[str, versions.Pin] | None = None) -> Path:
    """The operator CRD a versions.env pin names: from the cache, else downloaded into it; either
    way its SHA-256 must be the pinned one. Raises CrdUnavailable or ChecksumMismatch."""
    pin = (pins or versions.load())[pin_name]
    cache = cache or CRD_CACHE
    url = crd_url(pin)
    target = cache / url.rsplit("/", 1)[1]
    if target.is_file():
        body = target.read_bytes()
    else:
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                body = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CrdUnavailable(f"{url}: {reason} (to check without network, put the file in {cache})") from exc
    actual = hashlib.sha256(body).hexdigest()
    if actual != pin.value.lower():
        raise ChecksumMismatch(f"{url}: SHA-256 {actual}, {pin_name} pins {pin.value}: refused")
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(body)
        partial.replace(target)
    return target


@cache
def operator_crd(group: str, kind: str) -> CrdSchemas | str:
    """The CRD schemas for an operator's kind, or the reason there are none here."""
    try:
        return CrdSchemas.load([fetch_crd(OPERATOR_CRDS[(group, kind)])])
    except CrdUnavailable as exc:
        return f"{kind} not checked: its CRD could not be downloaded: {exc}"


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
    """How an object was checked ("kubernetes", "package", "crd", "unchecked" or "skipped"),
    and its error, or for "skipped" the reason."""

    how: str
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None or self.how == "skipped"


def _validate_one(obj: dict, kubernetes_version: str) -> Outcome:
    source = schema_source(obj)
    if source == "crd":
        crds = operator_crd(group_version(obj["apiVersion"])[0], obj["kind"])
        if isinstance(crds, str):
            return Outcome("skipped", crds)
        try:
            crds.validate(obj)
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
    except (ToolMissing, ChecksumMismatch) as exc:
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
        elif outcome.how == "skipped":
            print(f"SKIP {name}: {outcome.error}")
    summary = ", ".join(f"{n} {how}" for how, n in sorted(counts.items()))
    print(f"{failed} invalid; {summary or 'nothing'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
