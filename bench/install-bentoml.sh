#!/usr/bin/env bash
# BentoML for scenario (5) of the benchmark, in its own virtualenv (.tools/bentoml) so that its
# dependencies can never change the project's pins. It borrows torch, Pillow and the project's
# packages from PROJECT_VENV through a .pth file (added after its own site-packages, so where both
# have a package, BentoML's own pin wins inside this venv). `make bench-tools` passes the CPU-torch
# venv (.tools/bench-cpu, bench/install-cpu-torch.sh), as for the benchmark's other torch processes;
# the default is the project's .venv.
#
# 1.4.40 (the newest) needs certifi>=2026.10.19, which PyPI does not have here; 1.4.39 installs.
set -euo pipefail
BENTOML_VERSION="${BENTOML_VERSION:-1.4.39}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PROJECT_VENV="${PROJECT_VENV:-$REPO/.venv}"
VENV="$REPO/.tools/bentoml"
BASE_PYTHON="$("$PROJECT_VENV/bin/python" -c 'import sys; print(sys._base_executable)')"
PROJECT_SITE="$("$PROJECT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PTH_LINE="import site; site.addsitedir('$PROJECT_SITE')"

installed() {
  [ -x "$VENV/bin/bentoml" ] && "$VENV/bin/python" -c "import bentoml, sys; sys.exit(bentoml.__version__ != '$BENTOML_VERSION')" 2>/dev/null
}
pth() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

if installed; then
  # Installed: only borrow from PROJECT_VENV (it may have borrowed from another venv until now).
  if [ "$(cat "$(pth)/zz_project_venv.pth" 2>/dev/null)" = "$PTH_LINE" ]; then
    exit 0
  fi
else
  rm -rf "$VENV"
  "$BASE_PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "bentoml==$BENTOML_VERSION" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
fi
echo "$PTH_LINE" > "$(pth)/zz_project_venv.pth"
"$VENV/bin/python" -c "import bentoml, torch, classifier_worker; print('bentoml', bentoml.__version__, 'with torch', torch.__version__)"
