#!/usr/bin/env bash
# CI only: makes podman usable on this project's CI machines, which have no container registry
# and (as virtual machines without CAP_SYS_RESOURCE) cannot let runc set process rlimits.
# Users' Docker or podman need none of this; the Dockerfiles stay as users build them.
#   1. installs podman, runc and debootstrap from Debian when missing (as root);
#   2. when this machine refuses raising RLIMIT_NOFILE, registers runc-norlimit (this directory)
#      as podman's runtime;
#   3. when the Dockerfiles' base image is not in podman's storage and no registry answers,
#      builds a stand-in for it from Debian bookworm (debootstrap + Debian's python3.11) under
#      the same name, so `FROM python:3.11.13-slim-bookworm` resolves with --pull=never.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ENGINE="${CONTAINER_ENGINE:-podman}"

if [ "$ENGINE" != podman ]; then
  echo "prepare-podman: CONTAINER_ENGINE=$ENGINE, nothing to prepare"
  exit 0
fi

missing=""
for pkg in podman runc debootstrap; do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || { echo "prepare-podman: needs root to install:$missing" >&2; exit 1; }
  echo "prepare-podman: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$missing >/dev/null
fi

# runc sets the spec's RLIMIT_NOFILE (above this machine's hard limit): without CAP_SYS_RESOURCE
# every container fails to start. Probe the same operation here.
if ! python3 -c 'import resource; s, h = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (s, h + 1))' 2>/dev/null; then
  install -m 0755 "$HERE/runc-norlimit" /usr/local/bin/runc-norlimit
  conf=/etc/containers/containers.conf
  if ! grep -q runc-norlimit "$conf" 2>/dev/null; then
    echo "prepare-podman: this machine cannot raise rlimits; podman runs containers through /usr/local/bin/runc-norlimit"
    mkdir -p /etc/containers
    cat >>"$conf" <<'CONF'

# CI machines without CAP_SYS_RESOURCE (.ci/containers/prepare-podman.sh)
[engine]
runtime = "runc-norlimit"
[engine.runtimes]
runc-norlimit = ["/usr/local/bin/runc-norlimit"]
CONF
  fi
fi

base="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/services/gateway/Dockerfile")"
case "$base" in */*) ;; *) base="docker.io/library/$base" ;; esac
if podman image exists "$base"; then
  exit 0
fi
if timeout 30 podman pull -q "$base" >/dev/null 2>&1; then
  exit 0
fi
echo "prepare-podman: no registry serves $base; building a stand-in from Debian bookworm"
start=$SECONDS
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
tar -C "$rootfs" -c . | podman import -q - localhost/classifier-ci/debian:bookworm >/dev/null
# Debian's python3.11 (3.11.2) where the official image has its own build: the same minor
# version, standing in at /usr/local/bin/python as the official image has it.
podman build --pull=never --network host -q -t "$base" -f - "$HERE" >/dev/null <<'DOCKERFILE'
FROM localhost/classifier-ci/debian:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3.11 python3.11-venv python3-pip-whl python3-setuptools-whl ca-certificates netbase tzdata >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3
DOCKERFILE
podman rmi -f localhost/classifier-ci/debian:bookworm >/dev/null
echo "prepare-podman: $base stand-in built in $((SECONDS - start)) s"
