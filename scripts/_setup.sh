# Sourced by scripts/demo and scripts/test: make .venv with llmplug and its dev tools, once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
PLUGIN_PROJECTS=$(ls plugins/*/pyproject.toml 2>/dev/null || true)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import llmplug, pytest, mypy' 2>/dev/null \
   || [ ! -f .venv/.installed ] \
   || [ -n "$(find pyproject.toml $PLUGIN_PROJECTS -newer .venv/.installed 2>/dev/null)" ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  # Plugins that are distributions of their own (plugins/<name>/pyproject.toml), editable.
  for proj in $PLUGIN_PROJECTS; do
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e "$(dirname "$proj")"
  done
  touch .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
