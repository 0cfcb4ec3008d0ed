#!/usr/bin/env bash
# CI only: PyTorch's index is unreachable from this project's CI machines, which keep torch's CPU
# build on local disk (pip's find-links). Writes a PEP 503 index of those wheels into DIR
# (DIR/simple/torch/) and prints the worker build flags that use it: the index mounted into the
# build, TORCH_INDEX_URL pointing at it, the wheel's torch version, and no torchvision (PyPI's
# torchvision does not import beside this CPU torch, and no CPU torchvision wheel is on disk).
# The Dockerfile's variant check still applies: the build fails unless the torch is a CPU build.
set -euo pipefail
DIR="${1:?usage: torch-index.sh DIR}"
WHEELS="${TORCH_WHEELS:-/opt/wheels}"
wheel="$(ls "$WHEELS"/torch-*+cpu-cp311-*.whl 2>/dev/null | sort -V | tail -1)"
[ -n "$wheel" ] || { echo "torch-index: no torch-*+cpu-cp311 wheel in $WHEELS" >&2; exit 1; }
name="$(basename "$wheel")"
version="$(echo "$name" | sed -n 's/^torch-\([^+]*\)+cpu-.*/\1/p')"
mkdir -p "$DIR/simple/torch"
ln -f "$wheel" "$DIR/simple/torch/$name" 2>/dev/null || cp -f "$wheel" "$DIR/simple/torch/$name"
printf '<!DOCTYPE html>\n<html><body><a href="%s">%s</a></body></html>\n' "$name" "$name" >"$DIR/simple/torch/index.html"
printf '<!DOCTYPE html>\n<html><body><a href="torch/">torch</a></body></html>\n' >"$DIR/simple/index.html"
echo "-v $DIR:/torch-index:ro --build-arg TORCH_INDEX_URL=file:///torch-index/simple --build-arg TORCH_VERSION=$version --build-arg TORCHVISION_VERSION=none"
