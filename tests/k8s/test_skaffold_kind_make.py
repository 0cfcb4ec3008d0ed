"""skaffold.yaml, the kind cluster config and the make targets, checked without Docker or a
cluster: they parse, point at files that exist and agree with the chart."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.chart import REPO, chart_values, containers, find, kind_node_version, one, render

SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())
KIND_CONFIG = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())


def apply_patches(config: dict, patches: list[dict]) -> dict:
    """JSON patch (RFC 6902) add/replace, as skaffold applies a profile's patches."""
    config = copy.deepcopy(config)
    for patch in patches:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in patch["path"].lstrip("/").split("/")]
        target = config
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list) and last == "-":
            assert patch["op"] == "add", patch
            target.append(patch["value"])
            continue
        key = int(last) if isinstance(target, list) else last
        if patch["op"] == "replace":
            assert key in target if isinstance(target, dict) else key < len(target), patch["path"]
        else:
            assert patch["op"] == "add", patch
        target[key] = patch["value"]
    return config


def with_profiles(*names: str) -> dict:
    """skaffold.yaml as `skaffold -p <names>` sees it: each profile's patches, in order."""
    config = SKAFFOLD
    for name in names:
        (spec,) = [p for p in SKAFFOLD["profiles"] if p["name"] == name]
        config = apply_patches(config, spec.get("patches", []))
    return config


def helm_release(config: dict) -> dict:
    (release,) = config["deploy"]["helm"]["releases"]
    return release


def template_key(image: str) -> str:
    """An artifact's name in skaffold's {{.IMAGE_REPO_<name>}} and {{.IMAGE_TAG_<name>}}."""
    return re.sub(r"[^A-Za-z0-9_]", "_", image)


def built_reference(key: str) -> str:
    """The made-up reference of the artifact `key`; each its own tag, so a mixed-up tag shows."""
    return f"example.test/{key}:abc1234-{key}"


def built_images(config: dict) -> set[str]:
    return {built_reference(template_key(a["image"])) for a in config["build"]["artifacts"]}


def release_args(config: dict) -> list[str]:
    """The `--set`/`--values` skaffold passes, with made-up image references for the templates;
    a template naming an artifact that skaffold does not build fails (skaffold has no value)."""
    release = helm_release(config)
    built = {template_key(a["image"]) for a in config["build"]["artifacts"]}

    def reference(match: re.Match[str]) -> str:
        part, key = match.groups()
        assert key in built, f"{match.group(0)}: skaffold builds no such artifact ({sorted(built)})"
        repository, tag = built_reference(key).split(":")
        return repository if part == "REPO" else tag

    args = []
    for path in release.get("valuesFiles", []):
        args += ["--values", str(REPO / path)]
    for key, value in release.get("setValues", {}).items():
        args += ["--set", f"{key}={value}"]
    for key, template in release.get("setValueTemplates", {}).items():
        value = re.sub(r"\{\{\.IMAGE_(REPO|TAG)_(\w+)\}\}", reference, template)
        args += ["--set", f"{key}={value}"]
    return args


def pod_images(objects: list[dict]) -> dict[str, str]:
    """{"<kind>/<name>/<container>": image} for every container (init ones too) running one of
    our images, not RabbitMQ's or MongoDB's."""
    values = chart_values()
    third_party = {f"{values[n]['image']['repository']}:{values[n]['image']['tag']}" for n in ("rabbitmq", "mongodb")}
    return {
        f"{o['kind']}/{o['metadata']['name']}/{c['name']}": c["image"]
        for o in objects
        for _, c in containers(o)
        if c["image"] not in third_party
    }


def test_skaffold_uses_a_current_schema_and_builds_three_images_from_the_repo_root() -> None:
    assert SKAFFOLD["kind"] == "Config"
    version = re.fullmatch(r"skaffold/v4beta(\d+)", SKAFFOLD["apiVersion"])
    assert version and int(version.group(1)) >= 11
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert [a["image"] for a in artifacts] == ["classifier-gateway", "classifier-results", "classifier-worker"]
    for artifact in artifacts:
        assert artifact["context"] == "."
        assert (REPO / artifact["docker"]["dockerfile"]).is_file()
    assert helm_release(SKAFFOLD)["chartPath"] == "helm/classifier"
    assert (REPO / helm_release(SKAFFOLD)["chartPath"] / "Chart.yaml").is_file()


@pytest.mark.parametrize(
    ("profiles", "artifacts"),
    [
        ((), ["classifier_gateway", "classifier_results", "classifier_worker"]),
        (("dev",), ["classifier_gateway", "classifier_results", "classifier_worker"]),
        (("gpu",), ["classifier_gateway", "classifier_results", "classifier_worker"]),
        # The seed Job keeps the worker image with torch.
        (("onnx",), ["classifier_gateway", "classifier_results", "classifier_worker", "classifier_worker_onnx"]),
        (("dev", "onnx"), ["classifier_gateway", "classifier_results", "classifier_worker", "classifier_worker_onnx"]),
    ],
)
def test_skaffold_helm_values_are_valid_chart_values_and_set_every_image(
    profiles: tuple[str, ...], artifacts: list[str]
) -> None:
    """Every pod runs an image skaffold builds (or a third-party one), and each built one runs."""
    config = with_profiles(*profiles)
    assert sorted(template_key(a["image"]) for a in config["build"]["artifacts"]) == artifacts
    images = set(pod_images(render(*release_args(config))).values())
    assert images == built_images(config)


def test_skaffold_dev_profile_forwards_ports_the_services_have() -> None:
    (dev,) = [p for p in SKAFFOLD["profiles"] if p["name"] == "dev"]
    services = {s["metadata"]["name"]: s for s in find(render(), "Service")}
    assert dev["portForward"]
    for forward in dev["portForward"]:
        assert forward["resourceType"] == "service"
        assert forward["namespace"] == helm_release(SKAFFOLD)["namespace"]
        ports = {p["port"] for p in services[forward["resourceName"]]["spec"]["ports"]}
        assert forward["port"] in ports


def test_skaffold_gpu_profile_builds_cuda_torch_and_deploys_gpu_workers() -> None:
    config = with_profiles("gpu")
    worker = config["build"]["artifacts"][2]
    assert worker["image"] == "classifier-worker"
    assert worker["docker"]["buildArgs"]["TORCH_VARIANT"].startswith("cu")
    deployment = one(render(*release_args(config)), "Deployment", "classifier-worker-default")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


ONNX_ARTIFACT = "classifier_worker_onnx"
TORCH_ARTIFACT = "classifier_worker"


def test_skaffold_onnx_profile_builds_the_onnx_target_of_the_worker_dockerfile() -> None:
    artifacts = {a["image"]: a for a in with_profiles("onnx")["build"]["artifacts"]}
    onnx, torch = artifacts["classifier-worker-onnx"], artifacts["classifier-worker"]
    assert onnx["context"] == torch["context"] == "."
    assert onnx["docker"]["dockerfile"] == torch["docker"]["dockerfile"]
    assert onnx["docker"]["target"] == "onnx"
    assert "target" not in torch["docker"]  # the default target: the worker with torch
    # Built only on request: plain `skaffold run`/`dev` stay at three images.
    assert "classifier-worker-onnx" not in {a["image"] for a in SKAFFOLD["build"]["artifacts"]}


# A values file a user adds to the release: one pool onnxOnly from the profile, one by its own
# values, one that keeps torch.
ONNX_POOLS = {
    "workerPools": [
        {"name": "lite", "models": ["efficientnet_lite0", "efficientnet_lite1"]},
        {"name": "big", "models": ["efficientnet_lite2"], "image": {"onnxOnly": False}},
        {"name": "edge", "models": ["mobilenet_v3_large"], "image": {"onnxOnly": True}},
    ],
    "seed": {"download": True},
}


@pytest.mark.parametrize(
    ("values", "onnx_pools", "torch_pools"),
    [(None, ["default"], []), (ONNX_POOLS, ["lite", "edge"], ["big"])],
    ids=["defaults", "pools"],
)
def test_skaffold_onnx_profile_runs_onnx_only_pools_on_its_artifact_and_the_rest_on_torch(
    tmp_path: Path, values: dict | None, onnx_pools: list[str], torch_pools: list[str]
) -> None:
    config = with_profiles("onnx")
    if values:
        path = tmp_path / "pools-values.yaml"
        path.write_text(yaml.safe_dump(values))
        config = apply_patches(
            config, [{"op": "add", "path": "/deploy/helm/releases/0/valuesFiles", "value": [str(path)]}]
        )
    objects = render(*release_args(config))
    images = pod_images(objects)
    names = [d["metadata"]["name"] for d in find(objects, "Deployment")]
    pools = {n.removeprefix("classifier-worker-") for n in names if n.startswith("classifier-worker-")}
    assert pools == set(onnx_pools + torch_pools)
    for pool in onnx_pools:
        for container in ("wait-for-seed", "worker"):
            assert images[f"Deployment/classifier-worker-{pool}/{container}"] == built_reference(ONNX_ARTIFACT)
    for pool in torch_pools:
        for container in ("wait-for-seed", "worker"):
            assert images[f"Deployment/classifier-worker-{pool}/{container}"] == built_reference(TORCH_ARTIFACT)
    (seed,) = find(objects, "Job")
    assert images[f"Job/{seed['metadata']['name']}/seed"] == built_reference(TORCH_ARTIFACT)
    assert set(images.values()) <= built_images(config)


def test_skaffold_profiles_say_when_to_use_them() -> None:
    text = (REPO / "skaffold.yaml").read_text()
    assert {p["name"] for p in SKAFFOLD["profiles"]} == {"dev", "gpu", "onnx"}
    for name in ("dev", "gpu", "onnx"):
        comment = re.search(rf"((?:^  #.*\n)+)  - name: {name}\n", text, flags=re.MULTILINE)
        assert comment and "for" in comment.group(1), f"profile {name} needs a comment saying when to use it"


def test_kind_node_is_ingress_ready_with_ports_and_the_data_mount() -> None:
    assert KIND_CONFIG["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = KIND_CONFIG["nodes"]
    assert node["labels"]["ingress-ready"] == "true"
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {(80, 80), (443, 443)}
    (mount,) = node["extraMounts"]
    # The chart's hostPath PersistentVolumes live under this node path.
    assert mount["containerPath"] == chart_values()["storage"]["hostPath"]["path"]
    for volume in find(render(), "PersistentVolume"):
        assert volume["spec"]["hostPath"]["path"].startswith(mount["containerPath"] + "/")
    # `make kind-up` renders the absolute host path into the placeholder.
    assert mount["hostPath"] == "${CLASSIFIER_KIND_DATA}"
    assert "${CLASSIFIER_KIND_DATA}" in (REPO / "scripts" / "kind-up.sh").read_text()


def make_dry_run(*args: str) -> str:
    result = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_targets_exist_and_run_the_documented_commands() -> None:
    assert "scripts/kind-up.sh" in make_dry_run("kind-up")
    assert "kind delete cluster --name classifier" in make_dry_run("kind-down")
    deploy = make_dry_run("deploy")
    assert "scripts/k8s-images.sh" in deploy  # zero to a cluster: `make kind-up deploy`
    assert re.search(r"helm\S* upgrade --install classifier helm/classifier", deploy)
    assert "--wait" in deploy
    e2e = make_dry_run("e2e")
    assert 'BASE_URL="http://localhost"' in e2e and "pytest tests/e2e" in e2e
    assert "scripts.install_tools helm --optional kubectl kind" in make_dry_run("tools")
    assert "scripts/k8s-check.sh" in make_dry_run("k8s-check")


def test_make_k8s_check_validates_for_the_oldest_kubernetes_supported_and_kinds_node() -> None:
    """1.33 and the version kind's default node runs (KUBECTL_VERSION is pinned to its minor)."""
    check = make_dry_run("k8s-check")
    assert 'K8S_VERSION="1.33.0"' in check
    assert f'K8S_NODE_VERSION="{kind_node_version()}"' in check
    script = (REPO / "scripts" / "k8s-check.sh").read_text()
    assert "for version in $K8S_VERSION $K8S_NODE_VERSION; do" in script


def test_make_deploy_gpu_variant_uses_the_cuda_worker_image() -> None:
    deploy = make_dry_run("deploy", "TORCH_VARIANT=cu128")
    assert "--set worker.image.tagSuffix=-cu128" in deploy
    assert 'TORCH_VARIANT="cu128"' in deploy
    assert "--set worker.gpu.enabled=true" in deploy
