"""What the rendered objects promise: routes, autoscaling, hardened containers, pinned images,
read-only data, credentials only through Secrets, selectors that survive upgrades."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classifier_common.config import Settings
from tests.k8s.chart import (
    CHART,
    CI_VALUES,
    app_version,
    containers,
    env_of,
    find,
    name_of,
    one,
    pod_spec,
    render,
    values_args,
)

SCENARIOS = [None, *CI_VALUES]
SCENARIO_IDS = ["default", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]
OUR_DEPLOYMENTS = ("classifier-gateway", "classifier-results", "classifier-worker-default")


def all_scenarios() -> list[tuple[str, list[dict]]]:
    return [(scenario_id, render(*values_args(f))) for scenario_id, f in zip(SCENARIO_IDS, SCENARIOS, strict=True)]


def main_container(objects: list[dict], kind: str, name: str) -> dict:
    return one(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


# The front door (HTTPRoute, Gateway, Ingress, Middlewares): tests/k8s/test_front_door.py.


# -- autoscaling -------------------------------------------------------------------------------


def test_hpa_scales_the_worker_deployment_on_the_external_backlog_metric() -> None:
    objects = render("--set", "config.queueName=jobs.q")
    hpa = one(objects, "HorizontalPodAutoscaler", "classifier-worker-default")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "classifier-worker-default",
    }
    one(objects, "Deployment", "classifier-worker-default")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"] == {
        "name": "classifier_queue_backlog",
        "selector": {"matchLabels": {"queue": "jobs.q.default"}},
    }
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # The HPA owns the replica count: the Deployment must not fight it on every upgrade.
    assert "replicas" not in one(objects, "Deployment", "classifier-worker-default")["spec"]


def test_without_autoscaling_the_worker_has_fixed_replicas() -> None:
    objects = render("--set", "autoscaling.enabled=false", "--set", "worker.replicas=3")
    assert find(objects, "HorizontalPodAutoscaler") == []
    assert one(objects, "Deployment", "classifier-worker-default")["spec"]["replicas"] == 3


# -- containers --------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_every_container_is_hardened_and_has_resources(values_file: Path | None) -> None:
    checked = 0
    for obj in render(*values_args(values_file)):
        spec = pod_spec(obj)
        if spec is None:
            continue
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name_of(obj)
        assert pod_security["runAsUser"] > 0, name_of(obj)
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name_of(obj)
        assert spec["automountServiceAccountToken"] is False, name_of(obj)
        for role, container in containers(obj):
            where = f"{name_of(obj)} {role} container {container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "privileged" not in security, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_long_running_containers_have_probes_and_run_to_completion_pods_have_deadlines(
    values_file: Path | None,
) -> None:
    """Kubernetes forbids probes on init containers; Jobs and test pods are bounded by
    activeDeadlineSeconds instead of being probed."""
    for obj in render(*values_args(values_file)):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for role, container in containers(obj, include_init=False):
                assert "livenessProbe" in container and "readinessProbe" in container, name_of(obj)
                assert role == "main"
        elif obj["kind"] == "Job":
            assert obj["spec"]["activeDeadlineSeconds"] > 0
            assert obj["spec"]["backoffLimit"] >= 0
        elif obj["kind"] == "Pod":
            assert obj["spec"]["activeDeadlineSeconds"] > 0
            assert obj["spec"]["restartPolicy"] == "Never"


def test_our_services_probe_healthz_and_readyz_on_their_ports() -> None:
    objects = render()
    for name, port_name, port in (
        ("classifier-gateway", "http", 8000),
        ("classifier-results", "http", 8001),
        ("classifier-worker-default", "metrics", 9100),
    ):
        container = main_container(objects, "Deployment", name)
        assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {(port_name, port)}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port_name}
        assert env_of(container)["CLASSIFIER_PORT"]["value"] == str(port)
    for name in ("classifier-gateway", "classifier-results"):
        assert main_container(objects, "Deployment", name)["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_startup_probe_waits_for_the_models_not_just_the_port() -> None:
    """The worker's /healthz answers before the models are loaded; only /readyz says they are.
    Liveness must not start before a slow model load is over."""
    container = main_container(render(), "Deployment", "classifier-worker-default")
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_containers_with_a_read_only_root_have_a_writable_tmp() -> None:
    objects = render()
    for kind, name in (
        ("Deployment", "classifier-gateway"),
        ("Deployment", "classifier-results"),
        ("Deployment", "classifier-worker-default"),
        ("Job", "classifier-seed-1"),
        ("StatefulSet", "classifier-rabbitmq"),
        ("StatefulSet", "classifier-mongodb"),
    ):
        obj = one(objects, kind, name)
        container = obj["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_workers_drain_before_they_are_killed() -> None:
    objects = render()
    spec = one(objects, "Deployment", "classifier-worker-default")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    shutdown_grace = int(env_of(container)["CLASSIFIER_SHUTDOWN_GRACE_S"]["value"])
    assert spec["terminationGracePeriodSeconds"] > shutdown_grace
    # No Service sends the worker traffic: a preStop sleep would only delay its drain.
    assert "lifecycle" not in container
    for name in ("classifier-gateway", "classifier-results"):
        assert "preStop" in main_container(objects, "Deployment", name)["lifecycle"]


def test_pod_disruption_budgets_cover_our_deployments() -> None:
    objects = render()
    for name in OUR_DEPLOYMENTS:
        pdb = one(objects, "PodDisruptionBudget", name)
        deployment = one(objects, "Deployment", name)
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert pdb["spec"]["maxUnavailable"] == 1


def test_gpu_workers_request_a_gpu_and_use_the_cuda_image() -> None:
    objects = render("--values", str(CHART / "ci" / "gpu-values.yaml"))
    container = main_container(objects, "Deployment", "classifier-worker-default")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == f"classifier-worker:{app_version()}-cu128"
    assert {"name": "CLASSIFIER_RUNTIME", "value": "torch-cuda"} in container["env"]
    tolerations = one(objects, "Deployment", "classifier-worker-default")["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert "nvidia.com/gpu" not in str(main_container(render(), "Deployment", "classifier-worker-default")["resources"])


# -- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_every_image_is_pinned(values_file: Path | None) -> None:
    for obj in render(*values_args(values_file)):
        for _, container in containers(obj):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{name_of(obj)}: {image} has no tag"
            assert tag != "latest", f"{name_of(obj)}: {image}"


def test_our_images_default_to_the_app_version_and_follow_the_registry() -> None:
    version = app_version()
    objects = render()
    for name, image in (
        ("classifier-gateway", "classifier-gateway"),
        ("classifier-results", "classifier-results"),
        ("classifier-worker-default", "classifier-worker"),
    ):
        assert main_container(objects, "Deployment", name)["image"] == f"{image}:{version}"
    seed = one(objects, "Job", "classifier-seed-1")["spec"]["template"]["spec"]["containers"][0]
    assert seed["image"] == f"classifier-worker:{version}"
    moved = render("--set", "image.registry=registry.example.com/ml/", "--set", "image.tag=1.2.3")
    assert main_container(moved, "Deployment", "classifier-gateway")["image"] == (
        "registry.example.com/ml/classifier-gateway:1.2.3"
    )


# -- data volumes ------------------------------------------------------------------------------


def claim_mounts(obj: dict, container: dict) -> dict[str, tuple[str, bool, bool]]:
    """{claim name: (mount path, volumeMount readOnly, volume readOnly)}"""
    volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        # volumeClaimTemplates (StatefulSets) are not in the pod's volumes: their own claims.
        claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim")
        if claim:
            mounts[claim["claimName"]] = (
                mount["mountPath"],
                mount.get("readOnly", False),
                claim.get("readOnly", False),
            )
    return mounts


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_workers_and_gateway_mount_models_and_gallery_read_only(values_file: Path | None) -> None:
    objects = render(*values_args(values_file))
    configmap = one(objects, "ConfigMap", "classifier")["data"]
    workers = [o["metadata"]["name"] for o in find(objects, "Deployment") if "-worker-" in o["metadata"]["name"]]
    assert workers
    for name in (*workers, "classifier-gateway"):
        deployment = one(objects, "Deployment", name)
        for _, container in containers(deployment):
            mounts = claim_mounts(deployment, container)
            # store.type sqlite: the jobs' file is the one claim they write (tests/k8s/test_store_option.py).
            mounts.pop("classifier-store", None)
            assert len(mounts) == 2, f"{name}/{container['name']}"
            assert {path for path, _, _ in mounts.values()} == {
                configmap["CLASSIFIER_MODELS_DIR"],
                configmap["CLASSIFIER_GALLERY_DIR"],
            }
            assert all(ro_mount and ro_volume for _, ro_mount, ro_volume in mounts.values()), mounts
    results = one(objects, "Deployment", "classifier-results")
    results_mounts = claim_mounts(results, main_container(objects, "Deployment", "classifier-results"))
    results_mounts.pop("classifier-store", None)
    assert results_mounts == {}


def test_only_the_seed_job_writes_the_data_volumes() -> None:
    objects = render()
    seed = one(objects, "Job", "classifier-seed-1")
    mounts = claim_mounts(seed, seed["spec"]["template"]["spec"]["containers"][0])
    assert {claim: ro for claim, (_, ro, _) in mounts.items()} == {
        "classifier-models": False,
        "classifier-gallery": False,
    }
    writers = []
    for obj in objects:
        for _, container in containers(obj):
            if any(not ro for _, ro, _ in claim_mounts(obj, container).values()):
                writers.append(name_of(obj))
    assert writers == ["Job/classifier-seed-1"]


def test_hostpath_volumes_are_pre_bound_to_their_claims() -> None:
    objects = render()
    claims = {c["metadata"]["name"]: c for c in find(objects, "PersistentVolumeClaim")}
    assert set(claims) == {"classifier-models", "classifier-gallery"}
    for volume in find(objects, "PersistentVolume"):
        claim = claims[volume["spec"]["claimRef"]["name"]]
        assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
        assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == ""
        assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadOnlyMany"]
        assert volume["spec"]["hostPath"]["path"].startswith("/var/local/classifier/")
    dynamic = render("--values", str(CHART / "ci" / "dynamic-storage-values.yaml"))
    assert find(dynamic, "PersistentVolume") == []
    for claim in find(dynamic, "PersistentVolumeClaim"):
        assert claim["spec"]["storageClassName"] == "nfs-client"
        assert "volumeName" not in claim["spec"]
    existing = render("--values", str(CHART / "ci" / "production-values.yaml"))
    assert find(existing, "PersistentVolumeClaim") == [] and find(existing, "PersistentVolume") == []
    worker = one(existing, "Deployment", "classifier-worker-default")
    assert set(claim_mounts(worker, worker["spec"]["template"]["spec"]["containers"][0])) == {
        "classifier-models-nfs",
        "classifier-gallery-nfs",
    }


# -- credentials -------------------------------------------------------------------------------

URL_WITH_LITERAL_CREDENTIALS = re.compile(r"://(?!\$\()[^/@\s]*:(?!\$\()[^/@\s]*@")


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_credentials_only_come_from_secrets(values_file: Path | None) -> None:
    objects = render(*values_args(values_file))
    for configmap in find(objects, "ConfigMap"):
        for key, value in configmap["data"].items():
            assert not re.search("pass|secret|token", key, re.IGNORECASE), key
            assert not URL_WITH_LITERAL_CREDENTIALS.search(value), key
    for obj in objects:
        for _, container in containers(obj):
            for name, entry in env_of(container).items():
                if re.search("PASS|USER|API_KEYS|SECRET|TOKEN", name):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name_of(obj)} {name}"
                value = entry.get("value", "")
                assert not URL_WITH_LITERAL_CREDENTIALS.search(value), f"{name_of(obj)} {name}={value}"
                # $(VAR) references must name variables defined earlier in the list (else no expansion).
                earlier = [e["name"] for e in container["env"][: container["env"].index(entry)]]
                for reference in re.findall(r"\$\(([A-Z0-9_]+)\)", value):
                    assert reference in earlier, f"{name_of(obj)} {name} uses $({reference}) before it is set"


def test_the_url_pattern_would_catch_a_literal_password() -> None:
    assert URL_WITH_LITERAL_CREDENTIALS.search("amqp://user:hunter2@rabbit:5672/")
    assert not URL_WITH_LITERAL_CREDENTIALS.search("amqp://$(U):$(P)@rabbit:5672/%2F")


# -- labels and selectors ----------------------------------------------------------------------


def selectors(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    found = []
    if obj["kind"] in ("Deployment", "StatefulSet", "PodDisruptionBudget"):
        found.append(spec["selector"].get("matchLabels", {}))
    if obj["kind"] == "Service":
        found.append(spec.get("selector", {}))
    if obj["kind"] == "NetworkPolicy":
        found.append(spec["podSelector"].get("matchLabels", {}))
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                found.append(peer.get("podSelector", {}).get("matchLabels", {}))
    return found


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_selectors_never_carry_versions(values_file: Path | None) -> None:
    for obj in render(*values_args(values_file)):
        for selector in selectors(obj):
            assert "helm.sh/chart" not in selector, name_of(obj)
            assert "app.kubernetes.io/version" not in selector, name_of(obj)
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "classifier", name_of(obj)
        assert labels.get("app.kubernetes.io/instance") == "classifier", name_of(obj)


def test_every_selector_matches_its_pods() -> None:
    objects = render()
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name_of(workload)
    for service in find(objects, "Service"):
        selector = service["spec"]["selector"].items()
        matched = [w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, name_of(service)
        container_ports = {p["name"] for _, c in containers(matched[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, f"{name_of(service)} {port}"


def test_network_policies_admit_only_our_services_to_rabbitmq_and_mongodb() -> None:
    objects = render()
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    for name, port in (("classifier-rabbitmq", "amqp"), ("classifier-mongodb", "mongodb")):
        policy = one(objects, "NetworkPolicy", name)
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods[name].items()
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (peer,) = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == port)["from"]
        admitted = set()
        for pod, labels in pods.items():
            selector = peer["podSelector"]
            if selector["matchLabels"].items() <= labels.items() and all(
                labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"]
            ):
                admitted.add(pod)
        assert admitted == set(OUR_DEPLOYMENTS), name
    assert find(render("--values", str(CHART / "ci" / "networkpolicy-off-values.yaml")), "NetworkPolicy") == []


# -- configuration -----------------------------------------------------------------------------


def test_configmap_sets_only_settings_the_services_know() -> None:
    known = {f"CLASSIFIER_{field.upper()}" for field in Settings.model_fields}
    for scenario_id, objects in all_scenarios():
        keys = set(one(objects, "ConfigMap", "classifier")["data"])
        assert keys <= known, f"{scenario_id}: unknown settings {sorted(keys - known)}"
        for name in [o["metadata"]["name"] for o in find(objects, "Deployment")]:
            env = env_of(main_container(objects, "Deployment", name))
            settings = {n for n in env if n.startswith("CLASSIFIER_") and not re.search("USERNAME|PASSWORD", n)}
            assert settings <= known, f"{scenario_id} {name}: {sorted(settings - known)}"


def test_the_rendered_configmap_parses_into_settings() -> None:
    objects = render("--values", str(CHART / "ci" / "minimal-values.yaml"))
    data = one(objects, "ConfigMap", "classifier")["data"]
    worker_env = env_of(main_container(objects, "Deployment", "classifier-worker-default"))
    # The pool's own settings, which its Deployment sets (credentials and URLs aside).
    data |= {name: entry["value"] for name, entry in worker_env.items() if "value" in entry and "_URL" not in name}
    settings = Settings(**{key.removeprefix("CLASSIFIER_").lower(): value for key, value in data.items()})
    assert settings.host == "0.0.0.0"
    assert settings.pools == {"default": ["efficientnet_lite0"]}
    assert settings.pool_models(settings.pool) == ["efficientnet_lite0"]
    assert settings.cors_origins == []
    assert settings.torch_threads == 1


def test_a_config_change_rolls_the_pods() -> None:
    before = render()
    after = render("--set", "config.logLevel=DEBUG")
    for name in OUR_DEPLOYMENTS:
        annotation = "checksum/config"
        old = one(before, "Deployment", name)["spec"]["template"]["metadata"]["annotations"][annotation]
        new = one(after, "Deployment", name)["spec"]["template"]["metadata"]["annotations"][annotation]
        assert old != new, name


def test_generated_broker_and_store_secrets_outlive_an_uninstall() -> None:
    """The RabbitMQ and MongoDB data stay on their PersistentVolumeClaims after `helm uninstall`
    (StatefulSet claims are never deleted with the release), with users made from the generated
    passwords. A new install with new random passwords would be locked out, so the Secrets stay
    too (resource-policy keep) and the next install keeps their passwords (lookup)."""
    objects = render()
    for name in ("classifier-rabbitmq", "classifier-mongodb"):
        secret = one(objects, "Secret", name)
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        template = (CHART / "templates" / name.removeprefix("classifier-") / "secret.yaml").read_text()
        assert '(lookup "v1" "Secret" .Release.Namespace $name)' in template
        statefulset = one(objects, "StatefulSet", name)
        assert statefulset["spec"]["volumeClaimTemplates"], name


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def test_rabbitmq_is_a_4x_image_with_a_quorum_queue_wal_sized_for_its_pod() -> None:
    objects = render()
    (container,) = one(objects, "StatefulSet", "classifier-rabbitmq")["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"rabbitmq:4\.\d+\.\d+-management", container["image"])
    conf = one(objects, "ConfigMap", "classifier-rabbitmq")["data"]["90-classifier.conf"]
    wal = int(re.search(r"^raft\.wal_max_size_bytes = (\d+)$", conf, re.MULTILINE).group(1))
    # RabbitMQ advises 3-4x the WAL size of memory for the node; its 512 MiB default would not fit.
    assert 4 * wal <= memory_bytes(container["resources"]["limits"]["memory"]) // 2
    # The per-queue metrics the autoscaling reads come from rabbitmq_prometheus.
    assert "rabbitmq_prometheus" in one(objects, "ConfigMap", "classifier-rabbitmq")["data"]["enabled_plugins"]
