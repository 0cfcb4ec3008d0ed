"""Every package imports only what it declares: each image installs a package with its declared
dependencies alone (the gateway image: common + gateway), so an import of something undeclared
(another service, httpx in common) works here, where everything is installed, and fails there.

Imports are read from the source (every ``import``, also inside functions); what an import may
reach is the package's declared requirements and what they require in turn."""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack.paths import REPO

PACKAGES = {  # project folder: import name
    "libs/common": "classifier_common",
    "services/gateway": "classifier_gateway",
    "services/results": "classifier_results",
    "services/classifier-worker": "classifier_worker",
    "services/standalone": "classifier_standalone",
    "clients/python": "classifier_client",
}


def _imports(source_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in source_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


@cache
def _reachable(requirement: str) -> frozenset[str]:
    """The distribution a requirement names and every distribution it requires, transitively."""
    req = Requirement(requirement)
    name = canonicalize_name(req.name)
    out = {name}
    for sub in metadata.requires(req.name) or []:
        sub_req = Requirement(sub)
        if sub_req.marker is None or any(sub_req.marker.evaluate({"extra": e}) for e in req.extras or {""}):
            out |= _reachable(str(sub_req).split(";")[0])
    return frozenset(out)


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_every_import_is_a_declared_dependency(folder: str) -> None:
    package = PACKAGES[folder]
    project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    allowed: set[str] = {canonicalize_name(project["name"])}
    # An optional extra counts: the code importing it must cope without it (the worker's torchvision).
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    for requirement in [*project.get("dependencies", []), *extras]:
        allowed |= _reachable(requirement)
    providers = metadata.packages_distributions()
    undeclared = {
        module: providers.get(module, ["?"])
        for module in _imports(REPO / folder / "src" / package)
        if not {canonicalize_name(d) for d in providers.get(module, [])} & allowed
    }
    assert not undeclared, f"{folder} imports modules its pyproject.toml does not declare: {undeclared}"
