"""The front door, on the objects the real helm renders: a Gateway API HTTPRoute (default) or an
Ingress with the same routes; /metrics refused from outside; bodies well over the gateway's own
limit let through, so oversize uploads get its JSON 413; per-client rate limits where the
controller has them; the Gateway API and Traefik objects valid for the pinned models; and the Traefik
that `make kind-up` installs to serve both APIs on kind's host ports."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_gateway.main import create_app
from scripts import validate_k8s, versions
from tests.k8s.chart import CHART, REPO, RenderError, find, one, render, validate, validate_all
from tests.utils.api import assert_error_shape

GATEWAY_API = ("--set", "frontDoor.api=gateway")
INGRESS = ("--values", str(CHART / "ci" / "ingress-values.yaml"))
INGRESS_NGINX = ("--values", str(CHART / "ci" / "ingress-nginx-values.yaml"))
PRODUCTION = ("--values", str(CHART / "ci" / "production-values.yaml"))
TRAEFIK_VALUES = yaml.safe_load((REPO / "kind" / "traefik-values.yaml").read_text())
KIND_CONFIG = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())
MAX_UPLOAD = 10 * 1024 * 1024
PINS = versions.load()
CRD_SCHEMAS = REPO / "tools" / "crd-schemas"

# What the front door must do, whichever API renders it (scripts/stack.py's nginx does the same).
ROUTES = {
    ("/v1/jobs", "exact"): "classifier-gateway",
    ("/v1/jobs/", "prefix"): "classifier-results",
    ("/v1/batches", "exact"): "classifier-gateway",
    ("/v1/batches/", "prefix"): "classifier-results",
    ("/results/", "prefix"): "classifier-results",
    ("/", "prefix"): "classifier-gateway",
}


def service_port(objects: list[dict], name: str) -> dict[str, int]:
    return {p["name"]: p["port"] for p in one(objects, "Service", name)["spec"]["ports"]}


def httproute_routes(route: dict) -> dict[tuple[str, str], tuple[str, int, list[dict]]]:
    routes = {}
    for rule in route["spec"]["rules"]:
        (match,) = rule["matches"]
        (backend,) = rule["backendRefs"]
        kind = {"Exact": "exact", "PathPrefix": "prefix"}[match["path"]["type"]]
        routes[(match["path"]["value"], kind)] = (backend["name"], backend["port"], rule.get("filters", []))
    return routes


def ingress_routes(ingress: dict) -> dict[tuple[str, str], str]:
    (rule,) = ingress["spec"]["rules"]
    return {
        (path["path"], path["pathType"].lower()): path["backend"]["service"]["name"] for path in rule["http"]["paths"]
    }


# -- the same routes through either API ----------------------------------------------------------


def test_the_default_is_an_httproute_on_a_gateway_of_the_chart() -> None:
    objects = render()
    assert find(objects, "Ingress") == []
    route = one(objects, "HTTPRoute", "classifier")
    gateway = one(objects, "Gateway", "classifier")
    assert route["spec"]["parentRefs"] == [{"name": "classifier"}]
    assert "hostnames" not in route["spec"]  # any host: http://localhost/ on kind
    assert gateway["spec"]["gatewayClassName"] == "traefik"
    (listener,) = gateway["spec"]["listeners"]
    assert listener["protocol"] == "HTTP" and "hostname" not in listener
    assert listener["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    routes = httproute_routes(route)
    assert {key: name for key, (name, _, _) in routes.items() if key != ("/metrics", "exact")} == ROUTES
    for name, port, _ in routes.values():
        assert port == service_port(objects, name)["http"]  # Gateway API names ports by number


def test_the_ingress_has_the_same_routes_with_a_configurable_class() -> None:
    objects = render(*INGRESS)
    assert find(objects, "HTTPRoute") == [] and find(objects, "Gateway") == []
    ingress = one(objects, "Ingress", "classifier")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress_routes(ingress) == ROUTES
    assert ingress["spec"]["rules"][0]["host"] == "classifier.example.com"
    assert ingress["spec"]["tls"] == [{"secretName": "classifier-tls", "hosts": ["classifier.example.com"]}]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    other = one(render(*INGRESS, "--set", "frontDoor.ingress.className=haproxy"), "Ingress", "classifier")
    assert other["spec"]["ingressClassName"] == "haproxy"
    for path in ingress["spec"]["rules"][0]["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["port"]["name"] in service_port(objects, backend["name"])


def test_a_host_and_tls_give_the_gateway_an_https_listener() -> None:
    objects = render("--set", "frontDoor.host=classifier.example.com", "--set", "frontDoor.tlsSecretName=tls")
    gateway = one(objects, "Gateway", "classifier")
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    assert listeners["https"]["protocol"] == "HTTPS"
    assert listeners["https"]["tls"] == {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "tls"}]}
    assert {listener["hostname"] for listener in listeners.values()} == {"classifier.example.com"}
    assert one(objects, "HTTPRoute", "classifier")["spec"]["hostnames"] == ["classifier.example.com"]


def test_the_route_can_attach_to_a_gateway_someone_else_runs() -> None:
    objects = render(*PRODUCTION)
    assert find(objects, "Gateway") == []
    route = one(objects, "HTTPRoute", "classifier")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["classifier.example.com"]
    with pytest.raises(RenderError, match="needs frontDoor.gateway.name"):
        render("--set", "frontDoor.gateway.create=false")


def test_no_front_door_and_ingress_nginx_without_gateway_api() -> None:
    objects = render("--set", "frontDoor.api=none")
    assert not find(objects, "Ingress") and not find(objects, "HTTPRoute") and not find(objects, "Middleware")
    with pytest.raises(RenderError, match="serves only Ingresses"):
        render("--set", "frontDoor.controller=nginx")


# -- /metrics is not public ----------------------------------------------------------------------


def test_the_route_rewrites_metrics_to_a_path_the_gateway_refuses(tmp_path: Path) -> None:
    routes = httproute_routes(one(render(), "HTTPRoute", "classifier"))
    name, _, filters = routes[("/metrics", "exact")]
    assert name == "classifier-gateway"
    (rewrite,) = [f for f in filters if f["type"] == "URLRewrite"]
    assert rewrite["urlRewrite"]["path"]["type"] == "ReplaceFullPath"
    target = rewrite["urlRewrite"]["path"]["replaceFullPath"]
    # The real gateway app: its metrics at /metrics, a 404 in its error shape at the target.
    settings = Settings(
        broker_url=f"memory://front-door-{tmp_path.name}",
        store_url=f"sqlite:///{tmp_path}/jobs.db",
        models_dir=tmp_path / "no-models",
        gallery_dir=tmp_path / "no-gallery",
        spool_dir=tmp_path / "queue",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 200  # what the rule keeps from the outside
        assert_error_shape(client.get(target), 404, "not_found")
    assert ("/metrics", "exact") not in httproute_routes(
        one(render("--set", "frontDoor.blockMetrics=false"), "HTTPRoute", "classifier")
    )


def middleware(objects: list[dict], reference: str) -> dict:
    """The Middleware a Traefik router.middlewares reference (<namespace>-<name>@kubernetescrd) names."""
    namespace_and_name = reference.removesuffix("@kubernetescrd")
    (found,) = [
        m
        for m in find(objects, "Middleware")
        if f"{m['metadata']['namespace']}-{m['metadata']['name']}" == namespace_and_name
    ]
    return found


def test_with_traefik_the_metrics_ingress_rewrites_it_like_the_route() -> None:
    objects = render(*INGRESS)
    metrics = one(objects, "Ingress", "classifier-metrics")
    assert ingress_routes(metrics) == {("/metrics", "exact"): "classifier-gateway"}
    references = metrics["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"].split(",")
    rewrites = [middleware(objects, ref)["spec"] for ref in references]
    (replace,) = [spec["replacePath"] for spec in rewrites if "replacePath" in spec]
    route = httproute_routes(one(render(), "HTTPRoute", "classifier"))[("/metrics", "exact")]
    (rewrite,) = [f for f in route[2] if f["type"] == "URLRewrite"]
    assert replace["path"] == rewrite["urlRewrite"]["path"]["replaceFullPath"]
    assert metrics["spec"]["tls"] == one(objects, "Ingress", "classifier")["spec"]["tls"]


def test_with_ingress_nginx_a_second_ingress_answers_403_for_metrics() -> None:
    objects = render(*INGRESS_NGINX)
    main, metrics = one(objects, "Ingress", "classifier"), one(objects, "Ingress", "classifier-metrics")
    assert ingress_routes(metrics) == {("/metrics", "exact"): "classifier-gateway"}
    assert metrics["spec"]["ingressClassName"] == main["spec"]["ingressClassName"] == "nginx"
    # Only the deny: server-level annotations stay with the main Ingress.
    (denied,) = metrics["metadata"]["annotations"].items()
    assert denied[0] == "nginx.ingress.kubernetes.io/denylist-source-range"
    networks = [ipaddress.ip_network(cidr) for cidr in denied[1].split(",")]
    for client in ("203.0.113.9", "10.0.0.1", "127.0.0.1", "2001:db8::1", "::1"):
        assert any(ipaddress.ip_address(client) in net for net in networks), client
    assert main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"


def test_an_ingress_without_a_known_controller_cannot_refuse_metrics() -> None:
    objects = render(*INGRESS, "--set", "frontDoor.controller=none")
    assert [i["metadata"]["name"] for i in find(objects, "Ingress")] == ["classifier"]
    assert find(objects, "Middleware") == []
    assert "annotations" not in one(objects, "Ingress", "classifier")["metadata"] or not any(
        "traefik" in key for key in one(objects, "Ingress", "classifier")["metadata"]["annotations"]
    )


# -- the upload limit is the gateway's ------------------------------------------------------------


def test_ingress_nginx_lets_bodies_well_over_the_upload_limit_through() -> None:
    """ingress-nginx's own limit answered an 11 MiB upload with its HTML 413 (the limit was
    10305k, barely above the gateway's 10 MiB): uploads four times the app's limit now reach the
    gateway, which answers 413 in its JSON error shape."""
    for upload in (MAX_UPLOAD, 50 * 1024 * 1024):
        ingress = one(render(*INGRESS_NGINX, "--set", f"config.maxUploadBytes={upload}"), "Ingress", "classifier")
        size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert int(size.removesuffix("k")) * 1024 >= 4 * upload
    explicit = one(render(*INGRESS_NGINX, "--set", "frontDoor.maxBodyBytes=104857600"), "Ingress", "classifier")
    assert explicit["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "102400k"
    with pytest.raises(RenderError, match="at least twice"):
        render(*INGRESS_NGINX, "--set", "frontDoor.maxBodyBytes=11534336")


def test_traefik_reads_bodies_well_over_the_upload_limit_before_the_gateway_gets_them() -> None:
    """Every route goes through a buffering Middleware: Traefik reads the body (as nginx does in
    front of the local stack) and refuses only what is over four times the app's limit, so
    oversize uploads get the gateway's JSON 413."""
    for args in ((), INGRESS):
        objects = render(*args)
        chain = one(objects, "Middleware", "classifier-frontdoor")["spec"]["chain"]["middlewares"]
        assert {"name": "classifier-frontdoor-body"} in chain
        body = one(objects, "Middleware", "classifier-frontdoor-body")["spec"]["buffering"]
        assert body["maxRequestBodyBytes"] == 4 * MAX_UPLOAD
    big = one(render("--set", "config.maxUploadBytes=52428800"), "Middleware", "classifier-frontdoor-body")
    assert big["spec"]["buffering"]["maxRequestBodyBytes"] == 4 * 52428800
    with pytest.raises(RenderError, match="at least twice"):
        render("--set", "frontDoor.maxBodyBytes=11534336")


# -- rate limits -------------------------------------------------------------------------------


def test_traefik_limits_every_route_per_client() -> None:
    objects = render(*PRODUCTION)
    chain = one(objects, "Middleware", "classifier-frontdoor")["spec"]["chain"]["middlewares"]
    parts = {m["name"]: one(objects, "Middleware", m["name"])["spec"] for m in chain}
    assert parts["classifier-frontdoor-rate"]["rateLimit"] == {"average": 5, "period": "1s", "burst": 15}
    assert parts["classifier-frontdoor-inflight"]["inFlightReq"] == {"amount": 20}
    for _, _, filters in httproute_routes(one(objects, "HTTPRoute", "classifier")).values():
        reference = {"group": "traefik.io", "kind": "Middleware", "name": "classifier-frontdoor"}
        assert {"type": "ExtensionRef", "extensionRef": reference} in filters
    ingress = one(render(*INGRESS), "Ingress", "classifier")
    reference = ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
    assert middleware(render(*INGRESS), reference)["metadata"]["name"] == "classifier-frontdoor"


def test_rate_limits_off_or_without_a_controller() -> None:
    off = render("--set", "frontDoor.rateLimit.enabled=false")
    chain = one(off, "Middleware", "classifier-frontdoor")["spec"]["chain"]["middlewares"]
    assert chain == [{"name": "classifier-frontdoor-body"}]
    assert not any("rateLimit" in m["spec"] or "inFlightReq" in m["spec"] for m in find(off, "Middleware"))
    none = render("--set", "frontDoor.controller=none")
    assert find(none, "Middleware") == []
    routes = httproute_routes(one(none, "HTTPRoute", "classifier")).values()
    assert not any(f["type"] == "ExtensionRef" for _, _, filters in routes for f in filters)


def test_ingress_nginx_rate_limit_annotations() -> None:
    annotations = one(render(*INGRESS_NGINX), "Ingress", "classifier")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "5"
    assert annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"] == "3"
    assert annotations["nginx.ingress.kubernetes.io/limit-connections"] == "20"
    off = one(render(*INGRESS_NGINX, "--set", "frontDoor.rateLimit.enabled=false"), "Ingress", "classifier")
    assert not any("limit-" in key for key in off["metadata"]["annotations"])


# -- validated against the pinned CRDs and models --------------------------------------------------


@pytest.mark.parametrize("args", [(), INGRESS, PRODUCTION], ids=["gateway", "ingress", "external-gateway"])
def test_the_custom_resources_are_checked_against_the_pinned_crds_and_models(args: tuple[str, ...]) -> None:
    """Gateway and HTTPRoute against the Gateway API's standard-channel CRDs that kind-up applies
    (tools/upstream-schemas), Traefik's Middlewares against the pinned npm model."""
    objects = [o for o in render(*args) if o["kind"] in {"Gateway", "HTTPRoute", "Middleware"}]
    assert objects
    expected = ["package" if o["kind"] == "Middleware" else "crd" for o in objects]
    assert validate_all(objects) == expected


@pytest.mark.parametrize(
    ("kind", "name", "mistake", "complaint"),
    [
        ("HTTPRoute", "classifier", lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(type="Pre"), "Pre"),
        ("HTTPRoute", "classifier", lambda o: o["spec"]["rules"][0].update(backendRef=[]), "backendRef"),
        ("HTTPRoute", "classifier", lambda o: o["spec"]["parentRefs"][0].pop("name"), "name"),
        ("Gateway", "classifier", lambda o: o["spec"]["listeners"][0].update(port=70000), "maximum of 65535"),
        ("Middleware", "classifier-frontdoor-rate", lambda o: o["spec"]["rateLimit"].update(averge=1), "averge"),
        ("Middleware", "classifier-frontdoor-body", lambda o: o["spec"]["buffering"].update(maxRequestBodyBytes="4M"),
         "maxRequestBodyBytes must be integer"),
    ],
)  # fmt: skip
def test_the_schema_checks_catch_mistakes(kind: str, name: str, mistake, complaint: str) -> None:
    obj = copy.deepcopy(one(render(), kind, name))
    mistake(obj)
    with pytest.raises(AssertionError, match=complaint):
        validate(obj)


def test_kind_up_installs_the_gateway_api_version_the_checks_hold_the_chart_to() -> None:
    version = PINS["GATEWAY_API_VERSION"].value
    for name in ("GATEWAY_API_GATEWAY_CRD_SHA256", "GATEWAY_API_HTTPROUTE_CRD_SHA256"):
        assert f"/gateway-api/{version}/config/crd/standard/" in PINS[name].source
    package = json.loads((CRD_SCHEMAS / "package.json").read_text())
    assert not any("gateway" in name for name in package["dependencies"])  # one schema source
    lock = json.loads((CRD_SCHEMAS / "package-lock.json").read_text())
    for name, pinned in package["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == pinned, name
    kind_up = (REPO / "scripts" / "kind-up.sh").read_text()
    assert 'GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-$(pin GATEWAY_API_VERSION)}"' in kind_up
    assert "releases/download/$GATEWAY_API_VERSION/standard-install.yaml" in kind_up
    assert re.search(r'apply --server-side .*-f "\$GATEWAY_API_CRDS_URL"', kind_up)


# -- Traefik on kind -------------------------------------------------------------------------------


def traefik_chart_schema() -> dict:
    """values.schema.json of the pinned Traefik chart (tools/upstream-schemas, SHA-256 pinned)."""
    return json.loads(validate_k8s.pinned_file("TRAEFIK_VALUES_SCHEMA_SHA256").read_text())


def test_the_kind_traefik_values_are_valid_for_the_pinned_chart() -> None:
    jsonschema.validate(TRAEFIK_VALUES, traefik_chart_schema())
    wrong = copy.deepcopy(TRAEFIK_VALUES)
    wrong["ports"]["web"]["hostPrt"] = 80
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, traefik_chart_schema())


def test_traefik_serves_both_apis_for_the_classes_the_chart_names() -> None:
    providers = TRAEFIK_VALUES["providers"]
    assert providers["kubernetesGateway"]["enabled"] and providers["kubernetesIngress"]["enabled"]
    assert providers["kubernetesCRD"]["enabled"]  # the Middlewares
    assert TRAEFIK_VALUES["gatewayClass"]["name"] == one(render(), "Gateway", "classifier")["spec"]["gatewayClassName"]
    ingress = one(render(*INGRESS), "Ingress", "classifier")
    assert TRAEFIK_VALUES["ingressClass"]["name"] == ingress["spec"]["ingressClassName"]
    # Traefik binds a Gateway listener to the entrypoint of the same port (web: 8000).
    (listener,) = one(render(), "Gateway", "classifier")["spec"]["listeners"]
    assert listener["port"] == 8000
    assert TRAEFIK_VALUES["gateway"]["enabled"] is False  # the chart's Gateway, not a second one


def test_traefik_holds_the_kind_host_ports_and_lets_go_of_them_at_once() -> None:
    """As upstream kind's own ingress manifests: on host ports of one node a new pod can only
    start once the old one is gone, so no surge and one unavailable at a time, and no grace
    period to wait out (a second `make kind-up` after a values change hung on the port)."""
    (node,) = KIND_CONFIG["nodes"]
    assert TRAEFIK_VALUES["nodeSelector"].items() <= node["labels"].items()
    mapped = {m["containerPort"] for m in node["extraPortMappings"]}
    assert {TRAEFIK_VALUES["ports"]["web"]["hostPort"], TRAEFIK_VALUES["ports"]["websecure"]["hostPort"]} == mapped
    rolling = TRAEFIK_VALUES["updateStrategy"]["rollingUpdate"]
    assert rolling == {"maxUnavailable": 1, "maxSurge": 0}
    # 0 is what kind uses; the Traefik chart reads 0 as unset (60), so 1 is the closest.
    assert TRAEFIK_VALUES["deployment"]["terminationGracePeriodSeconds"] <= 1
    assert TRAEFIK_VALUES["service"]["type"] != "LoadBalancer"  # none on kind: helm --wait would hang


def test_kind_up_installs_traefik_and_removes_a_retired_ingress_nginx() -> None:
    kind_up = (REPO / "scripts" / "kind-up.sh").read_text()
    assert '--values "$ROOT/kind/traefik-values.yaml"' in kind_up
    assert kind_up.index("uninstall ingress-nginx") < kind_up.index("upgrade --install traefik")
    assert not (REPO / "kind" / "ingress-nginx-values.yaml").exists()


def test_docs_say_why_traefik_and_where_rate_limits_are_missing() -> None:
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    section = docs[docs.index("## The front door") :]
    for point in ("Traefik", "cloud-provider-kind", "hostPort", "ingress-nginx", "Gateway API has no"):
        assert point in section, point
    assert Path(CHART / "values.yaml").read_text().count("frontDoor:") == 1


# -- the Docker VM the kind path needs -------------------------------------------------------------

# kind's control plane and system pods (kube-apiserver 250m, kube-controller-manager 200m,
# kube-scheduler 100m, etcd 100m/100Mi, two CoreDNS 100m/70Mi, kindnet 100m/50Mi).
KIND_SYSTEM_REQUESTS = (0.95, 290 * 2**20)
# Memory of what requests none: kubelet, containerd, Traefik, the Prometheus operator,
# kube-state-metrics, node-exporter, Grafana's sidecars, the Docker VM's own system.
UNREQUESTED_BYTES = 2 * 10**9


def quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def requests_at_max_scale() -> tuple[float, float]:
    """CPU and memory the default install's pods request with the workers at maxReplicas and
    the monitoring `make kind-up` installs."""
    objects = render("--set", "monitoring.enabled=true")
    max_workers = one(objects, "HorizontalPodAutoscaler", "classifier-worker-default")["spec"]["maxReplicas"]
    cpu, memory = KIND_SYSTEM_REQUESTS
    for obj in objects:
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        replicas = obj["spec"].get("replicas", max_workers)
        for container in obj["spec"]["template"]["spec"]["containers"]:
            cpu += replicas * quantity(container["resources"]["requests"]["cpu"])
            memory += replicas * quantity(container["resources"]["requests"]["memory"])
    stack = yaml.safe_load((REPO / "monitoring" / "kube-prometheus-stack" / "values.yaml").read_text())
    adapter = yaml.safe_load((REPO / "monitoring" / "prometheus-adapter" / "values.yaml").read_text())
    for resources in (
        stack["prometheus"]["prometheusSpec"]["resources"],
        stack["alertmanager"]["alertmanagerSpec"]["resources"],
        stack["grafana"]["resources"],
        adapter["resources"],
    ):
        cpu += quantity(resources["requests"]["cpu"])
        memory += quantity(resources["requests"]["memory"])
    return cpu, memory


def test_readme_states_a_docker_vm_the_default_install_fits_at_max_scale() -> None:
    cpu, memory = requests_at_max_scale()
    readme = (REPO / "README.md").read_text()
    stated = re.search(r"at least \*\*(\d+) CPUs and (\d+) GB of\s+memory\*\*", readme)
    assert stated, "README must say how big Docker's VM must be"
    cpus, gigabytes = int(stated.group(1)), int(stated.group(2))
    assert cpus >= cpu, (cpus, cpu)
    assert gigabytes * 10**9 >= memory + UNREQUESTED_BYTES, (gigabytes, memory / 2**30)
    # The figures the README and docs quote are the computed ones.
    assert f"request {cpu:.1f} CPUs and {memory / 2**30:.1f} GiB" in readme
    assert f"request {cpu:.1f} CPUs and {memory / 2**30:.1f} GiB" in (REPO / "docs" / "kubernetes.md").read_text()


# -- where each job route lands ------------------------------------------------------------------

# The service that serves each job route (the list and submission in the gateway, one job's
# routes, its retry included, in the results service): every front door must send it there.
JOB_ROUTES = {
    "/v1/jobs": "classifier-gateway",  # POST submits, GET lists
    "/v1/jobs/6d7ea9fff1394c918187b0bd2f9534a6": "classifier-results",
    "/v1/jobs/6d7ea9fff1394c918187b0bd2f9534a6/retry": "classifier-results",
}


def _lands(routes: dict[tuple[str, str], str], path: str) -> str:
    """The backend a request path gets: an exact match first, else the longest matching prefix."""
    if (path, "exact") in routes:
        return routes[(path, "exact")]
    prefixes = [(p, name) for (p, kind), name in routes.items() if kind == "prefix" and path.startswith(p)]
    return max(prefixes, key=lambda item: len(item[0]))[1]


def test_every_job_route_lands_on_the_service_that_serves_it() -> None:
    httproute = {key: value[0] for key, value in httproute_routes(one(render(), "HTTPRoute", "classifier")).items()}
    ingress = ingress_routes(one(render(*INGRESS), "Ingress", "classifier"))
    for routes in (httproute, ingress):
        for path, service in JOB_ROUTES.items():
            assert _lands(routes, path) == service, path
    gateway_paths = set(create_app(Settings()).openapi()["paths"])
    assert "/v1/jobs" in gateway_paths and "/v1/jobs/{job_id}/retry" not in gateway_paths


def test_the_development_nginx_routes_jobs_the_same_way(tmp_path: Path) -> None:
    from devstack.stack import nginx_conf

    conf = nginx_conf(state_dir=tmp_path, port=1, gateway_port=2, results_port=3)
    locations = dict(re.findall(r"location (= \S+|\S+) \{ proxy_pass http://(\w+); \}", conf))
    routes = {
        (path.removeprefix("= "), "exact" if path.startswith("= ") else "prefix"): f"classifier-{backend}"
        for path, backend in locations.items()
    }
    for path, service in JOB_ROUTES.items():
        assert _lands(routes, path) == service, path
