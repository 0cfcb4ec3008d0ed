#!/usr/bin/env bash
# BentoML for scenario (5) of the benchmark, in its own virtualenv (.tools/bentoml) so that its
# dependencies can never change the project's pins. It borrows torch, Pillow and the project's
# packages from the project's .venv through a .pth file (added after its own site-packages, so
# where both have a package, BentoML's own pin wins inside this venv).
#
# 1.4.40 (the newest) needs certifi>=2026.10.19, which PyPI does not have here; 1.4.39 installs.
set -euo pipefail
BENTOML_VERSION="${BENTOML_VERSION:-1.4.39}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PROJECT_VENV="${PROJECT_VENV:-$REPO/.venv}"
VENV="$REPO/.tools/bentoml"
BASE_PYTHON="$("$PROJECT_VENV/bin/python" -c 'import sys; print(sys._base_executable)')"

if [ -x "$VENV/bin/bentoml" ] && "$VENV/bin/python" -c "import bentoml, sys; sys.exit(bentoml.__version__ != '$BENTOML_VERSION')" 2>/dev/null; then
  exit 0
fi
rm -rf "$VENV"
"$BASE_PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "bentoml==$BENTOML_VERSION"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PROJECT_SITE="$("$PROJECT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$PROJECT_SITE')" > "$SITE/zz_project_venv.pth"
"$VENV/bin/python" -c "import bentoml, torch, classifier_worker; print('bentoml', bentoml.__version__, 'with torch', torch.__version__)"
