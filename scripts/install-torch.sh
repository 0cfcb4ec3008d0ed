#!/usr/bin/env bash
# Installs torch and torchvision (the versions pinned in requirements/constraints.txt) into the
# venv of PIP, in the build that fits this machine (`make setup` runs it):
#   cpu     Linux without an NVIDIA GPU: the CPU build from PyTorch's CPU index (no CUDA libraries)
#   cuXXX   Linux with an NVIDIA GPU (nvidia-smi lists one): the CUDA build from PyTorch's cuXXX index
#   pypi    macOS (and any other system): PyPI's build
# TORCH_VARIANT=cpu|cuXXX|pypi overrides the choice; TORCH_CUDA_VARIANT (default cu128) is the
# CUDA index used when a GPU is found. When the chosen index does not answer within a few
# seconds, it says so and installs the pinned versions from the package index pip is configured
# with (PyPI's build: the CUDA build on Linux) instead of hanging.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PIP="${PIP:?PIP (the venv pip) is required}"
PYTHON="${PYTHON:-$(dirname "$PIP")/python}"
CONSTRAINTS="${CONSTRAINTS:-$ROOT/requirements/constraints.txt}"
TORCH_INDEX_BASE="${TORCH_INDEX_BASE:-https://download.pytorch.org/whl}"
TORCH_CUDA_VARIANT="${TORCH_CUDA_VARIANT:-cu128}"
PROBE_TIMEOUT="${TORCH_INDEX_TIMEOUT:-5}"

pin() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }
torch_version="$(pin torch)"
vision_version="$(pin torchvision)"
[ -n "$torch_version" ] && [ -n "$vision_version" ] || { echo "no torch/torchvision pin in $CONSTRAINTS" >&2; exit 1; }

variant="${TORCH_VARIANT:-}"
if [ -z "$variant" ]; then
  if [ "$(uname -s)" != Linux ]; then
    variant=pypi
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    variant="$TORCH_CUDA_VARIANT"
  else
    variant=cpu
  fi
  reason="detected"
else
  reason="TORCH_VARIANT"
fi
case "$variant" in
  cpu | cu[0-9]* | pypi) ;;
  *) echo "TORCH_VARIANT must be cpu, cuXXX (e.g. cu128) or pypi, not '$variant'" >&2; exit 2 ;;
esac

quiet() { "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }; }

if [ "$variant" != pypi ]; then
  index="$TORCH_INDEX_BASE/$variant"
  # The index page of torch, fetched with a short timeout: an unreachable index would otherwise
  # cost pip's retries on every request.
  if "$PYTHON" - "$index/torch/" "$PROBE_TIMEOUT" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()
except Exception as exc:
    print(f"  {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
  then
    echo "torch $torch_version ($variant build, $reason) from $index"
    quiet "$PIP" install --quiet --index-url "$index" --extra-index-url https://pypi.org/simple \
      -c <(grep -vE '^(torch|torchvision)==' "$CONSTRAINTS") \
      "torch==$torch_version+$variant" "torchvision==$vision_version+$variant"
    exit 0
  fi
  echo "PyTorch's $variant index ($index) is unreachable: installing torch $torch_version from pip's configured index instead (PyPI's build; on Linux that is the CUDA build)"
fi
echo "torch $torch_version (PyPI's build) from pip's configured index"
quiet "$PIP" install --quiet -c "$CONSTRAINTS" "torch==$torch_version" "torchvision==$vision_version"
