#!/usr/bin/env bash
# Create benchmarks/.venv-jaxley: our package (editable) + jaxley from PyPI.
# pip resolves one JAX version satisfying both our "jax>=0.4.30" and jaxley's pin.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$here/.venv-jaxley"
PY="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$PY" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -e "$root" jaxley
"$venv/bin/python" - <<'PY'
import jax, jaxley, equinox
from importlib.metadata import version
print("jax", jax.__version__, "| jaxley", version("jaxley"), "| equinox", equinox.__version__)
PY
