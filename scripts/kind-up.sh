#!/usr/bin/env bash
# Creates the kind cluster from kind/cluster.yaml (if it does not exist yet) and installs
# ingress-nginx from its public chart at a pinned version. Idempotent: run it again to repair.
#
# Needs Docker (or another kind provider) and kind. Without kind on PATH it is built with
# `go install sigs.k8s.io/kind@$KIND_VERSION` when Go is there; otherwise install kind from
# https://kind.sigs.k8s.io/docs/user/quick-start/#installation first.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-classifier}"
KIND_VERSION="${KIND_VERSION:-v0.32.0}"
# Empty: kind's default node image for its version.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
INGRESS_NGINX_CHART_VERSION="${INGRESS_NGINX_CHART_VERSION:-4.14.1}"
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
command -v docker >/dev/null 2>&1 || { echo "kind needs Docker (docker not found)" >&2; exit 1; }

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

echo "installing ingress-nginx chart $INGRESS_NGINX_CHART_VERSION"
"$HELM" upgrade --install ingress-nginx ingress-nginx \
  --repo https://kubernetes.github.io/ingress-nginx \
  --version "$INGRESS_NGINX_CHART_VERSION" \
  --namespace ingress-nginx --create-namespace \
  --values "$ROOT/kind/ingress-nginx-values.yaml" \
  --wait --timeout 5m
"$KUBECTL" -n ingress-nginx wait --for=condition=Ready pod \
  -l app.kubernetes.io/component=controller --timeout=180s
echo "kind cluster $KIND_CLUSTER is up; the ingress answers on http://localhost/"
