"""scripts/pod_flags.py: the chart's rendered pods as `podman run` flags (`make container-e2e`
runs them), checked over the real render."""

from __future__ import annotations

import pytest

from scripts.pod_flags import Render, cpus, expand, load, quantity_bytes
from tests.k8s.chart import CHART, render_text

VALUES = (
    "--values",
    str(CHART / "ci" / "sqlite-store-values.yaml"),
    "--set",
    "rabbitmq.enabled=false",
    "--set",
    "externalRabbitmq.host=127.0.0.1",
    "--set",
    "externalRabbitmq.existingSecret=broker",
)
BROKER = {"kind": "Secret", "metadata": {"name": "broker"}, "stringData": {"username": "u", "password": "p@ss"}}
CLAIMS = {"classifier-models": "/h/models", "classifier-gallery": "/h/gallery", "classifier-store": "/h/store"}


def chart() -> Render:
    return Render(load(render_text(*VALUES)), extra=[BROKER])


def pairs(flags: list[str], option: str) -> list[str]:
    return [flags[i + 1] for i, flag in enumerate(flags) if flag == option]


def test_expand_follows_kubernetes() -> None:
    env = {"A": "1", "B": "x y"}
    assert expand("$(A)-$(B)", env) == "1-x y"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $$5", env) == "cost $5"


def test_quantities() -> None:
    assert quantity_bytes("512Mi") == 512 * 2**20
    assert quantity_bytes("3Gi") == 3 * 2**30
    assert quantity_bytes("1G") == 10**9
    assert cpus("500m") == "0.5" and cpus("1") == "1" and cpus(2) == "2"


def test_the_worker_runs_hardened_with_its_limits_and_volumes() -> None:
    init, worker = chart().containers("Deployment", "classifier-worker-default", CLAIMS)
    assert init.init and init.name == "wait-for-seed" and not worker.init
    flags = worker.flags
    assert pairs(flags, "--user") == ["10001:10001"]
    assert pairs(flags, "--group-add") == ["10001"]  # fsGroup
    assert "--read-only" in flags and "--read-only-tmpfs=false" in flags
    assert pairs(flags, "--cap-drop") == ["ALL"]
    assert pairs(flags, "--security-opt") == ["no-new-privileges"]
    assert pairs(flags, "--cpus") == ["1"]
    assert pairs(flags, "--memory") == [f"{3 * 2**30}b"]
    assert pairs(flags, "--tmpfs") == [f"/tmp:rw,mode=1777,U,size={512 * 2**20}"]
    assert sorted(pairs(flags, "--volume")) == [
        "/h/gallery:/var/lib/classifier/gallery:ro",
        "/h/models:/var/lib/classifier/models:ro",
        "/h/store:/var/lib/classifier/store:rw",
    ]
    assert worker.readiness_path == "/readyz"
    assert worker.termination_grace_s == 60


def test_environment_resolves_secrets_config_maps_and_var_references() -> None:
    (_, worker) = chart().containers("Deployment", "classifier-worker-default", CLAIMS)
    env = worker.env
    assert env["CLASSIFIER_BROKER_URL"] == "amqp://u:p@ss@127.0.0.1:5672/%2F"
    assert env["CLASSIFIER_STORE_URL"] == "sqlite:////var/lib/classifier/store/jobs.db"
    assert env["CLASSIFIER_QUEUE_NAME"] == "classifier.jobs"  # from the ConfigMap (envFrom)
    assert env["CLASSIFIER_PORT"] == "9100"  # env wins over envFrom
    assert f"CLASSIFIER_PORT={env['CLASSIFIER_PORT']}" in pairs(worker.flags, "--env")


def test_env_wins_over_env_from() -> None:
    objects = load(
        render_text(
            *VALUES, "--set", "worker.extraEnv[0].name=CLASSIFIER_QUEUE_NAME", "--set", "worker.extraEnv[0].value=mine"
        )
    )
    (_, worker) = Render(objects, extra=[BROKER]).containers("Deployment", "classifier-worker-default", CLAIMS)
    assert worker.env["CLASSIFIER_QUEUE_NAME"] == "mine"


def test_the_seed_job_gets_its_command_and_writes_both_volumes() -> None:
    objects = load(render_text(*VALUES))
    job = next(o["metadata"]["name"] for o in objects if o["kind"] == "Job")
    (seed,) = Render(objects, extra=[BROKER]).containers("Job", job, CLAIMS)
    assert pairs(seed.flags, "--entrypoint") == ["python"]
    assert seed.args[:2] == ["-m", "classifier_worker.seed"]
    assert "--gallery-source=/app/gallery" in seed.args
    assert sorted(pairs(seed.flags, "--volume")) == [
        "/h/gallery:/var/lib/classifier/gallery:rw",
        "/h/models:/var/lib/classifier/models:rw",
    ]
    command = seed.run_command("podman", "x")
    assert command[command.index(seed.image) + 1 :] == seed.args


def test_a_missing_secret_is_an_error_not_an_empty_value() -> None:
    with pytest.raises(KeyError, match="broker"):
        Render(load(render_text(*VALUES))).containers("Deployment", "classifier-worker-default", CLAIMS)


def test_a_root_user_is_refused_like_the_kubelet_would() -> None:
    objects = load(render_text(*VALUES, "--set", "podSecurityContext.runAsUser=0"))
    with pytest.raises(ValueError, match="runAsNonRoot"):
        Render(objects, extra=[BROKER]).containers("Deployment", "classifier-gateway", CLAIMS)


def test_docker_gets_no_podman_only_flags() -> None:
    objects = load(render_text(*VALUES))
    (_, worker) = Render(objects, extra=[BROKER], engine="docker").containers(
        "Deployment", "classifier-worker-default", CLAIMS
    )
    assert "--read-only" in worker.flags and "--read-only-tmpfs=false" not in worker.flags
    assert pairs(worker.flags, "--tmpfs") == [f"/tmp:rw,mode=1777,size={512 * 2**20}"]
