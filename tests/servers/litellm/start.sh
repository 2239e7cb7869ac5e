#!/usr/bin/env bash
# Install (once, cached outside the tree) and start the LiteLLM proxy the integration tests talk
# to: mock models, and llama-* models backed by a llama-server the tests start; no database,
# nothing fetched at run time.
# usage: start.sh RUNDIR PORT   (writes RUNDIR/litellm.pid and RUNDIR/litellm.log)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=$(cd "$1" && pwd); PORT=$2
VERSION=1.108.7
VENV=${LLMPLUG_LITELLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/llmplug/litellm-$VERSION}
if [ ! -x "$VENV/bin/litellm" ]; then
  echo "installing litellm[proxy]==$VERSION into $VENV (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "litellm[proxy]==$VERSION"
fi
cp "$HERE/custom_auth.py" "$RUN/"
# The fake-resp* bridge models call back into this same proxy, so point them at $PORT; the
# llama-* models at the llama-server the tests start on $LLMPLUG_LLAMA_LITELLM_PORT (the same
# default as tests/integration/conftest.py's llama_litellm_port).
LLAMA_PORT=${LLMPLUG_LLAMA_LITELLM_PORT:-4012}
sed -e "s#127.0.0.1:4000#127.0.0.1:$PORT#" -e "s#127.0.0.1:4012#127.0.0.1:$LLAMA_PORT#" \
  "$HERE/config_customauth.yaml" > "$RUN/config.yaml"
cd "$RUN"
export LITELLM_LOCAL_MODEL_COST_MAP=True   # no fetch of the price map (offline, and ~8 s faster)
export PYTHONPATH="$RUN${PYTHONPATH:+:$PYTHONPATH}"   # so custom_auth.py is importable
nohup "$VENV/bin/litellm" --config config.yaml --host 127.0.0.1 --port "$PORT" > litellm.log 2>&1 &
echo $! > litellm.pid
for _ in $(seq 1 240); do
  if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health/liveliness', timeout=2)" 2>/dev/null; then
    echo "litellm up on port $PORT (pid $(cat litellm.pid))"; exit 0
  fi
  kill -0 "$(cat litellm.pid)" 2>/dev/null || break
  sleep 0.5
done
echo "litellm failed to start"; tail -50 litellm.log; exit 1
