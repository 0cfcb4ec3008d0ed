"""Writes requirements/constraints.txt: the exact version of every third-party package in the
venv the tests ran in (`make constraints`). `make setup` and the three Dockerfiles install with
`-c requirements/constraints.txt`, so the images carry the versions the tests ran.

torch's build variant (CPU, CUDA, PyPI's) is not in this file: `torch==X` matches every
variant's `X+cpu` / `X+cu128` (PEP 440 ignores a candidate's local label when the pin has none),
so the pins stay the same whichever build the venv has; the variant comes from the index torch
is installed from (`make setup`: scripts/install-torch.sh; the worker image: TORCH_VARIANT).
The CUDA runtime packages that only PyPI's CUDA build pulls in (nvidia-*, cuda-*, triton) are
left out for the same reason."""

from __future__ import annotations

import re
import sys
from importlib import metadata

from devstack.paths import REPO

TARGET = REPO / "requirements" / "constraints.txt"
# Ours (installed from source) and the build tools the venv itself brings.
SKIP = re.compile(r"^(classifier-.*|pip|setuptools|wheel)$")
# Present only with one of torch's build variants.
VARIANT_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")

HEADER = """\
# Exact versions of every third-party package the tests ran with, written by `make constraints`
# (scripts/constraints.py, which says how torch's build variant is handled). Used by `make setup`
# and the three Dockerfiles (pip -c). To add or upgrade a dependency: change its requirement,
# delete its line here, `make setup`, then `make constraints`.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(distributions: list[metadata.Distribution]) -> list[str]:
    found: dict[str, str] = {}
    for dist in distributions:
        name = canonical(dist.metadata["Name"])
        if SKIP.match(name) or VARIANT_ONLY.match(name):
            continue
        found[name] = dist.version.split("+", 1)[0]  # 2.14.1+cpu -> 2.14.1 (any variant)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def main() -> int:
    TARGET.write_text(HEADER + "\n".join(pins(list(metadata.distributions()))) + "\n")
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
