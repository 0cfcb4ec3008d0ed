"""The chart as a whole: lint, every scenario renders and validates, the schema catches mistakes,
credentials are generated or referenced (never in values), RabbitMQ/MongoDB can be external."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest

from tests.k8s.chart import (
    CHART,
    CI_VALUES,
    RenderError,
    chart_values,
    containers,
    env_of,
    find,
    kind_node_version,
    one,
    render,
    render_text,
    run_helm,
    validate,
    validate_all,
    values_args,
)

SCENARIOS = [None, *CI_VALUES]
SCENARIO_IDS = ["default", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_helm_lint_strict_passes(values_file: Path | None) -> None:
    result = run_helm("lint", "--strict", str(CHART), *values_args(values_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_every_rendered_object_validates_for_kubernetes_1_33(values_file: Path | None) -> None:
    objects = render(*values_args(values_file))  # test hooks included
    assert len(objects) > 10
    validate_all(objects)


def test_every_scenario_validates_for_the_kubernetes_of_kinds_node_too() -> None:
    objects = [obj for values_file in SCENARIOS for obj in render(*values_args(values_file))]
    validate_all(objects, kind_node_version())


def test_there_are_ci_scenarios_for_the_main_switches() -> None:
    names = {path.name for path in CI_VALUES}
    assert {
        "external-services-values.yaml",
        "gpu-values.yaml",
        "minimal-values.yaml",
        "networkpolicy-off-values.yaml",
    } <= names


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validation above would catch a typo in a rendered object (it is not a no-op)."""
    deployment = copy.deepcopy(one(render(), "Deployment", "classifier-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(AssertionError, match="livenesProbe"):
        validate(deployment)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("gatewy.replicas=1", "gatewy"),
        ("worker.resource.limits.cpu=1", "resource"),
        ("frontDoor.rateLimits.rps=5", "rateLimits"),
        ("frontDoor.api=both", "api"),
        ("image.tag=latest", "tag"),
        ("rabbitmq.image.tag=latest", "tag"),
        ("config.logFormat=xml", "logFormat"),
        ("storage.accessModes={ReadOnlyMny}", "accessModes"),
    ],
)
def test_values_schema_rejects_typos_and_latest(setting: str, complaint: str) -> None:
    with pytest.raises(RenderError, match=complaint):
        render_text("--set", setting)


def test_generated_passwords_are_random_and_not_from_values() -> None:
    values_text = (CHART / "values.yaml").read_text()
    first, second = render(), render("--set", "nameOverride=")  # two separate helm runs
    for name, username in (("classifier-rabbitmq", "classifier"), ("classifier-mongodb", "classifier")):
        secret_a, secret_b = one(first, "Secret", name), one(second, "Secret", name)
        assert "stringData" not in secret_a
        assert base64.b64decode(secret_a["data"]["username"]).decode() == username
        password_a = base64.b64decode(secret_a["data"]["password"]).decode()
        password_b = base64.b64decode(secret_b["data"]["password"]).decode()
        assert len(password_a) == 32 and password_a.isalnum()
        assert password_a != password_b
        assert password_a not in values_text


def test_existing_secrets_replace_generated_ones() -> None:
    objects = render("--values", str(CHART / "ci" / "production-values.yaml"))
    assert find(objects, "Secret") == []
    rabbitmq = one(objects, "StatefulSet", "classifier-rabbitmq")
    (_, broker), *_ = containers(rabbitmq, include_init=False)
    assert env_of(broker)["RABBITMQ_DEFAULT_PASS"]["valueFrom"]["secretKeyRef"]["name"] == (
        "classifier-rabbitmq-credentials"
    )
    gateway = one(objects, "Deployment", "classifier-gateway")
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
    assert env["CLASSIFIER_STORE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "classifier-mongodb-credentials"
    assert env["CLASSIFIER_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "classifier-api-keys",
        "key": "api-keys",
    }


def test_external_services_remove_the_statefulsets_and_use_external_urls() -> None:
    objects = render("--values", str(CHART / "ci" / "external-services-values.yaml"))
    assert find(objects, "StatefulSet") == []
    assert find(objects, "Secret") == []
    assert find(objects, "NetworkPolicy") == []  # nothing of ours left to protect
    service_names = {o["metadata"]["name"] for o in find(objects, "Service")}
    assert service_names == {"classifier-gateway", "classifier-results"}
    for workload in ("classifier-gateway", "classifier-results", "classifier-worker-default"):
        deployment = one(objects, "Deployment", workload)
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["CLASSIFIER_BROKER_URL"]["value"] == (
            "amqps://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)"
            "@rabbitmq.messaging.svc.cluster.local:5671/classifier"
        )
        assert env["CLASSIFIER_BROKER_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "classifier-broker-credentials",
            "key": "pass",
        }
        assert env["CLASSIFIER_STORE_URL"]["value"] == (
            "mongodb://$(CLASSIFIER_STORE_USERNAME):$(CLASSIFIER_STORE_PASSWORD)"
            "@mongo.example.internal:27017/jobs?authSource=admin&tls=true&replicaSet=rs0"
        )
        assert env["CLASSIFIER_STORE_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "classifier-store-credentials"


def test_bundled_services_are_what_the_default_urls_point_at() -> None:
    objects = render()
    for name, port in (("classifier-rabbitmq", 5672), ("classifier-mongodb", 27017)):
        one(objects, "StatefulSet", name)
        service = one(objects, "Service", name)
        assert port in {p["port"] for p in service["spec"]["ports"]}
    env = env_of(one(objects, "Deployment", "classifier-worker-default")["spec"]["template"]["spec"]["containers"][0])
    assert "@classifier-rabbitmq:5672/" in env["CLASSIFIER_BROKER_URL"]["value"]
    assert "@classifier-mongodb:27017/classifier?" in env["CLASSIFIER_STORE_URL"]["value"]


def test_the_operator_view_reads_unacknowledged_counts_from_the_management_api() -> None:
    # GET /v1/stats's unacked count comes from RabbitMQ's management API (AMQP does not give it).
    objects = render()
    service = one(objects, "Service", "classifier-rabbitmq")
    assert {"name": "management", "port": 15672} in [
        {k: p[k] for k in ("name", "port")} for p in service["spec"]["ports"]
    ]
    env = env_of(one(objects, "Deployment", "classifier-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert env["CLASSIFIER_RABBITMQ_MANAGEMENT_URL"]["value"] == (
        "http://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@classifier-rabbitmq:15672"
    )
    # Kubernetes expands $(VAR) only from variables defined before it.
    names = list(env)
    assert names.index("CLASSIFIER_BROKER_PASSWORD") < names.index("CLASSIFIER_RABBITMQ_MANAGEMENT_URL")
    policy = one(objects, "NetworkPolicy", "classifier-rabbitmq")
    admitted_ports = {
        p["port"] for rule in policy["spec"]["ingress"] if "podSelector" in rule["from"][0] for p in rule["ports"]
    }
    assert {"amqp", "management"} <= admitted_ports
    # An external broker: only where its management port is given.
    external = ["--values", str(CHART / "ci" / "external-services-values.yaml")]
    for extra, expected in (
        ([], None),
        (
            ["--set", "externalRabbitmq.managementPort=15671"],
            "https://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@rabbitmq.messaging.svc.cluster.local:15671",
        ),
    ):
        gateway = one(render(*external, *extra), "Deployment", "classifier-gateway")
        env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
        assert env.get("CLASSIFIER_RABBITMQ_MANAGEMENT_URL", {}).get("value") == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["rabbitmq.enabled=false", "externalRabbitmq.existingSecret=s"], "externalRabbitmq.host is required"),
        (["rabbitmq.enabled=false", "externalRabbitmq.host=h"], "externalRabbitmq.existingSecret is required"),
        (["mongodb.enabled=false", "externalMongodb.existingSecret=s"], "externalMongodb.host is required"),
        (["worker.terminationGracePeriodSeconds=30"], "terminationGracePeriodSeconds must exceed"),
        (
            ["worker.maxBatch=8"],
            r"workerPools\[default\]: config.prefetch \(4\) must be at least workerThreads x maxBatch",
        ),
        (["worker.workerThreads=2"], r"workerPools\[default\]: config.prefetch \(4\) must be .* \(2 x 4 = 8\)"),
    ],
)
def test_inconsistent_values_fail_with_a_clear_message(settings: list[str], message: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    with pytest.raises(RenderError, match=message):
        render_text(*args)


def test_every_default_value_key_is_in_the_schema() -> None:
    """values.yaml itself passes the strict schema: lint would fail otherwise, but say which key."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = [key for key in chart_values() if key not in schema["properties"]]
    assert missing == []


def test_notes_tell_where_the_ui_api_and_docs_are() -> None:
    if run_helm("version", "--short").stdout.startswith("v3."):
        pytest.skip("helm 3 cannot render NOTES.txt without a cluster (install --dry-run needs one)")
    result = run_helm("install", "classifier", str(CHART), "--namespace", "classifier", "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for text in ("http://localhost/", "http://localhost/docs", "/v1/jobs", "helm test classifier"):
        assert text in notes
