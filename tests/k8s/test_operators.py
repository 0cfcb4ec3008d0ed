"""The operator-backed modes (ci/operators-values.yaml): a RabbitmqCluster and a MongoDBCommunity
replica set instead of the hand-written StatefulSets, our services pointed at them with the
settings replication needs, every custom resource valid against its operator's CRD; and the
managed-service path for a replica set (externalMongodb.hosts)."""

from __future__ import annotations

import base64
import copy
import re

import pytest
import yaml
from pymongo.uri_parser import parse_uri

from classifier_common.store.mongo import MongoJobStore
from tests.k8s.chart import (
    CHART,
    RenderError,
    containers,
    env_of,
    find,
    one,
    render,
    render_text,
    run_helm,
    validate,
)

OPERATORS = ("--values", str(CHART / "ci" / "operators-values.yaml"))
MANAGED = ("--values", str(CHART / "ci" / "managed-replicaset-values.yaml"))
SERVICES = ("classifier-gateway", "classifier-results", "classifier-worker-default")


def service_env(objects: list[dict], deployment: str) -> dict[str, dict]:
    (container,) = [c for role, c in containers(one(objects, "Deployment", deployment)) if role == "main"]
    return env_of(container)


def resolved(url: str) -> str:
    """The URL as Kubernetes expands it, with stand-in credentials for the $(VAR) references."""
    return url.replace("$(CLASSIFIER_STORE_USERNAME)", "user").replace("$(CLASSIFIER_STORE_PASSWORD)", "secret")


def test_operator_mode_replaces_the_statefulsets_with_custom_resources() -> None:
    objects = render(*OPERATORS)
    assert find(objects, "StatefulSet") == []
    assert not [o for o in objects if o["kind"] == "Service" and "rabbitmq" in o["metadata"]["name"]]
    assert not [o for o in objects if o["kind"] == "Service" and "mongodb" in o["metadata"]["name"]]
    one(objects, "RabbitmqCluster", "classifier-rabbitmq")
    one(objects, "MongoDBCommunity", "classifier-mongodb")
    # The default (kind) mode is unchanged: StatefulSets, no custom resources.
    default = render()
    assert {o["metadata"]["name"] for o in find(default, "StatefulSet")} == {
        "classifier-rabbitmq",
        "classifier-mongodb",
    }
    assert find(default, "RabbitmqCluster") == find(default, "MongoDBCommunity") == []


def test_rabbitmq_cluster_has_three_nodes_and_quorum_queues_on_every_node() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cluster = one(render(*OPERATORS), "RabbitmqCluster", "classifier-rabbitmq")["spec"]
    assert cluster["replicas"] == 3
    assert cluster["image"] == f"{values['rabbitmq']['image']['repository']}:{values['rabbitmq']['image']['tag']}"
    # A quorum queue confirms a publish once a majority of its members wrote it: members on all
    # three nodes, leaders spread.
    assert cluster["rabbitmq"]["advancedConfig"].strip() == "[{rabbit, [{quorum_cluster_size, 3}]}]."
    assert "queue_leader_locator = balanced" in cluster["rabbitmq"]["additionalConfig"]
    # The quorum-queue settings RabbitMQ 4 would otherwise default, as for the StatefulSet.
    settings = cluster["rabbitmq"]["additionalConfig"].splitlines()
    assert f"raft.wal_max_size_bytes = {values['rabbitmqCluster']['walMaxSizeBytes']}" in settings
    assert "consumer_timeout = 1800000" in settings
    term = cluster["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    five = one(render(*OPERATORS, "--set", "rabbitmqCluster.replicas=5"), "RabbitmqCluster", "classifier-rabbitmq")
    assert "{quorum_cluster_size, 5}" in five["spec"]["rabbitmq"]["advancedConfig"]


def test_services_use_the_operators_default_user_and_service() -> None:
    objects = render(*OPERATORS)
    for deployment in SERVICES:
        env = service_env(objects, deployment)
        for variable, key in (("CLASSIFIER_BROKER_USERNAME", "username"), ("CLASSIFIER_BROKER_PASSWORD", "password")):
            ref = env[variable]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "classifier-rabbitmq-default-user", "key": key}
        url = env["CLASSIFIER_BROKER_URL"]["value"]
        assert url.startswith(
            "amqp://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@classifier-rabbitmq:5672/"
        )
        assert env["CLASSIFIER_RABBITMQ_MANAGEMENT_URL"]["value"] == (
            "http://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@classifier-rabbitmq:15672"
        )


def test_services_reach_every_replica_set_member_and_the_store_writes_to_a_majority() -> None:
    objects = render(*OPERATORS)
    mongo = one(objects, "MongoDBCommunity", "classifier-mongodb")["spec"]
    assert (mongo["type"], mongo["members"]) == ("ReplicaSet", 3)
    for deployment in SERVICES:
        url = resolved(service_env(objects, deployment)["CLASSIFIER_STORE_URL"]["value"])
        parsed = parse_uri(url)
        assert parsed["nodelist"] == [
            (f"classifier-mongodb-{i}.classifier-mongodb-svc.classifier.svc.cluster.local", 27017) for i in range(3)
        ]
        assert parsed["options"]["replicaSet"] == "classifier-mongodb"
        assert parsed["options"]["authSource"] == "admin"
        assert parsed["database"] == "classifier"
    # The store built from that URL (the services' own code) writes with w=majority and retries.
    store = MongoJobStore(url)
    try:
        assert store._client.options.write_concern.document["w"] == "majority"
        assert store._client.options.retry_writes is True
        assert store.database.name == "classifier"
    finally:
        store.close()


def test_the_mongodb_user_and_our_services_share_one_generated_secret() -> None:
    objects = render(*OPERATORS)
    mongo = one(objects, "MongoDBCommunity", "classifier-mongodb")["spec"]
    (user,) = mongo["users"]
    assert user["roles"] == [{"name": "readWrite", "db": "classifier"}]
    secret = one(objects, "Secret", user["passwordSecretRef"]["name"])
    assert user["passwordSecretRef"]["key"] in secret["data"]
    env = service_env(objects, "classifier-worker-default")
    assert env["CLASSIFIER_STORE_PASSWORD"]["valueFrom"]["secretKeyRef"] == user["passwordSecretRef"]
    username_ref = env["CLASSIFIER_STORE_USERNAME"]["valueFrom"]["secretKeyRef"]
    assert username_ref["name"] == secret["metadata"]["name"]
    assert base64.b64decode(secret["data"][username_ref["key"]]).decode() == user["name"]
    # MongoDB's version follows the image pin unless set.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert mongo["version"] == str(values["mongodb"]["image"]["tag"])


def test_network_policies_select_the_operators_pods() -> None:
    objects = render(*OPERATORS)
    rabbit = one(objects, "NetworkPolicy", "classifier-rabbitmq")["spec"]
    assert rabbit["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "classifier-rabbitmq"}}
    mongo = one(objects, "NetworkPolicy", "classifier-mongodb")["spec"]
    assert mongo["podSelector"] == {"matchLabels": {"app": "classifier-mongodb-svc"}}
    # RabbitMQ: AMQP, and the management API the operator view reads.
    for policy, ports in ((rabbit, [5672, 15672]), (mongo, [27017])):
        wanted = [{"port": port, "protocol": "TCP"} for port in ports]
        from_services = [rule for rule in policy["ingress"] if rule.get("ports") == wanted]
        assert len(from_services) == 1
        components = from_services[0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert components == ["gateway", "results", "worker"]
        # The members reach each other (replication, clustering).
        assert {"from": [{"podSelector": policy["podSelector"]}]} in policy["ingress"]


def test_monitoring_scrapes_the_operator_managed_rabbitmq() -> None:
    objects = render(*OPERATORS, "--set", "monitoring.enabled=true")
    monitor = one(objects, "PodMonitor", "classifier-rabbitmq")
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "classifier-rabbitmq"}}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["rabbitmqCluster.enabled=true"], "rabbitmqCluster.enabled needs rabbitmq.enabled=false"),
        (["mongodbCommunity.enabled=true"], "mongodbCommunity.enabled needs mongodb.enabled=false"),
        (["rabbitmqCluster.replica=3"], "replica"),
        (["mongodbCommunity.version=latest"], "version"),
    ],
)
def test_mistakes_in_operator_values_fail_with_a_clear_message(settings: list[str], message: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    with pytest.raises(RenderError, match=re.escape(message)):
        render_text(*args)


def test_a_managed_replica_set_url_lists_every_member() -> None:
    objects = render(*MANAGED)
    assert find(objects, "StatefulSet") == []
    url = resolved(service_env(objects, "classifier-gateway")["CLASSIFIER_STORE_URL"]["value"])
    parsed = parse_uri(url)
    assert [host for host, _ in parsed["nodelist"]] == [
        "mongo-0.example.internal",
        "mongo-1.example.internal",
        "mongo-2.example.internal",
    ]
    assert parsed["options"]["replicaSet"] == "rs0"
    assert parsed["options"]["tls"] is True


# -- custom resources against their operators' CRDs ----------------------------------------------


@pytest.mark.parametrize("kind", ["RabbitmqCluster", "MongoDBCommunity"])
def test_custom_resources_validate_against_the_operators_crds(kind: str) -> None:
    """Against the operator's own CRD (tools/upstream-schemas, SHA-256 pinned): no network needed."""
    for settings in (
        (),
        (
            "--set",
            "rabbitmqCluster.additionalConfig=x = 1",
            "--set",
            "rabbitmqCluster.persistence.storageClassName=fast",
        ),
    ):
        (obj,) = find(render(*OPERATORS, *settings), kind)
        assert validate(obj) == "crd"


@pytest.mark.parametrize("kind", ["RabbitmqCluster", "MongoDBCommunity"])
def test_the_crd_validation_rejects_a_misspelt_field(kind: str) -> None:
    (obj,) = find(render(*OPERATORS), kind)
    broken = copy.deepcopy(obj)
    broken["spec"]["replica"] = 3
    with pytest.raises(AssertionError, match="replica"):
        validate(broken)


def test_notes_say_where_the_operator_managed_parts_are() -> None:
    if run_helm("version", "--short").stdout.startswith("v3."):
        pytest.skip("helm 3 cannot render NOTES.txt without a cluster (install --dry-run needs one)")
    result = run_helm("install", "classifier", str(CHART), "--namespace", "classifier", "--dry-run=client", *OPERATORS)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "get secret classifier-rabbitmq-default-user" in notes
    assert "get mongodbcommunity classifier-mongodb" in notes
