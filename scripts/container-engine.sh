#!/usr/bin/env bash
# Prints the container engine the image targets use: CONTAINER_ENGINE when set; else docker when
# its daemon answers; else podman when it is installed (a docker command without a running
# daemon, e.g. Docker Desktop not started or the CLI alone, cannot build); else docker when it
# is installed (its own error then says the daemon is down). Exits 1 when neither is installed.
set -euo pipefail
if [ -n "${CONTAINER_ENGINE:-}" ]; then
  echo "$CONTAINER_ENGINE"
elif command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo docker
elif command -v podman >/dev/null 2>&1; then
  echo podman
elif command -v docker >/dev/null 2>&1; then
  echo docker
else
  echo "neither docker nor podman is installed (set CONTAINER_ENGINE)" >&2
  exit 1
fi
