#!/usr/bin/env bash
# CI: `make container-e2e` with podman on this project's CI machines (no registry, no PyPI
# torch index, no CAP_SYS_RESOURCE; see prepare-podman.sh and torch-index.sh). The flags below
# are build-time only: the CA bundle so pip inside the builds trusts this network's TLS, the
# local base image (--pull=never), and the worker's CPU torch from a local index.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
.ci/containers/prepare-podman.sh
echo "podman ready in $((SECONDS - start)) s"
index_dir="$(mktemp -d)"
trap 'rm -rf "$index_dir"' EXIT
export CONTAINER_ENGINE=podman
export IMAGE_BUILD_FLAGS="--pull=never --network host -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
WORKER_BUILD_FLAGS="$(.ci/containers/torch-index.sh "$index_dir")"
export WORKER_BUILD_FLAGS
make container-e2e
echo "podman storage: $(du -sh "$(podman info --format '{{.Store.GraphRoot}}')" | cut -f1); total $((SECONDS - start)) s"
