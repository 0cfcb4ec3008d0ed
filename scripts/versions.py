"""versions.env, the one list of third-party versions: parsed into pins.

A pin is a line ``NAME=value  # checked|pinned YYYY-MM-DD <source>`` (the file's header explains
the sources). mk/versions.mk reads the same lines with sed; this module is for the Python side
(scripts/install_tools.py, scripts/versions_check.py, the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from devstack.paths import REPO

VERSIONS_FILE = REPO / "versions.env"

_PIN = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>\S*)"
    r"(?:\s+#\s*(?P<state>checked|pinned)\s+(?P<date>\d{4}-\d{2}-\d{2})\s+(?P<source>\S+))?\s*$"
)


class VersionsFileError(ValueError):
    pass


@dataclass(frozen=True)
class Pin:
    name: str
    value: str
    # "checked": compared with its source on `day`; "pinned": set on `day`, not compared since.
    state: str
    day: date
    source: str

    @property
    def kind(self) -> str:
        """The source's kind: github, helm, image or k8s."""
        return self.source.split(":", 1)[0]

    @property
    def version(self) -> str:
        """The version part of the value: an image reference's tag, else the value itself."""
        return self.value.rsplit(":", 1)[1] if self.kind == "image" else self.value


def load(path: Path = VERSIONS_FILE) -> dict[str, Pin]:
    """Every pin, by name. A line that looks like a pin but lacks its date or source is an error."""
    pins: dict[str, Pin] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None or match["source"] is None:
            raise VersionsFileError(f"{path}:{number}: not 'NAME=value  # checked|pinned YYYY-MM-DD source': {line}")
        if match["name"] in pins:
            raise VersionsFileError(f"{path}:{number}: {match['name']} is pinned twice")
        pins[match["name"]] = Pin(
            name=match["name"],
            value=match["value"],
            state=match["state"],
            day=date.fromisoformat(match["date"]),
            source=match["source"],
        )
    return pins


def value(name: str, path: Path = VERSIONS_FILE) -> str:
    return load(path)[name].value
