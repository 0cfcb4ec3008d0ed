#!/usr/bin/env bash
# Installs the operators behind the chart's operator-backed modes (docs/kubernetes.md, "Outgrowing
# one node"), at the versions in versions.env:
#   cert-manager, from its release manifest (the Cluster Operator's webhook needs a certificate);
#   the RabbitMQ Cluster Operator, from its release manifest, into namespace rabbitmq-system
#   (it serves RabbitmqCluster objects in every namespace);
#   MongoDB Controllers for Kubernetes, from its chart, into K8S_NAMESPACE, the release's own
#   namespace, which it watches (its chart creates the mongodb-database ServiceAccount there).
# Idempotent: run it again to repair or to move to new pins.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
pin() { sed -n "s/^$1=\([^ #]*\).*/\1/p" "$ROOT/versions.env"; }
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-$(pin CERT_MANAGER_VERSION)}"
RABBITMQ_CLUSTER_OPERATOR_VERSION="${RABBITMQ_CLUSTER_OPERATOR_VERSION:-$(pin RABBITMQ_CLUSTER_OPERATOR_VERSION)}"
MONGODB_KUBERNETES_CHART_VERSION="${MONGODB_KUBERNETES_CHART_VERSION:-$(pin MONGODB_KUBERNETES_CHART_VERSION)}"
K8S_NAMESPACE="${K8S_NAMESPACE:-classifier}"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"

echo "installing cert-manager $CERT_MANAGER_VERSION"
"$KUBECTL" apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
"$KUBECTL" -n cert-manager wait --for=condition=Available deployment --all --timeout=5m

echo "installing the RabbitMQ Cluster Operator $RABBITMQ_CLUSTER_OPERATOR_VERSION"
"$KUBECTL" apply -f "https://github.com/rabbitmq/cluster-operator/releases/download/$RABBITMQ_CLUSTER_OPERATOR_VERSION/cluster-operator.yml"
"$KUBECTL" -n rabbitmq-system rollout status deployment/rabbitmq-cluster-operator --timeout=5m

echo "installing MongoDB Controllers for Kubernetes $MONGODB_KUBERNETES_CHART_VERSION into $K8S_NAMESPACE"
"$KUBECTL" create namespace "$K8S_NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$HELM" upgrade --install mongodb-kubernetes mongodb-kubernetes \
  --repo https://mongodb.github.io/helm-charts \
  --version "$MONGODB_KUBERNETES_CHART_VERSION" \
  --namespace "$K8S_NAMESPACE" \
  --wait --timeout 5m

echo "operators ready: deploy with --values helm/classifier/ci/operators-values.yaml"
