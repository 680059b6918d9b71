# Shared by quickstart.sh and test.sh: create (once) and activate the project's virtual environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "neurosurrogate needs Python >= 3.11 (set PYTHON=/path/to/python3.11)")'
VENV="${NEUROSURROGATE_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$ROOT"
