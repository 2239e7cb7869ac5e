# Sourced by scripts/demo and scripts/test: make .venv with llmplug and its dev tools, once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import llmplug, llmplug_anthropic, pytest, mypy' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ] \
   || [ plugins/llmplug-anthropic/pyproject.toml -nt .venv/.installed ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  # Distributions of their own in plugins/ (an extra of llmplug on PyPI; from the tree here),
  # editable so the tests see their entry points and their current code.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ./plugins/llmplug-anthropic
  touch .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
