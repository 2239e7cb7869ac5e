# Sourced by scripts/demo and scripts/test: make .venv with llmplug and its dev tools, once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
# Each plugins/<name>/ with a pyproject.toml is a distribution of its own: installed editable too,
# so the tests see its entry points.
PLUGIN_DISTS=()
stale=0
for p in pyproject.toml plugins/*/pyproject.toml; do
  if [ "$p" != pyproject.toml ] && [ -f "$p" ]; then PLUGIN_DISTS+=(-e "${p%/pyproject.toml}"); fi
  if [ "$p" -nt .venv/.installed ]; then stale=1; fi
done
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import llmplug, pytest, mypy' 2>/dev/null \
   || [ "$stale" = 1 ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' "${PLUGIN_DISTS[@]}"
  touch .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
