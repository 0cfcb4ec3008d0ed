#!/usr/bin/env bash
# Builds the three images (build context: the repository root) and loads them into the kind
# cluster, named as the chart expects: [<IMAGE_REGISTRY>/]<name>:<IMAGE_TAG>, the worker with
# -<TORCH_VARIANT> appended unless it is the CPU build (the chart's worker.image.tagSuffix).
# LOAD=0 builds only (e.g. to push to IMAGE_REGISTRY yourself).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
IMAGE_TAG="${IMAGE_TAG:?IMAGE_TAG is required}"
IMAGE_REGISTRY="${IMAGE_REGISTRY:-}"
TORCH_VARIANT="${TORCH_VARIANT:-cpu}"
KIND_CLUSTER="${KIND_CLUSTER:-classifier}"
DOCKER="${DOCKER:-docker}"
KIND="${KIND:-kind}"
LOAD="${LOAD:-1}"

prefix=""
[ -z "$IMAGE_REGISTRY" ] || prefix="${IMAGE_REGISTRY%/}/"
suffix=""
[ "$TORCH_VARIANT" = cpu ] || suffix="-$TORCH_VARIANT"

build() {  # build <service dir> <image name> [docker build args...]
  local dir="$1" image="$2"
  shift 2
  echo "building $image"
  DOCKER_BUILDKIT=1 "$DOCKER" build --file "services/$dir/Dockerfile" --tag "$image" "$@" .
  if [ "$LOAD" = 1 ]; then
    "$KIND" load docker-image "$image" --name "$KIND_CLUSTER"
  fi
}

build gateway "${prefix}classifier-gateway:$IMAGE_TAG"
build results "${prefix}classifier-results:$IMAGE_TAG"
build classifier-worker "${prefix}classifier-worker:$IMAGE_TAG$suffix" --build-arg "TORCH_VARIANT=$TORCH_VARIANT"
