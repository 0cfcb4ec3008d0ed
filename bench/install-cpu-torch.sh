#!/usr/bin/env bash
# The CPU build of torch for the benchmark, in its own virtualenv (.tools/bench-cpu): the worker
# images ship it (TORCH_VARIANT=cpu), while the project's .venv has the CUDA build PyPI installs by
# default, whose `import torch` alone is ~510 MB resident, so the memory target would measure the
# wrong build. python -m bench runs every process that imports torch with this venv's python:
# bench.inprocess (rows 1, 2), the workers of the system rows (python -m classifier_worker),
# bench.naive_app, the Celery worker of row (7), and BentoML (bench/install-bentoml.sh with PROJECT_VENV=.tools/bench-cpu).
#
# It holds torch ${TORCH_VERSION}+cpu, the project's classifier-common and classifier-worker
# (editable, so it always runs this checkout's code) with their dependencies except torchvision
# (the PyPI torchvision does not import beside the CPU torch; the worker imports it only for
# torchvision-family models, which the benchmark does not use) and what bench.naive_app needs.
# Every other package is pinned to the version installed in the project's venv, so torch is the
# only difference. `bench` and `scripts` are imported from the repository (the harness starts
# these processes with cwd=REPO and `-m`).
#
# The CPU wheel comes from pip's usual sources: here /opt/wheels (pip's find-links); elsewhere set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -euo pipefail
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PROJECT_VENV="${PROJECT_VENV:-$REPO/.venv}"
VENV="$REPO/.tools/bench-cpu"
BASE_PYTHON="$("$PROJECT_VENV/bin/python" -c 'import sys; print(sys._base_executable)')"
# The naive app's (4) and the Celery worker's (7, bench/celery_app.py) packages.
NAIVE_APP_PACKAGES=(fastapi uvicorn python-multipart celery redis)

# Pins: every package of the project's venv at its version (not torch, torchvision, torch's CUDA
# libraries or the project's own editable packages), and torch's CPU build.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$PROJECT_VENV/bin/python" -m pip list --format=freeze --exclude-editable 2>/dev/null \
  | grep -viE '^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|pip|setuptools|wheel)==' > "$CONSTRAINTS" || true
echo "torch==${TORCH_VERSION}+cpu" >> "$CONSTRAINTS"

# The worker's dependencies with its [torch] extra as its pyproject.toml declares them, less torch,
# torchvision and our own.
WORKER_DEPS="$("$PROJECT_VENV/bin/python" -c '
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = project["dependencies"] + project.get("optional-dependencies", {}).get("torch", [])
name = lambda dep: re.match(r"[A-Za-z0-9._-]+", dep).group().lower()
print(" ".join(d for d in deps if name(d) not in ("torch", "torchvision") and not name(d).startswith("classifier-")))
' "$REPO/services/classifier-worker/pyproject.toml")"

STAMP="$VENV/.installed"
WANT="$(cat "$0" "$CONSTRAINTS" "$REPO/libs/common/pyproject.toml" "$REPO/services/classifier-worker/pyproject.toml" \
  | sha256sum | cut -d' ' -f1) $REPO"
CHECK="
import importlib.util, sys, torch, numpy, fastapi, uvicorn, multipart, efficientnet_lite_pytorch, celery, redis, onnxruntime
import classifier_common.config, classifier_worker.worker
ok = torch.__version__ == '${TORCH_VERSION}+cpu' and importlib.util.find_spec('torchvision') is None
ok = ok and classifier_worker.worker.__file__.startswith('$REPO/')
sys.exit(not ok)
"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  exit 0
fi
echo "installing torch ${TORCH_VERSION}+cpu into ${VENV#"$REPO/"}"
rm -rf "$VENV"
"$BASE_PYTHON" -m venv "$VENV"
pip_install() {
  "$VENV/bin/python" -m pip install --quiet --constraint "$CONSTRAINTS" "$@" 2>&1 \
    | { grep -v 'is ignored: it is neither' || true; }
}
# torch alone first: everything after it finds it installed, and the constraint keeps it.
pip_install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}+cpu" numpy
pip_install -e "$REPO/libs/common" $WORKER_DEPS "${NAIVE_APP_PACKAGES[@]}"
pip_install --no-deps -e "$REPO/services/classifier-worker"
if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torchvision") is None)'; then
  echo "torchvision got installed into $VENV: it does not import beside the CPU torch" >&2
  exit 1
fi
"$VENV/bin/python" -c "$CHECK"
echo "$WANT" > "$STAMP"
"$VENV/bin/python" -c "import torch; print('torch', torch.__version__, 'in ${VENV#"$REPO/"}')"
