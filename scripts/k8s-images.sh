#!/usr/bin/env bash
# Builds the three images (build context: the repository root) with Docker or podman
# (CONTAINER_ENGINE; detected when unset by scripts/container-engine.sh: docker when its daemon
# answers, else podman) and loads them
# into the kind cluster, named as the chart expects: [<IMAGE_REGISTRY>/]<name>:<IMAGE_TAG>, the
# worker with -<TORCH_VARIANT> appended unless it is the CPU build (the chart's
# worker.image.tagSuffix).
#   ONNX_WORKER=1          also the ONNX-only worker (the Dockerfile's `onnx` target, no torch) as
#                          [<IMAGE_REGISTRY>/]classifier-worker:<IMAGE_TAG>-onnx (a pool's image.tagSuffix -onnx)
#   LOAD=0                 build only (e.g. to push to IMAGE_REGISTRY yourself, or for make container-e2e)
#   IMAGE_BUILD_FLAGS      extra flags for every build (e.g. "--pull=never --network host")
#   WORKER_BUILD_FLAGS     extra flags for the worker's build with torch (e.g. --build-arg TORCH_INDEX_URL=...)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
IMAGE_TAG="${IMAGE_TAG:?IMAGE_TAG is required}"
IMAGE_REGISTRY="${IMAGE_REGISTRY:-}"
TORCH_VARIANT="${TORCH_VARIANT:-cpu}"
KIND_CLUSTER="${KIND_CLUSTER:-classifier}"
KIND="${KIND:-kind}"
LOAD="${LOAD:-1}"
CONTAINER_ENGINE="$("$ROOT/scripts/container-engine.sh")"
ONNX_WORKER="${ONNX_WORKER:-0}"
read -r -a build_flags <<<"${IMAGE_BUILD_FLAGS:-}"
read -r -a worker_flags <<<"${WORKER_BUILD_FLAGS:-}"

prefix=""
[ -z "$IMAGE_REGISTRY" ] || prefix="${IMAGE_REGISTRY%/}/"
suffix=""
[ "$TORCH_VARIANT" = cpu ] || suffix="-$TORCH_VARIANT"

load() {  # load <image>: into the kind cluster's nodes
  if [ "$CONTAINER_ENGINE" = docker ]; then
    "$KIND" load docker-image "$1" --name "$KIND_CLUSTER"
  else
    local archive
    archive="$(mktemp --suffix=.tar)"
    "$CONTAINER_ENGINE" save --quiet --output "$archive" "$1"
    "$KIND" load image-archive "$archive" --name "$KIND_CLUSTER"
    rm -f "$archive"
  fi
}

build() {  # build <service dir> <image name> [build flags...]
  local dir="$1" image="$2" start=$SECONDS
  shift 2
  echo "building $image with $CONTAINER_ENGINE"
  DOCKER_BUILDKIT=1 "$CONTAINER_ENGINE" build --file "services/$dir/Dockerfile" --tag "$image" \
    ${build_flags[@]+"${build_flags[@]}"} "$@" .
  echo "built $image in $((SECONDS - start)) s"
  if [ "$LOAD" = 1 ]; then
    load "$image"
  fi
}

build gateway "${prefix}classifier-gateway:$IMAGE_TAG"
build results "${prefix}classifier-results:$IMAGE_TAG"
build classifier-worker "${prefix}classifier-worker:$IMAGE_TAG$suffix" --build-arg "TORCH_VARIANT=$TORCH_VARIANT" \
  ${worker_flags[@]+"${worker_flags[@]}"}
if [ "$ONNX_WORKER" = 1 ]; then
  build classifier-worker "${prefix}classifier-worker:$IMAGE_TAG-onnx" --target onnx
fi
