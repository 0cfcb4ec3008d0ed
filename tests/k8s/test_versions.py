"""versions.env is the one place of third-party versions: every pin dated and sourced, the
Makefile and scripts read it, the chart's images agree with it; `make versions-check` reports
what is behind against (fake, local) release sources, and says so when it cannot check."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from devstack.paths import REPO
from scripts import versions, versions_check
from tests.k8s.chart import CHART, find, render
from tests.utils.file_server import file_server

PINS = versions.load()
SOURCE = re.compile(
    r"^(github:[\w.-]+/[\w.-]+|helm:https?://\S+#[\w.-]+|image:[\w./-]+#\S+|k8s:[\w.-]+|pypi:[\w.-]+|sha256(?:-of)?:https://\S+)$"
)


def make_value(variable: str, *args: str, env: dict[str, str] | None = None) -> str:
    """The value make gives a variable, with the project's Makefile and mk/*.mk read."""
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", f"show-it: ; @echo '$({variable})'", "show-it", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_pin_has_the_day_it_was_checked_and_a_source_versions_check_reads() -> None:
    assert len(PINS) >= 10
    for pin in PINS.values():
        assert SOURCE.match(pin.source), pin
        assert date(2026, 1, 1) <= pin.day <= date.today(), pin
        assert pin.value and pin.value != "latest", pin


def test_a_pin_line_without_its_date_and_source_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "versions.env"
    bad.write_text("HELM_VERSION=v4.2.4\n")
    with pytest.raises(versions.VersionsFileError, match="HELM_VERSION"):
        versions.load(bad)
    bad.write_text("A=1  # checked 2026-01-01 github:a/b\nA=2  # checked 2026-01-01 github:a/b\n")
    with pytest.raises(versions.VersionsFileError, match="twice"):
        versions.load(bad)


@pytest.mark.parametrize("name", sorted(PINS))
def test_make_reads_every_pin_from_the_versions_file(name: str) -> None:
    assert make_value(name) == PINS[name].value


def test_a_version_on_the_command_line_or_in_the_environment_still_wins() -> None:
    assert make_value("KEDA_CHART_VERSION", "KEDA_CHART_VERSION=9.9.9") == "9.9.9"
    assert make_value("KIND_VERSION", env={**os.environ, "KIND_VERSION": "v9.9.9"}) == "v9.9.9"


def test_no_script_or_makefile_repeats_a_pinned_version() -> None:
    """Versions live in versions.env only: a literal elsewhere would drift from it."""
    places = [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk")), *sorted((REPO / "scripts").glob("*.sh"))]
    for pin in PINS.values():
        for path in places:
            text = path.read_text()
            assert not re.search(rf"(?<![\w.]){re.escape(pin.version)}(?![\w.])", text), f"{pin.version} in {path}"


def test_the_charts_images_are_the_pinned_ones() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for block, pin in (("rabbitmq", "RABBITMQ_IMAGE"), ("mongodb", "MONGODB_IMAGE")):
        image = values[block]["image"]
        assert f"{image['repository']}:{image['tag']}" == PINS[pin].value
    # And what the chart renders (the StatefulSets; the RabbitmqCluster uses the same image).
    rendered = {
        container["image"]
        for obj in find(render(), "StatefulSet")
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    assert rendered == {PINS["RABBITMQ_IMAGE"].value, PINS["MONGODB_IMAGE"].value}


def test_the_dockerfiles_build_on_the_pinned_python_image() -> None:
    dockerfiles = sorted((REPO / "services").glob("*/Dockerfile"))
    assert len(dockerfiles) == 3
    for dockerfile in dockerfiles:
        defaults = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text(), re.MULTILINE)
        assert defaults == [PINS["PYTHON_IMAGE"].value], dockerfile


# -- make versions-check -----------------------------------------------------------------------


def fake_sources() -> dict[str, bytes]:
    """What the release sources answer: helm is behind (v4.3.1 out), kind up to date, a chart
    behind with a newer prerelease ignored, an image behind in its tag pattern, Kubernetes ahead."""
    index = {
        "apiVersion": "v1",
        "entries": {
            "widget": [{"version": "1.2.0"}, {"version": "1.10.0"}, {"version": "2.0.0-rc.1"}],
            "other": [{"version": "9.0.0"}],
        },
    }
    tags = {
        "results": [{"name": n} for n in ["4.2.1-management", "4.2.1", "3.13.7-management", "4.3.0-beta.1-management"]]
    }
    return {
        "/github/repos/helm/helm/releases/latest": json.dumps({"tag_name": "v4.3.1"}).encode(),
        "/github/repos/kubernetes-sigs/kind/releases/latest": json.dumps({"tag_name": "v0.32.0"}).encode(),
        "/charts/index.yaml": yaml.safe_dump(index).encode(),
        "/hub/v2/repositories/library/rabbitmq/tags?page_size=100&ordering=last_updated": json.dumps(tags).encode(),
        "/k8s/release/stable.txt": b"v1.36.0\n",
        "/dl/tool.tar.gz.sha256sum": f"{'a' * 64}  tool.tar.gz\n".encode(),
        "/dl/other.tar.gz.sha256sum": f"{'b' * 64}  other.tar.gz\n".encode(),
        "/dl/widget-crd.yaml": WIDGET_CRD,
        # A release without files (yanked or never uploaded) and a prerelease do not count.
        "/pypi/pypi/widget-wheel/json": json.dumps(
            {"releases": {"1.0.0": [{}], "1.1.0": [{}], "1.2.0": [], "2.0.0rc1": [{}]}}
        ).encode(),
    }


# A file published without a checksum beside it (an operator's CRD): its pin is its own SHA-256.
WIDGET_CRD = b"kind: CustomResourceDefinition\n"


def versions_file(tmp_path: Path, charts: str) -> Path:
    site = charts.rsplit("/", 1)[0]
    path = tmp_path / "versions.env"
    path.write_text(
        "# a header\n"
        "HELM_VERSION=v4.2.4  # checked 2026-08-20 github:helm/helm\n"
        "KIND_VERSION=v0.32.0  # checked 2026-08-21 github:kubernetes-sigs/kind\n"
        f"WIDGET_CHART_VERSION=1.9.0  # pinned 2026-11-22 helm:{charts}#widget\n"
        "RABBITMQ_IMAGE=rabbitmq:3.13.7-management  # pinned 2026-11-22 "
        "image:library/rabbitmq#^\\d+\\.\\d+\\.\\d+-management$\n"
        "KUBECTL_VERSION=v1.36.1  # pinned 2026-12-05 k8s:stable\n"
        f"TOOL_SHA256_LINUX_AMD64={'a' * 64}  # checked 2026-09-10 sha256:{site}/dl/tool.tar.gz.sha256sum\n"
        f"OTHER_SHA256_LINUX_AMD64={'c' * 64}  # checked 2026-09-10 sha256:{site}/dl/other.tar.gz.sha256sum\n"
        f"WIDGET_CRD_SHA256={hashlib.sha256(WIDGET_CRD).hexdigest()}"
        f"  # pinned 2026-12-05 sha256-of:{site}/dl/widget-crd.yaml\n"
        "WIDGET_WHEEL_VERSION=1.0.0  # checked 2026-12-05 pypi:widget-wheel\n"
    )
    return path


def run_check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.versions_check", "--file", str(path), "--timeout", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_versions_check_lists_what_is_behind(tmp_path: Path) -> None:
    with file_server(fake_sources()) as server:
        env = {
            "VERSIONS_CHECK_GITHUB_API": f"{server.url}/github",
            "VERSIONS_CHECK_DOCKER_HUB": f"{server.url}/hub",
            "VERSIONS_CHECK_K8S_RELEASES": f"{server.url}/k8s",
            "VERSIONS_CHECK_PYPI": f"{server.url}/pypi",
        }
        result = run_check(versions_file(tmp_path, f"{server.url}/charts"), env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line and line.split()[0].isupper()}
    assert "BEHIND: latest v4.3.1" in lines["HELM_VERSION"]
    assert "up to date (v0.32.0)" in lines["KIND_VERSION"]
    assert "BEHIND: latest 1.10.0" in lines["WIDGET_CHART_VERSION"]  # 1.10 > 1.9, the rc ignored
    assert "BEHIND: latest 4.2.1-management" in lines["RABBITMQ_IMAGE"]
    assert "up to date (v1.36.0)" in lines["KUBECTL_VERSION"]
    assert "matches the published checksum" in lines["TOOL_SHA256_LINUX_AMD64"]
    assert "DIFFERS from the published checksum" in lines["OTHER_SHA256_LINUX_AMD64"]
    assert "matches the published checksum" in lines["WIDGET_CRD_SHA256"]
    assert "BEHIND: latest 1.1.0" in lines["WIDGET_WHEEL_VERSION"]
    assert result.stdout.rstrip().endswith("4 of 6 versions behind, 1 checksums differ")


def test_versions_check_offline_says_it_cannot_check_and_exits_0(tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:1"
    env = {
        "VERSIONS_CHECK_GITHUB_API": nowhere,
        "VERSIONS_CHECK_DOCKER_HUB": nowhere,
        "VERSIONS_CHECK_K8S_RELEASES": nowhere,
        "VERSIONS_CHECK_PYPI": nowhere,
    }
    result = run_check(versions_file(tmp_path, f"{nowhere}/charts"), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("versions-check: cannot check: no network to the release sites")


def test_versions_check_names_a_source_that_answered_badly(tmp_path: Path) -> None:
    with file_server({}) as server:  # every path answers 404
        env = {"VERSIONS_CHECK_GITHUB_API": f"{server.url}/github"}
        path = tmp_path / "versions.env"
        path.write_text("HELM_VERSION=v4.2.4  # checked 2026-08-20 github:helm/helm\n")
        result = run_check(path, env)
    assert result.returncode == 0
    assert "could not check: HTTP 404" in result.stdout


def test_versions_check_refuses_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "versions.env"
    path.write_text("HELM_VERSION=v4.2.4\n")
    assert run_check(path, {}).returncode == 2


def test_version_order_is_numeric() -> None:
    assert versions_check.version_key("1.10.0") > versions_check.version_key("1.9.0")
    assert versions_check.version_key("v0.32.0") > versions_check.version_key("v0.4.1")


def test_make_operators_installs_the_pinned_operator_versions() -> None:
    dry_run = subprocess.run(["make", "-n", "operators"], cwd=REPO, capture_output=True, text=True)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "scripts/install-operators.sh" in dry_run.stdout
    for name in ("CERT_MANAGER_VERSION", "RABBITMQ_CLUSTER_OPERATOR_VERSION", "MONGODB_KUBERNETES_CHART_VERSION"):
        assert f'{name}="{PINS[name].value}"' in dry_run.stdout
