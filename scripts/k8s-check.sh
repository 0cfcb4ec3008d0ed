#!/usr/bin/env bash
# The Kubernetes static checks CI runs, without Docker or a cluster:
#   helm lint --strict (default values and every ci/*-values.yaml scenario);
#   helm template of each, validated object by object for K8S_VERSION, the oldest supported, and
#   K8S_NODE_VERSION, kind's default node (scripts/validate_k8s.py: Kubernetes' own kinds with
#   kubernetes-validate --strict; KEDA, Traefik and Prometheus Operator objects with the models in
#   tools/crd-schemas; the Gateway API's Gateway and HTTPRoute and the operators' RabbitmqCluster
#   and MongoDBCommunity against their CRDs in tools/upstream-schemas, SHA-256 pinned; no network);
#   kubectl kustomize k8s/overlays/kind, validated the same way;
#   k8s/ equal to a fresh render of the chart (scripts/render_k8s.py --check).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
PYTHON="${PYTHON:-.venv/bin/python}"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
K8S_NODE_VERSION="${K8S_NODE_VERSION:-}"
CHART=helm/classifier

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

scenarios=("")
for values in "$CHART"/ci/*-values.yaml; do scenarios+=("$values"); done

for values in "${scenarios[@]}"; do
  name="$(basename "${values:-default}" -values.yaml)"
  args=()
  [ -n "$values" ] && args=(--values "$values")
  echo "== $name"
  "$HELM" lint --strict "$CHART" "${args[@]}" --quiet
  "$HELM" template classifier "$CHART" --namespace classifier "${args[@]}" > "$out/$name.yaml"
done

echo "== kubectl kustomize k8s/overlays/kind, k8s/base"
"$KUBECTL" kustomize k8s/overlays/kind > "$out/kustomize-kind.yaml"
"$KUBECTL" kustomize k8s/base > "$out/kustomize-base.yaml"

for version in $K8S_VERSION $K8S_NODE_VERSION; do
  echo "== validate for Kubernetes $version (every render above, in one pass)"
  "$PYTHON" -m scripts.validate_k8s --kubernetes-version "$version" "$out"/*.yaml
done

echo "== k8s/ drift"
HELM="$HELM" "$PYTHON" -m scripts.render_k8s --check
echo "k8s-check: all passed"
