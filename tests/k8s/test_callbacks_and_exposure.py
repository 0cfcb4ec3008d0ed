"""Callbacks and how keys reach the pods, on the objects the real helm renders: the callback
secret only through a Secret and only when callbacks are on, the results pods' egress policy,
the `helm test` pod's API-key header. (What the front door exposes: test_front_door.py.)"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from classifier_common.config import Settings
from tests.k8s.chart import (
    CHART,
    CI_VALUES,
    containers,
    env_of,
    find,
    name_of,
    one,
    render,
    run_helm,
    validate_all,
)

CALLBACKS = ("--values", str(CHART / "ci" / "callbacks-values.yaml"))
PRODUCTION = ("--values", str(CHART / "ci" / "production-values.yaml"))
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def pod_labels(objects: list[dict], kind: str, name: str) -> dict[str, str]:
    return one(objects, kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


# -- callbacks: the secret -----------------------------------------------------------------------


def callback_secret_refs(objects: list[dict]) -> dict[str, dict]:
    """Object name -> the secretKeyRef of CLASSIFIER_CALLBACK_SECRET, for every container that has it."""
    refs = {}
    for obj in objects:
        for _, container in containers(obj):
            entry = env_of(container).get("CLASSIFIER_CALLBACK_SECRET")
            if entry is not None:
                assert "value" not in entry, name_of(obj)
                refs[name_of(obj)] = entry["valueFrom"]["secretKeyRef"]
    return refs


def test_callbacks_are_off_by_default_and_leave_no_trace() -> None:
    objects = render()
    assert callback_secret_refs(objects) == {}
    assert not any("callbacks" in o["metadata"]["name"] for o in find(objects, "Secret"))
    assert not any(k.startswith("CLASSIFIER_CALLBACK") for k in one(objects, "ConfigMap", "classifier")["data"])
    # Today's policies only guard RabbitMQ's and MongoDB's ingress: nothing restricts egress.
    assert {p["metadata"]["name"] for p in find(objects, "NetworkPolicy")} == {
        "classifier-rabbitmq",
        "classifier-mongodb",
    }
    assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in find(objects, "NetworkPolicy"))


def test_enabled_callbacks_give_gateway_and_results_a_generated_secret() -> None:
    objects = render(*CALLBACKS)
    ref = {"name": "classifier-callbacks", "key": "callback-secret"}
    assert callback_secret_refs(objects) == {
        "Deployment/classifier-gateway": ref,
        "Deployment/classifier-results": ref,
    }
    secret = one(objects, "Secret", "classifier-callbacks")
    assert list(secret["data"]) == ["callback-secret"] and "stringData" not in secret
    value = base64.b64decode(secret["data"]["callback-secret"]).decode()
    assert len(value) == 64 and value.isalnum()
    again = one(render(*CALLBACKS, "--set", "nameOverride="), "Secret", "classifier-callbacks")  # another helm run
    other = base64.b64decode(again["data"]["callback-secret"]).decode()
    assert other != value  # random per first install, never a value
    assert value not in (CHART / "values.yaml").read_text() + (CHART / "ci" / "callbacks-values.yaml").read_text()


def test_callback_settings_reach_the_services_through_the_configmap() -> None:
    data = one(render(*CALLBACKS, "--set", "callbacks.allowPrivate=true"), "ConfigMap", "classifier")["data"]
    assert data["CLASSIFIER_CALLBACK_ALLOW_PRIVATE"] == "true"
    assert data["CLASSIFIER_CALLBACK_MAX_ATTEMPTS"] == "8"
    settings = Settings(**{key.removeprefix("CLASSIFIER_").lower(): value for key, value in data.items()})
    assert settings.callback_allow_private is True
    assert settings.callback_max_attempts == 8


def test_an_existing_callback_secret_replaces_the_generated_one() -> None:
    objects = render(*CALLBACKS, "--set", "callbacks.existingSecret=hooks", "--set", "callbacks.key=hmac")
    assert not any("callbacks" in o["metadata"]["name"] for o in find(objects, "Secret"))
    ref = {"name": "hooks", "key": "hmac"}
    assert callback_secret_refs(objects) == {
        "Deployment/classifier-gateway": ref,
        "Deployment/classifier-results": ref,
    }


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("callbacks.secret=abc", "secret"),
        ("callbacks.maxAttempts=0", "maxAttempts"),
        ("callbacks.egressExcept={10.0.0.0}", "egressExcept"),
    ],
)
def test_schema_refuses_a_plaintext_secret_and_bad_callback_values(setting: str, complaint: str) -> None:
    result = run_helm("template", "classifier", str(CHART), "--set", setting)
    assert result.returncode != 0 and complaint in result.stderr


# -- callbacks: the results pods' egress ---------------------------------------------------------


def egress_policy(objects: list[dict]) -> dict:
    policy = one(objects, "NetworkPolicy", "classifier-results-egress")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    return policy


def egress_allows(
    policy: dict,
    objects: list[dict],
    *,
    ip: str | None = None,
    pod: str | None = None,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether one of the policy's egress rules admits a connection to an address or a pod."""
    for rule in policy["spec"]["egress"]:
        if not any(p["port"] == port and p["protocol"] == protocol for p in rule["ports"]):
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            if ip is not None and "ipBlock" in peer:
                address = ipaddress.ip_address(ip)
                block = peer["ipBlock"]
                if address in ipaddress.ip_network(block["cidr"]) and not any(
                    address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
                ):
                    return True
            if (
                pod is not None
                and "podSelector" in peer
                and selects(peer["podSelector"], pod_labels(objects, "StatefulSet", pod))
            ):
                return True
    return False


def test_with_callbacks_results_pods_reach_only_mongodb_rabbitmq_dns_and_public_web_ports() -> None:
    objects = render(*CALLBACKS)
    policy = egress_policy(objects)
    selector = policy["spec"]["podSelector"]
    assert selects(selector, pod_labels(objects, "Deployment", "classifier-results"))
    for other in ("classifier-gateway", "classifier-worker-default"):
        assert not selects(selector, pod_labels(objects, "Deployment", other)), other

    (callback_rule,) = [r for r in policy["spec"]["egress"] if any("ipBlock" in p for p in r.get("to", []))]
    assert callback_rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]
    assert callback_rule["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]

    mongodb_port = next(
        p["containerPort"]
        for _, c in containers(one(objects, "StatefulSet", "classifier-mongodb"))
        for p in c.get("ports", [])
    )
    assert egress_allows(policy, objects, pod="classifier-mongodb", port=mongodb_port)
    # The finished-job notices; nothing else of RabbitMQ's (its management and metrics ports).
    assert egress_allows(policy, objects, pod="classifier-rabbitmq", port=5672)
    assert not egress_allows(policy, objects, pod="classifier-rabbitmq", port=15672)
    assert not egress_allows(policy, objects, pod="classifier-rabbitmq", port=15692)
    assert egress_allows(policy, objects, ip="10.96.0.10", port=53, protocol="UDP")
    assert egress_allows(policy, objects, ip="10.96.0.10", port=53, protocol="TCP")
    for public in ("93.184.216.34", "8.8.8.8"):
        assert egress_allows(policy, objects, ip=public, port=443)
        assert egress_allows(policy, objects, ip=public, port=80)
        assert not egress_allows(policy, objects, ip=public, port=22)
    for private in ("10.96.0.1", "10.244.1.7", "172.17.0.2", "192.168.1.1", "169.254.169.254"):
        assert not egress_allows(policy, objects, ip=private, port=443), private
        assert not egress_allows(policy, objects, ip=private, port=80), private


def test_egress_policy_follows_an_external_mongodb_and_the_network_policy_switch() -> None:
    external = render(*CALLBACKS, "--values", str(CHART / "ci" / "external-services-values.yaml"))
    policy = egress_policy(external)
    external_values = yaml.safe_load((CHART / "ci" / "external-services-values.yaml").read_text())
    port = external_values["externalMongodb"].get("port", 27017)
    assert {"ports": [{"port": port, "protocol": "TCP"}]} in policy["spec"]["egress"]
    broker_port = external_values["externalRabbitmq"]["port"]
    assert {"ports": [{"port": broker_port, "protocol": "TCP"}]} in policy["spec"]["egress"]
    assert find(render(*CALLBACKS, "--set", "networkPolicy.enabled=false"), "NetworkPolicy") == []


# -- API keys: from a Secret, sent as X-API-Key by `helm test` -----------------------------------


def test_api_keys_come_from_a_secret_for_the_gateway_the_results_service_and_the_test_pod() -> None:
    objects = render(*CALLBACKS)
    ref = {"name": "classifier-api-keys", "key": "api-keys"}
    gateway = one(objects, "Deployment", "classifier-gateway")["spec"]["template"]["spec"]["containers"][0]
    # A job is its submitter's: the results service reads, cancels and retries jobs, so it checks keys too.
    results = one(objects, "Deployment", "classifier-results")["spec"]["template"]["spec"]["containers"][0]
    test_pod = one(objects, "Pod", "classifier-smoke-test")["spec"]["containers"][0]
    for container in (gateway, results, test_pod):
        assert env_of(container)["CLASSIFIER_API_KEYS"] == {
            "name": "CLASSIFIER_API_KEYS",
            "valueFrom": {"secretKeyRef": ref},
        }
    # Without the Secret named, submissions need no key and no container gets the variable.
    assert all("CLASSIFIER_API_KEYS" not in env_of(c) for o in render() for _, c in containers(o))


class RecordingService(BaseHTTPRequestHandler):
    """Stands in for the gateway and results Services: records what the test pod sends."""

    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("POST", self.path, dict(self.headers)))
        self._answer(202, {"id": "j1", "status": "queued"}, {"Location": "/v1/jobs/j1"})

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(("GET", self.path, dict(self.headers)))
        prediction = {"label": "tench", "score": 0.9, "class_index": 0}
        self._answer(200, {"id": "j1", "status": "succeeded", "result": {"predictions": [prediction]}})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    RecordingService.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_helm_test_pod_sends_the_first_api_key_as_x_api_key_only(service: str) -> None:
    pod = one(render(*CALLBACKS), "Pod", "classifier-smoke-test")
    container = pod["spec"]["containers"][0]
    env = {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}
    # What Kubernetes would put there from the Secret; the Services are the recording server.
    env.update(GATEWAY_URL=service, RESULTS_URL=service, CLASSIFIER_API_KEYS=" key-one , key-two")
    result = subprocess.run(
        [sys.executable, *container["command"][1:]], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (post,) = [s for s in RecordingService.seen if s[0] == "POST"]
    headers = {name.lower(): value for name, value in post[2].items()}
    assert post[1] == "/v1/jobs"
    assert headers["x-api-key"] == "key-one"
    assert "authorization" not in headers
    gets = [s for s in RecordingService.seen if s[0] == "GET" and s[1].startswith("/v1/jobs/j1")]
    # With keys on, a job is its key's: the status polls send the key too.
    assert gets and all({k.lower(): v for k, v in s[2].items()}.get("x-api-key") == "key-one" for s in gets)


# -- the scenario --------------------------------------------------------------------------------


def test_callbacks_scenario_turns_on_callbacks_and_api_keys_and_validates() -> None:
    assert CHART / "ci" / "callbacks-values.yaml" in CI_VALUES  # so k8s-check and test_chart run it too
    values = yaml.safe_load((CHART / "ci" / "callbacks-values.yaml").read_text())
    assert values["callbacks"]["enabled"] is True and values["apiKeys"]["existingSecret"]
    lint = run_helm("lint", "--strict", str(CHART), *CALLBACKS)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    validate_all(render(*CALLBACKS))
