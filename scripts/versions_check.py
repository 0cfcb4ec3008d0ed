"""`make versions-check`: compare every pin in versions.env with the newest release of its source
and print what is behind.

    python -m scripts.versions_check [--file versions.env] [--timeout SECONDS]

Sources (see versions.env's header): a GitHub project's latest release, a chart repository's
index.yaml, a Docker Hub repository's tags (those matching the pin's pattern), Kubernetes'
stable.txt, a PyPI project's newest release; a pinned checksum is compared with the checksum
file published beside its download (sha256:) or with the SHA-256 of the file itself (sha256-of:,
for files published without one).
Without network to them (a machine with no internet) it says it cannot check and exits 0; so
does it when some pins are behind: it informs, it does not gate. Exit 2: the versions file
itself is malformed.

The base addresses can be changed (a mirror, or the tests' local server) with
VERSIONS_CHECK_GITHUB_API, VERSIONS_CHECK_DOCKER_HUB, VERSIONS_CHECK_K8S_RELEASES and
VERSIONS_CHECK_PYPI; GITHUB_TOKEN,
when set, is sent to GitHub (its anonymous limit is 60 requests an hour).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.versions import VERSIONS_FILE, Pin, VersionsFileError, load

DEFAULT_TIMEOUT_S = 10.0
# Source kinds whose pin is a checksum, not a version: compared for equality, not order.
CHECKSUMS = ("sha256", "sha256-of")


class Unreachable(Exception):
    """No network to the source (name resolution, connection, time-out)."""


class Unanswered(Exception):
    """The source answered, but not with a version (HTTP error, unexpected content)."""


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def is_stable(version: str) -> bool:
    return re.search(r"(alpha|beta|rc|pre|dev)", version, re.IGNORECASE) is None


def _base(variable: str, default: str) -> str:
    return os.environ.get(variable, default).rstrip("/")


def fetch(url: str, timeout: float) -> bytes:
    headers = {"User-Agent": "classifier-versions-check", "Accept": "application/json"}
    token = os.environ.get("GITHUB_TOKEN")
    github_api = _base("VERSIONS_CHECK_GITHUB_API", "https://api.github.com")
    if token and url.startswith(github_api):
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise Unanswered(f"HTTP {exc.code} from {url}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise Unreachable(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def latest(pin: Pin, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """The newest stable version the pin's source offers."""
    kind, _, spec = pin.source.partition(":")
    if kind == "github":
        base = _base("VERSIONS_CHECK_GITHUB_API", "https://api.github.com")
        return json.loads(fetch(f"{base}/repos/{spec}/releases/latest", timeout))["tag_name"]
    if kind == "helm":
        repository, _, chart = spec.rpartition("#")
        index = yaml.safe_load(fetch(f"{repository.rstrip('/')}/index.yaml", timeout))
        versions = [str(entry["version"]) for entry in (index.get("entries") or {}).get(chart, [])]
        return _newest(versions, f"chart {chart} in {repository}")
    if kind == "image":
        repository, _, pattern = spec.partition("#")
        base = _base("VERSIONS_CHECK_DOCKER_HUB", "https://hub.docker.com")
        url = f"{base}/v2/repositories/{repository}/tags?page_size=100&ordering=last_updated"
        tags = [tag["name"] for tag in json.loads(fetch(url, timeout))["results"]]
        return _newest([tag for tag in tags if re.search(pattern, tag)], f"tags of {repository} matching {pattern}")
    if kind == "k8s":
        base = _base("VERSIONS_CHECK_K8S_RELEASES", "https://dl.k8s.io")
        return fetch(f"{base}/release/{spec}.txt", timeout).decode().strip()
    if kind == "pypi":
        base = _base("VERSIONS_CHECK_PYPI", "https://pypi.org")
        releases = json.loads(fetch(f"{base}/pypi/{spec}/json", timeout))["releases"]
        return _newest([version for version, files in releases.items() if files], f"releases of {spec} on PyPI")
    if kind == "sha256-of":
        return hashlib.sha256(fetch(spec, timeout)).hexdigest()
    if kind == "sha256":
        match = re.search(r"\b[0-9a-fA-F]{64}\b", fetch(spec, timeout).decode(errors="replace"))
        if match is None:
            raise Unanswered(f"no SHA-256 in {spec}")
        return match.group(0).lower()
    raise Unanswered(f"unknown source kind {kind!r}")


def _newest(versions: list[str], what: str) -> str:
    stable = [version for version in versions if is_stable(version)]
    if not stable:
        raise Unanswered(f"no stable version among the {what}")
    return max(stable, key=version_key)


@dataclass(frozen=True)
class Outcome:
    pin: Pin
    latest: str | None = None
    error: Exception | None = None

    @property
    def behind(self) -> bool:
        """A newer release than the pin; for a checksum, one that differs from the published."""
        if self.latest is None:
            return False
        if self.pin.kind in CHECKSUMS:
            return self.latest != self.pin.value.lower()
        return version_key(self.latest) > version_key(self.pin.version)


def check(pins: list[Pin], timeout: float = DEFAULT_TIMEOUT_S) -> list[Outcome]:
    def one(pin: Pin) -> Outcome:
        try:
            return Outcome(pin, latest=latest(pin, timeout))
        except (Unreachable, Unanswered) as exc:
            return Outcome(pin, error=exc)
        except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            return Outcome(pin, error=Unanswered(f"unexpected answer: {exc!r}"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, pins))


def report(outcomes: list[Outcome]) -> str:
    if outcomes and all(isinstance(outcome.error, Unreachable) for outcome in outcomes):
        return (
            "versions-check: cannot check: no network to the release sites "
            f"({outcomes[0].error}); the pins in versions.env are unchanged.\n"
        )
    width = max(len(outcome.pin.name) for outcome in outcomes)
    lines = []
    for outcome in outcomes:
        pin = outcome.pin
        since = f"{pin.state} {pin.day.isoformat()}"
        if outcome.error is not None:
            lines.append(f"{pin.name:<{width}}  {pin.version[:14]:<14}  could not check: {outcome.error}")
        elif pin.kind in CHECKSUMS:
            verdict = "DIFFERS from the published checksum" if outcome.behind else "matches the published checksum"
            lines.append(f"{pin.name:<{width}}  {pin.version[:12]:<14}  {verdict}")
        elif outcome.behind:
            lines.append(
                f"{pin.name:<{width}}  {pin.version:<14}  BEHIND: latest {outcome.latest} ({since}, {pin.source})"
            )
        else:
            lines.append(f"{pin.name:<{width}}  {pin.version:<14}  up to date ({outcome.latest})")
    versions = [outcome for outcome in outcomes if outcome.pin.kind not in CHECKSUMS]
    behind = sum(outcome.behind for outcome in versions)
    differ = sum(outcome.behind for outcome in outcomes if outcome.pin.kind in CHECKSUMS)
    unchecked = sum(outcome.error is not None for outcome in outcomes)
    summary = f"{behind} of {len(versions)} versions behind"
    summary += f", {differ} checksums differ" if differ else ""
    summary += f", {unchecked} not checked" if unchecked else ""
    lines.append(summary)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=VERSIONS_FILE)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    args = parser.parse_args(argv)
    try:
        pins = list(load(args.file).values())
    except VersionsFileError as exc:
        print(f"versions-check: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(report(check(pins, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
