#!/usr/bin/env bash
# Creates the kind cluster from kind/cluster.yaml (if it does not exist yet) and installs the
# Gateway API CRDs (the pinned release's standard-install.yaml) and, from their public charts at
# pinned versions (versions.env): Traefik, the front door for Gateway API routes and Ingresses
# alike; with MONITORING=1 (default)
# kube-prometheus-stack and prometheus-adapter into namespace `monitoring` (values in
# monitoring/, docs/metrics.md); with KEDA=1 KEDA into namespace `keda` instead of the adapter.
# Idempotent: run it again to repair.
#
# Needs Docker (or podman with KIND_EXPERIMENTAL_PROVIDER=podman) and kind. Without kind on PATH it is built with
# `go install sigs.k8s.io/kind@$KIND_VERSION` when Go is there; otherwise install kind from
# https://kind.sigs.k8s.io/docs/user/quick-start/#installation first.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# A version from versions.env (make passes them all; this is for running the script by hand).
pin() { sed -n "s/^$1=\([^ #]*\).*/\1/p" "$ROOT/versions.env"; }
KIND_CLUSTER="${KIND_CLUSTER:-classifier}"
KIND_VERSION="${KIND_VERSION:-$(pin KIND_VERSION)}"
# Empty: kind's default node image for its version.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-$(pin GATEWAY_API_VERSION)}"
TRAEFIK_CHART_VERSION="${TRAEFIK_CHART_VERSION:-$(pin TRAEFIK_CHART_VERSION)}"
# The Gateway API release's standard-channel CRDs (overridable for a mirror).
GATEWAY_API_CRDS_URL="${GATEWAY_API_CRDS_URL:-https://github.com/kubernetes-sigs/gateway-api/releases/download/$GATEWAY_API_VERSION/standard-install.yaml}"
MONITORING="${MONITORING:-1}"
KEDA="${KEDA:-0}"
KUBE_PROMETHEUS_STACK_CHART_VERSION="${KUBE_PROMETHEUS_STACK_CHART_VERSION:-$(pin KUBE_PROMETHEUS_STACK_CHART_VERSION)}"
PROMETHEUS_ADAPTER_CHART_VERSION="${PROMETHEUS_ADAPTER_CHART_VERSION:-$(pin PROMETHEUS_ADAPTER_CHART_VERSION)}"
KEDA_CHART_VERSION="${KEDA_CHART_VERSION:-$(pin KEDA_CHART_VERSION)}"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
KIND="${KIND:-kind}"
DATA_DIR="${CLASSIFIER_KIND_DATA:-$ROOT/data/kind}"

if ! command -v "$KIND" >/dev/null 2>&1; then
  if command -v go >/dev/null 2>&1; then
    echo "kind not found: go install sigs.k8s.io/kind@$KIND_VERSION"
    go install "sigs.k8s.io/kind@$KIND_VERSION"
    KIND="$(go env GOPATH)/bin/kind"
  else
    echo "kind is not installed and Go is not there to build it." >&2
    echo "Install kind $KIND_VERSION: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2
    exit 1
  fi
fi
command -v "$KUBECTL" >/dev/null 2>&1 || {
  echo "kubectl is required (not found: $KUBECTL): https://kubernetes.io/docs/tasks/tools/" >&2
  exit 1
}
command -v "$HELM" >/dev/null 2>&1 || { echo "helm is required (not found: $HELM): make tools" >&2; exit 1; }
# kind's node runs in Docker, or in podman with kind's own switch KIND_EXPERIMENTAL_PROVIDER=podman
# (then `make images` builds with podman and loads the images as archives).
provider="${KIND_EXPERIMENTAL_PROVIDER:-docker}"
if ! command -v "$provider" >/dev/null 2>&1; then
  echo "kind needs $provider to run its node ($provider not found): https://kind.sigs.k8s.io/docs/user/quick-start/" >&2
  if [ "$provider" = docker ] && command -v podman >/dev/null 2>&1; then
    echo "podman is installed: to run kind's node in it, KIND_EXPERIMENTAL_PROVIDER=podman make kind-up deploy" >&2
  fi
  exit 1
fi

# The hostPath volumes' directories: they must exist, and the seed Job (UID 10001) writes them.
mkdir -p "$DATA_DIR/models" "$DATA_DIR/gallery"
chmod 0777 "$DATA_DIR/models" "$DATA_DIR/gallery"

mkdir -p "$ROOT/build"
config="$ROOT/build/kind-cluster.yaml"
sed "s|\${CLASSIFIER_KIND_DATA}|$DATA_DIR|g" "$ROOT/kind/cluster.yaml" > "$config"

if "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  echo "kind cluster $KIND_CLUSTER exists"
else
  args=(create cluster --name "$KIND_CLUSTER" --config "$config" --wait 120s)
  [ -n "$KIND_NODE_IMAGE" ] && args+=(--image "$KIND_NODE_IMAGE")
  "$KIND" "${args[@]}"
fi
"$KUBECTL" config use-context "kind-$KIND_CLUSTER" >/dev/null

# ingress-nginx (retired) from an earlier kind-up holds the host ports Traefik needs.
if "$HELM" -n ingress-nginx status ingress-nginx >/dev/null 2>&1; then
  echo "removing ingress-nginx (retired; Traefik takes its place)"
  "$HELM" -n ingress-nginx uninstall ingress-nginx --wait
fi
# The Gateway API CRDs from the release itself, before Traefik: server-side apply installs them on
# a new cluster and moves them to the pinned version on an old one (helm installs a chart's crds/
# once and never upgrades them, so they are not left to the Traefik chart).
echo "installing the Gateway API $GATEWAY_API_VERSION CRDs (standard channel) from $GATEWAY_API_CRDS_URL"
"$KUBECTL" apply --server-side --force-conflicts -f "$GATEWAY_API_CRDS_URL" >/dev/null
echo "installing traefik chart $TRAEFIK_CHART_VERSION"
"$HELM" upgrade --install traefik traefik \
  --repo https://traefik.github.io/charts \
  --version "$TRAEFIK_CHART_VERSION" \
  --namespace traefik --create-namespace \
  --values "$ROOT/kind/traefik-values.yaml" \
  --wait --timeout 5m
"$KUBECTL" -n traefik rollout status deployment/traefik --timeout=180s

if [ "$MONITORING" = 1 ]; then
  "$KUBECTL" create namespace monitoring --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  # Grafana's admin password: random, in a Secret made here (kept on re-runs), never in values.
  if ! "$KUBECTL" -n monitoring get secret grafana-admin >/dev/null 2>&1; then
    password="$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    "$KUBECTL" -n monitoring create secret generic grafana-admin \
      --from-literal=admin-user=admin --from-literal=admin-password="$password" >/dev/null
    echo "created Secret monitoring/grafana-admin (Grafana user admin, random password)"
  fi
  echo "installing kube-prometheus-stack chart $KUBE_PROMETHEUS_STACK_CHART_VERSION"
  "$HELM" upgrade --install kube-prometheus-stack kube-prometheus-stack \
    --repo https://prometheus-community.github.io/helm-charts \
    --version "$KUBE_PROMETHEUS_STACK_CHART_VERSION" \
    --namespace monitoring \
    --values "$ROOT/monitoring/kube-prometheus-stack/values.yaml" \
    --wait --timeout 10m
fi

if [ "$KEDA" = 1 ]; then
  # KEDA's metrics server and prometheus-adapter both register external.metrics.k8s.io.
  if "$HELM" -n monitoring status prometheus-adapter >/dev/null 2>&1; then
    echo "KEDA=1: removing prometheus-adapter (KEDA serves external metrics now)"
    "$HELM" -n monitoring uninstall prometheus-adapter --wait
  fi
  echo "installing keda chart $KEDA_CHART_VERSION"
  "$HELM" upgrade --install keda keda \
    --repo https://kedacore.github.io/charts \
    --version "$KEDA_CHART_VERSION" \
    --namespace keda --create-namespace \
    --wait --timeout 5m
elif [ "$MONITORING" = 1 ]; then
  if "$HELM" -n keda status keda >/dev/null 2>&1; then
    echo "KEDA is installed and serves external.metrics.k8s.io; hand the workers back and remove it first: make keda-off" >&2
    exit 1
  fi
  echo "installing prometheus-adapter chart $PROMETHEUS_ADAPTER_CHART_VERSION"
  "$HELM" upgrade --install prometheus-adapter prometheus-adapter \
    --repo https://prometheus-community.github.io/helm-charts \
    --version "$PROMETHEUS_ADAPTER_CHART_VERSION" \
    --namespace monitoring \
    --values "$ROOT/monitoring/prometheus-adapter/values.yaml" \
    --wait --timeout 5m
fi

echo "kind cluster $KIND_CLUSTER is up; Traefik answers on http://localhost/"
if [ "$MONITORING" = 1 ]; then
  echo "Grafana: kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80"
fi
