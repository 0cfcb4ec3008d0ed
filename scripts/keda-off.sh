#!/usr/bin/env bash
# Hands the workers of a release (every worker pool) back from KEDA to the chart's own HPAs, then removes KEDA, in
# the only order that works (docs/metrics.md, "KEDA and back"):
#   1. delete each pool's ScaledObject while KEDA still runs: its finalizer removes the HPA KEDA made,
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
# Every worker pool's ScaledObject (named like the pool's Deployment, <release>-worker-<pool>).
WORKER_SELECTOR="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=worker"
mapfile -t scaled < <("$KUBECTL" -n "$NAMESPACE" get scaledobjects.keda.sh -l "$WORKER_SELECTOR" -o name 2>/dev/null || true)

if [ "${#scaled[@]}" -gt 0 ]; then
  for object in "${scaled[@]}"; do
    workers="${object##*/}"
    echo "deleting ScaledObject $NAMESPACE/$workers (KEDA removes its HPA with it)"
    "$KUBECTL" -n "$NAMESPACE" delete scaledobjects.keda.sh "$workers" --wait=true --timeout=120s
    "$KUBECTL" -n "$NAMESPACE" wait --for=delete "horizontalpodautoscalers/$workers" --timeout=120s || true
    replicas="$("$KUBECTL" -n "$NAMESPACE" get deployment "$workers" -o 'jsonpath={.spec.replicas}')"
    if [ "${replicas:-0}" -lt 1 ]; then
      echo "workers at 0: scaling $workers to 1 (an HPA does not scale up from 0)"
      "$KUBECTL" -n "$NAMESPACE" scale deployment "$workers" --replicas=1
    fi
  done
  # A pool that sets autoscaling.keda.enabled in its own workerPools entry keeps KEDA: take it
  # out of your values first.
  echo "upgrading release $RELEASE with the chart's HPAs"
  "$HELM" upgrade "$RELEASE" "$ROOT/helm/classifier" --namespace "$NAMESPACE" --reuse-values \
    --set autoscaling.keda.enabled=false --wait --timeout 10m
fi

if "$HELM" -n keda status keda >/dev/null 2>&1; then
  echo "uninstalling KEDA"
  "$HELM" -n keda uninstall keda --wait
fi
echo "KEDA is off; \`make kind-up\` installs prometheus-adapter for the HPA's metric"
