#!/usr/bin/env bash
# The Kubernetes static checks CI runs, without Docker or a cluster:
#   helm lint --strict (default values and every ci/*-values.yaml scenario);
#   helm template of each, validated object by object against the Kubernetes schemas
#   (kubernetes-validate --strict, offline) for K8S_VERSION, custom resources against their
#   CRDs where the CRD YAML is at hand (scripts/crd_validate.py, helm/crds/README.md);
#   kubectl kustomize k8s/overlays/kind, validated the same way;
#   k8s/ equal to a fresh render of the chart (scripts/render_k8s.py --check).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
PYTHON="${PYTHON:-.venv/bin/python}"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
CHART=helm/classifier
VALIDATE=("$PYTHON" -m kubernetes_validate --strict --quiet --kubernetes-version "$K8S_VERSION")

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
  "${VALIDATE[@]}" "$out/$name.yaml"
  # Custom resources (the operators' RabbitmqCluster, MongoDBCommunity ...) against their CRDs.
  "$PYTHON" -m scripts.crd_validate "$out/$name.yaml" >/dev/null
done

echo "== kubectl kustomize k8s/overlays/kind"
"$KUBECTL" kustomize k8s/overlays/kind > "$out/kustomize-kind.yaml"
"${VALIDATE[@]}" "$out/kustomize-kind.yaml"
"$KUBECTL" kustomize k8s/base > "$out/kustomize-base.yaml"
"${VALIDATE[@]}" "$out/kustomize-base.yaml"

echo "== k8s/ drift"
HELM="$HELM" "$PYTHON" scripts/render_k8s.py --check
echo "k8s-check: all passed"
