"""Worker pools in the chart (workerPools), rendered by the real helm: one worker Deployment,
autoscaler and PodDisruptionBudget per pool on the pool's own queue, CLASSIFIER_POOLS read back
by the services' own Settings, what a pool leaves out taken from worker:, GPU placement, and the
values refused at `helm template` time with a message that says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from classifier_common.catalog import CATALOG
from classifier_common.config import Settings
from tests.k8s.chart import (
    CHART,
    RenderError,
    app_version,
    chart_values,
    env_of,
    find,
    one,
    render,
    render_text,
    validate_all,
)

POOLS = ("--values", str(CHART / "ci" / "pools-values.yaml"))
LITE = "classifier-worker-lite"
GPU = "classifier-worker-gpu"


def worker(objects: list[dict], name: str) -> dict:
    return one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def pod_labels(objects: list[dict], name: str) -> dict[str, str]:
    return one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]


def matches(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def configmap_settings(objects: list[dict], deployment: str) -> Settings:
    """The Settings a worker of `deployment` builds from the ConfigMap and its own env."""
    data = one(objects, "ConfigMap", "classifier")["data"]
    env = {name: entry["value"] for name, entry in env_of(worker(objects, deployment)).items() if "value" in entry}
    return Settings(
        pools=data["CLASSIFIER_POOLS"], pool=env["CLASSIFIER_POOL"], queue_name=data["CLASSIFIER_QUEUE_NAME"]
    )


def write_values(tmp_path: Path, values: dict) -> tuple[str, str]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ("--values", str(path))


# --- the default: one pool, the behaviour of a single worker Deployment ---------------------------


def test_the_default_is_one_pool_serving_the_efficientnet_lite_models() -> None:
    objects = render()
    kinds = ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")
    names = {
        kind: [o["metadata"]["name"] for o in find(objects, kind) if "worker" in o["metadata"]["name"]]
        for kind in kinds
    }
    assert names == {kind: ["classifier-worker-default"] for kind in names}
    settings = configmap_settings(objects, "classifier-worker-default")
    assert settings.pools == {"default": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]}
    assert settings.pool == "default"
    hpa = one(objects, "HorizontalPodAutoscaler", "classifier-worker-default")
    queue = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]["queue"]
    assert queue == settings.queue_for_pool("default") == "classifier.jobs.default"
    # The worker: block's settings reach the pool's workers.
    env = env_of(worker(objects, "classifier-worker-default"))
    defaults = chart_values()["worker"]
    assert env["CLASSIFIER_MAX_BATCH"]["value"] == str(defaults["maxBatch"])
    assert env["CLASSIFIER_RUNTIME"]["value"] == defaults["runtime"]
    assert env["CLASSIFIER_TORCH_THREADS"]["value"] == str(defaults["torchThreads"])


def test_every_service_reads_the_same_pools() -> None:
    objects = render()
    configmap = one(objects, "ConfigMap", "classifier")["metadata"]["name"]
    for name in ("classifier-gateway", "classifier-results", "classifier-worker-default"):
        refs = [e["configMapRef"]["name"] for e in worker(objects, name).get("envFrom", [])]
        assert refs == [configmap], name


# --- two pools, one on GPUs (ci/pools-values.yaml) ---------------------------------------------


def test_two_pools_render_two_deployments_autoscalers_and_budgets_valid_for_kubernetes_1_33() -> None:
    objects = render(*POOLS)
    for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        workers = sorted(o["metadata"]["name"] for o in find(objects, kind) if "-worker-" in o["metadata"]["name"])
        assert workers == [GPU, LITE], kind
    assert not find(objects, "Deployment", "classifier-worker-default")
    validate_all(objects)


def test_each_pool_serves_its_models_from_its_own_queue() -> None:
    objects = render(*POOLS)
    for name, pool, models in (
        (LITE, "lite", ["efficientnet_lite0", "efficientnet_lite1"]),
        (GPU, "gpu", ["efficientnet_lite2", "resnet50"]),
    ):
        settings = configmap_settings(objects, name)
        assert settings.pool == pool
        assert settings.pool_models(pool) == models
        for model in models:
            assert settings.pool_for_model(model) == pool
        hpa = one(objects, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
        assert selector == {"queue": settings.queue_for_pool(pool)}


def test_each_pool_selects_only_its_own_pods() -> None:
    objects = render(*POOLS)
    for name, other in ((LITE, GPU), (GPU, LITE)):
        deployment = one(objects, "Deployment", name)
        selector = deployment["spec"]["selector"]
        assert matches(selector, pod_labels(objects, name))
        assert not matches(selector, pod_labels(objects, other))
        budget = one(objects, "PodDisruptionBudget", name)["spec"]["selector"]
        assert budget == selector
        labels = pod_labels(objects, name)
        assert labels["app.kubernetes.io/component"] == "worker"
        assert labels["classifier/pool"] == name.removeprefix("classifier-worker-")


def test_the_network_policies_let_every_pool_reach_rabbitmq_and_mongodb() -> None:
    objects = render(*POOLS)
    for policy_name in ("classifier-rabbitmq", "classifier-mongodb"):
        policy = one(objects, "NetworkPolicy", policy_name)
        peers = [
            peer["podSelector"]
            for rule in policy["spec"]["ingress"]
            for peer in rule.get("from", [])
            if "podSelector" in peer
        ]
        for name in (LITE, GPU):
            assert any(matches(peer, pod_labels(objects, name)) for peer in peers), (policy_name, name)


def test_the_gpu_pool_requests_gpus_on_gpu_nodes_with_its_own_batching() -> None:
    objects = render(*POOLS)
    gpu = worker(objects, GPU)
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"].endswith("-cu128")
    spec = one(objects, "Deployment", GPU)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    env = env_of(gpu)
    assert (env["CLASSIFIER_MAX_BATCH"]["value"], env["CLASSIFIER_MAX_BATCH_WAIT_MS"]["value"]) == ("16", "10")
    assert env["CLASSIFIER_RUNTIME"]["value"] == "torch-cuda"
    # The CPU pool keeps the worker: block's defaults: no GPU, no taint, the CPU image.
    lite = worker(objects, LITE)
    assert "nvidia.com/gpu" not in json.dumps(lite["resources"])
    assert not lite["image"].endswith("-cu128")
    assert "nodeSelector" not in one(objects, "Deployment", LITE)["spec"]["template"]["spec"]
    assert env_of(lite)["CLASSIFIER_MAX_BATCH"]["value"] == str(chart_values()["worker"]["maxBatch"])


def test_a_pools_autoscaling_is_merged_over_the_autoscaling_block() -> None:
    objects = render(*POOLS)
    defaults = chart_values()["autoscaling"]
    lite = one(objects, "HorizontalPodAutoscaler", LITE)["spec"]
    gpu = one(objects, "HorizontalPodAutoscaler", GPU)["spec"]
    assert (lite["maxReplicas"], gpu["maxReplicas"]) == (8, 2)
    assert lite["minReplicas"] == defaults["minReplicas"]
    assert lite["metrics"][0]["external"]["target"]["averageValue"] == str(defaults["targetBacklogPerWorker"])
    assert gpu["metrics"][0]["external"]["target"]["averageValue"] == "32"
    assert lite["behavior"] == gpu["behavior"] == defaults["behavior"]


def test_the_seed_job_seeds_every_pools_models_and_only_those() -> None:
    seed = one(render(*POOLS), "Job", "classifier-seed-1")["spec"]["template"]["spec"]["containers"][0]
    models = [arg.removeprefix("--models=") for arg in seed["command"] if arg.startswith("--models=")]
    assert models == ["efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,resnet50"]


def test_a_pool_gpu_setting_keeps_the_worker_blocks_gpu_fields(tmp_path: Path) -> None:
    values = {
        "workerPools": [{"name": "big", "models": ["resnet50"], "gpu": {"enabled": True}}],
        "tests": {"model": "resnet50"},
    }
    objects = render(*write_values(tmp_path, values))
    limits = worker(objects, "classifier-worker-big")["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == chart_values()["worker"]["gpu"]["count"]
    assert limits["memory"] == chart_values()["worker"]["resources"]["limits"]["memory"]


def test_one_pool_may_scale_to_zero_with_keda_while_another_keeps_its_hpa(tmp_path: Path) -> None:
    values = {
        "workerPools": [
            {"name": "lite", "models": ["efficientnet_lite0"]},
            {"name": "rare", "models": ["vgg16"], "autoscaling": {"keda": {"enabled": True}}},
        ]
    }
    objects = render(*write_values(tmp_path, values))
    assert [o["metadata"]["name"] for o in find(objects, "ScaledObject")] == ["classifier-worker-rare"]
    assert [o["metadata"]["name"] for o in find(objects, "HorizontalPodAutoscaler")] == ["classifier-worker-lite"]
    query = one(objects, "ScaledObject", "classifier-worker-rare")["spec"]["triggers"][0]["metadata"]["query"]
    assert 'queue="classifier.jobs.rare"' in query


def test_without_autoscaling_each_pool_has_its_replicas(tmp_path: Path) -> None:
    values = {
        "autoscaling": {"enabled": False},
        "worker": {"replicas": 2},
        "workerPools": [
            {"name": "lite", "models": ["efficientnet_lite0"]},
            {"name": "big", "models": ["resnet50"], "replicas": 5},
        ],
    }
    objects = render(*write_values(tmp_path, values))
    assert one(objects, "Deployment", "classifier-worker-lite")["spec"]["replicas"] == 2
    assert one(objects, "Deployment", "classifier-worker-big")["spec"]["replicas"] == 5
    assert find(objects, "HorizontalPodAutoscaler") == []


# --- refused at `helm template` time ---------------------------------------------------------------


def refusal(tmp_path: Path, values: dict) -> str:
    """helm's message refusing `values` (the smoke test's model set to one the pools serve, so
    that the refusal is the one under test)."""
    pools = values.get("workerPools") or [{}]
    if pools[0].get("models") and "tests" not in values:
        values = {**values, "tests": {"model": pools[0]["models"][0]}}
    with pytest.raises(RenderError) as refused:
        render_text(*write_values(tmp_path, values))
    return str(refused.value)


def test_a_pool_with_no_models_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"workerPools": [{"name": "lite", "models": []}]})
    assert "/workerPools/0/models" in message and "minItems" in message


def test_a_pool_without_a_models_list_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"workerPools": [{"name": "lite"}]})
    assert "/workerPools/0" in message and "models" in message


def test_an_unknown_model_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"workerPools": [{"name": "lite", "models": ["efficientnet_lite0", "resnet1000"]}]})
    assert "/workerPools/0/models/1" in message and "efficientnet_lite0" in message


def test_a_model_in_two_pools_is_refused(tmp_path: Path) -> None:
    values = {
        "workerPools": [
            {"name": "lite", "models": ["efficientnet_lite0", "resnet18"]},
            {"name": "big", "models": ["resnet50", "resnet18"]},
        ]
    }
    message = refusal(tmp_path, values)
    assert 'model "resnet18" is in pool "lite" and in pool "big"; a model is served by one pool only' in message


def test_a_pool_name_used_twice_is_refused(tmp_path: Path) -> None:
    values = {"workerPools": [{"name": "lite", "models": ["resnet18"]}, {"name": "lite", "models": ["vgg16"]}]}
    assert 'the pool name "lite" is used twice' in refusal(tmp_path, values)


def test_no_pool_at_all_is_refused(tmp_path: Path) -> None:
    assert "/workerPools" in refusal(tmp_path, {"workerPools": []})
    with pytest.raises(RenderError, match="at least one pool is needed"):
        render_text("--set", "workerPools=null")


@pytest.mark.parametrize("name", ["Lite", "lite_0", "-lite", "lite-", "x" * 31, "a.b"])
def test_a_pool_name_that_is_no_short_dns_label_is_refused(tmp_path: Path, name: str) -> None:
    message = refusal(tmp_path, {"workerPools": [{"name": name, "models": ["resnet18"]}]})
    assert "/workerPools/0/name" in message


def test_a_pool_batch_larger_than_the_prefetch_is_refused(tmp_path: Path) -> None:
    values = {"workerPools": [{"name": "lite", "models": ["resnet18"], "maxBatch": 8}]}
    message = refusal(tmp_path, values)
    assert "workerPools[lite]: config.prefetch (4) must be at least workerThreads x maxBatch (1 x 8 = 8)" in message


def test_a_prefetch_that_only_one_job_thread_can_fill_a_batch_from_is_refused(tmp_path: Path) -> None:
    # Each of a worker's job threads fills its own batch from the same prefetched messages.
    pool = {"name": "gpu", "models": ["resnet18"], "maxBatch": 8, "workerThreads": 2}
    message = refusal(tmp_path, {"config": {"prefetch": 8}, "workerPools": [pool]})
    assert "workerPools[gpu]: config.prefetch (8) must be at least workerThreads x maxBatch (2 x 8 = 16)" in message
    enough = tmp_path / "enough"
    enough.mkdir()
    objects = render(
        *write_values(enough, {"config": {"prefetch": 16}, "workerPools": [pool], "tests": {"model": "resnet18"}})
    )
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"].endswith("worker-gpu") for o in objects)


def test_an_unknown_pool_field_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"workerPools": [{"name": "lite", "models": ["resnet18"], "maxBatchSize": 8}]})
    assert "maxBatchSize" in message


def test_the_schema_knows_exactly_the_catalogs_models() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    known = schema["definitions"]["modelName"]["enum"]
    assert sorted(known) == sorted(CATALOG)


def test_the_smoke_test_model_must_be_served_by_a_pool(tmp_path: Path) -> None:
    values: dict = {"workerPools": [{"name": "big", "models": ["resnet50"]}], "tests": {"model": "efficientnet_lite0"}}
    message = refusal(tmp_path, values)
    assert 'tests.model "efficientnet_lite0" is served by no worker pool' in message and "resnet50" in message
    values["tests"] = {"model": "resnet50"}
    smoke = one(render(*write_values(tmp_path, values)), "Pod", "classifier-smoke-test")
    assert "resnet50" in json.dumps(smoke)


# --- a pool on the ONNX-only worker image -------------------------------------------------------

ONNX_POOLS = {
    "workerPools": [
        {"name": "lite", "models": ["efficientnet_lite0", "efficientnet_lite1"], "image": {"onnxOnly": True}},
        {"name": "big", "models": ["efficientnet_lite2"]},
    ]
}


def test_a_pool_runs_the_onnx_only_image_while_the_seed_job_keeps_torch(tmp_path: Path) -> None:
    objects = render(*write_values(tmp_path, ONNX_POOLS))
    validate_all(objects)
    version = chart_values()["image"]["tag"] or yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    lite, big = worker(objects, "classifier-worker-lite"), worker(objects, "classifier-worker-big")
    assert lite["image"] == f"classifier-worker:{version}-onnx"
    assert env_of(lite)["CLASSIFIER_RUNTIME"]["value"] == chart_values()["worker"]["runtime"] == "auto"
    # Its wait for the seed runs from its own image (python is all it needs).
    (wait,) = one(objects, "Deployment", "classifier-worker-lite")["spec"]["template"]["spec"]["initContainers"]
    assert wait["image"] == lite["image"]
    # The other pool and the seed Job (which makes and checks the exports) keep the image with torch.
    assert big["image"] == f"classifier-worker:{version}"
    assert env_of(big)["CLASSIFIER_RUNTIME"]["value"] == chart_values()["worker"]["runtime"]
    (seed_job,) = find(objects, "Job")
    assert seed_job["spec"]["template"]["spec"]["containers"][0]["image"] == f"classifier-worker:{version}"


@pytest.mark.parametrize("runtime", ["onnxruntime", "onnxruntime-int8"])
def test_an_onnx_only_pool_keeps_the_onnx_runtime_it_names(tmp_path: Path, runtime: str) -> None:
    entry = {"name": "lite", "models": ["efficientnet_lite0"], "image": {"onnxOnly": True}, "runtime": runtime}
    objects = render(*write_values(tmp_path, {"workerPools": [entry]}))
    assert env_of(worker(objects, "classifier-worker-lite"))["CLASSIFIER_RUNTIME"]["value"] == runtime


def test_every_pool_onnx_only_from_the_worker_block_and_a_pool_may_opt_out(tmp_path: Path) -> None:
    values = {
        "worker": {"image": {"onnxOnly": True}},
        "workerPools": [
            {"name": "lite", "models": ["efficientnet_lite0"]},
            {"name": "big", "models": ["efficientnet_lite2"], "image": {"onnxOnly": False}},
        ],
    }
    objects = render(*write_values(tmp_path, values))
    assert worker(objects, "classifier-worker-lite")["image"].endswith("-onnx")
    assert not worker(objects, "classifier-worker-big")["image"].endswith("-onnx")
    (seed_job,) = find(objects, "Job")
    assert not seed_job["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-onnx")


@pytest.mark.parametrize(
    ("worker_image", "pool_image", "expected"),
    [
        # A build that names the ONNX-only image itself (skaffold's onnx profile): its own
        # repository and tag, no "-onnx" on top.
        ({"onnxRepository": "reg.test/worker-onnx", "onnxTag": "abc1234"}, {}, "reg.test/worker-onnx:abc1234"),
        # Only the repository: the tag stays <tag>-onnx.
        ({"onnxRepository": "worker-onnx", "tag": "1.2.3"}, {}, "worker-onnx:1.2.3-onnx"),
        # Only the tag, and one pool's own.
        ({"onnxTag": "abc1234"}, {}, "classifier-worker:abc1234"),
        ({"onnxTag": "abc1234"}, {"onnxTag": "def5678"}, "classifier-worker:def5678"),
    ],
)
def test_the_onnx_only_image_can_be_named_apart_from_the_worker_image(
    tmp_path: Path, worker_image: dict, pool_image: dict, expected: str
) -> None:
    values = {
        "worker": {"image": {"repository": "classifier-worker", **worker_image}},
        "workerPools": [
            {"name": "lite", "models": ["efficientnet_lite0"], "image": {"onnxOnly": True, **pool_image}},
            {"name": "big", "models": ["efficientnet_lite2"]},
        ],
    }
    objects = render(*write_values(tmp_path, values))
    lite = one(objects, "Deployment", "classifier-worker-lite")["spec"]["template"]["spec"]
    assert [c["image"] for c in lite["initContainers"] + lite["containers"]] == [expected, expected]
    # Only onnxOnly pools run it; the others and the seed Job keep the worker image with torch.
    torch_image = f"classifier-worker:{worker_image.get('tag') or chart_values()['image']['tag'] or app_version()}"
    assert worker(objects, "classifier-worker-big")["image"] == torch_image
    (seed_job,) = find(objects, "Job")
    assert seed_job["spec"]["template"]["spec"]["containers"][0]["image"] == torch_image


def test_the_onnx_only_image_takes_the_registry_like_the_others(tmp_path: Path) -> None:
    values = {
        "image": {"registry": "reg.test/team/"},
        "worker": {"image": {"onnxOnly": True, "onnxRepository": "worker-onnx", "onnxTag": "abc1234"}},
    }
    assert worker(render(*write_values(tmp_path, values)), "classifier-worker-default")["image"] == (
        "reg.test/team/worker-onnx:abc1234"
    )


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"runtime": "torch"}, "cannot run runtime torch: use auto, onnxruntime or onnxruntime-int8"),
        ({"runtime": "torch-bf16"}, "cannot run runtime torch-bf16"),
        ({"runtime": "torch-cuda", "gpu": {"enabled": True}}, "cannot run runtime torch-cuda"),
        ({"gpu": {"enabled": True}}, "leave gpu disabled"),
        ({"image": {"onnxOnly": True, "tagSuffix": "-cu128"}}, "leave tagSuffix (-cu128) out"),
    ],
)
def test_an_onnx_only_pool_that_needs_torch_or_a_gpu_is_refused(tmp_path: Path, pool: dict, message: str) -> None:
    entry = {"name": "lite", "models": ["efficientnet_lite0"], "image": {"onnxOnly": True}, **pool}
    refused = refusal(tmp_path, {"workerPools": [entry]})
    assert "workerPools[lite]: image.onnxOnly" in refused and message in refused, refused


def test_a_pool_running_the_model_on_a_gpu_must_have_one(tmp_path: Path) -> None:
    entry = {"name": "fast", "models": ["efficientnet_lite0"], "runtime": "torch-cuda"}
    refused = refusal(tmp_path, {"workerPools": [entry]})
    assert "workerPools[fast]: runtime torch-cuda runs the model on a GPU: set gpu.enabled" in refused, refused
    refused = refusal(tmp_path, {"worker": {"runtime": "torch-cuda"}})
    assert "runtime torch-cuda runs the model on a GPU: set gpu.enabled" in refused, refused


def test_onnx_only_is_a_worker_image_setting_only(tmp_path: Path) -> None:
    refused = refusal(tmp_path, {"gateway": {"image": {"repository": "classifier-gateway", "onnxOnly": True}}})
    assert "/gateway/image" in refused
