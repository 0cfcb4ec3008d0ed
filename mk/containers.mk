# Images, and the whole system run from them as the chart runs its pods (docs/kubernetes.md).
#
#   make images            build the three images with Docker or podman, load them into kind (LOAD=0: build only;
#                          ONNX_WORKER=1: also the ONNX-only worker, classifier-worker:<tag>-onnx)
#   make container-e2e     build them, run the chart's pods from them, tests/e2e and faults through nginx

# docker when its daemon answers, else podman when installed (scripts/container-engine.sh).
CONTAINER_ENGINE ?= $(shell scripts/container-engine.sh 2>/dev/null)

.PHONY: images container-e2e

images: ## Build the three images (CONTAINER_ENGINE=docker|podman) and load them into the kind cluster
	$(K8S_ENV) CONTAINER_ENGINE="$(CONTAINER_ENGINE)" scripts/k8s-images.sh

container-e2e: helm-binary ## Build the images, run the chart's pods from them (SQLite store), tests/e2e + worker faults through nginx
	CONTAINER_ENGINE="$(CONTAINER_ENGINE)" HELM="$(HELM)" IMAGE_TAG="$(IMAGE_TAG)" $(PY) -m scripts.container_e2e
