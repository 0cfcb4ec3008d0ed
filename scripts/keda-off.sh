#!/usr/bin/env bash
# Hands the workers of a release back from KEDA to the chart's own HPA, then removes KEDA, in
# the only order that works (docs/metrics.md, "KEDA and back"):
#   1. delete the ScaledObject while KEDA still runs: its finalizer removes the HPA KEDA made,
#      which carries no Helm ownership and would block the chart's own HPA of the same name;
#   2. scale the workers to at least 1 if KEDA left them at 0: an HPA never scales up from 0;
#   3. `helm upgrade --reuse-values` with autoscaling.keda.enabled=false: the chart's HPA comes
#      back (before KEDA's CRDs go: helm must still know the ScaledObject kind of the release);
#   4. uninstall KEDA (its chart removes its CRDs).
# Then `make kind-up` (KEDA=0) installs prometheus-adapter, which serves the HPA's metric.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
NAMESPACE="${K8S_NAMESPACE:-classifier}"
RELEASE="${RELEASE:-classifier}"
WORKERS="${WORKER_DEPLOYMENT:-$RELEASE-worker}"

if "$KUBECTL" -n "$NAMESPACE" get scaledobjects.keda.sh "$WORKERS" >/dev/null 2>&1; then
  echo "deleting ScaledObject $NAMESPACE/$WORKERS (KEDA removes its HPA with it)"
  "$KUBECTL" -n "$NAMESPACE" delete scaledobjects.keda.sh "$WORKERS" --wait=true --timeout=120s
  "$KUBECTL" -n "$NAMESPACE" wait --for=delete "horizontalpodautoscalers/$WORKERS" --timeout=120s || true
  replicas="$("$KUBECTL" -n "$NAMESPACE" get deployment "$WORKERS" -o 'jsonpath={.spec.replicas}')"
  if [ "${replicas:-0}" -lt 1 ]; then
    echo "workers at 0: scaling $WORKERS to 1 (an HPA does not scale up from 0)"
    "$KUBECTL" -n "$NAMESPACE" scale deployment "$WORKERS" --replicas=1
  fi
  echo "upgrading release $RELEASE with the chart's HPA"
  "$HELM" upgrade "$RELEASE" "$ROOT/helm/classifier" --namespace "$NAMESPACE" --reuse-values \
    --set autoscaling.keda.enabled=false --wait --timeout 10m
fi

if "$HELM" -n keda status keda >/dev/null 2>&1; then
  echo "uninstalling KEDA"
  "$HELM" -n keda uninstall keda --wait
fi
echo "KEDA is off; \`make kind-up\` installs prometheus-adapter for the HPA's metric"
