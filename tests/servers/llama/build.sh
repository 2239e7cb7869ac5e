#!/usr/bin/env bash
# Build (once, cached outside the tree) llama.cpp's `llama-server`, a peer nobody here wrote that
# does real inference and speaks Chat Completions, Responses and Anthropic Messages. The source is
# the llama.cpp that the llama-cpp-python sdist vendors (there is no other pinned, registry-served
# copy of it). Prints nothing on a cache hit but the binary's path (last line of stdout).
# usage: build.sh            (env: LLMPLUG_LLAMA_DIR overrides the cache directory)
set -euo pipefail
VERSION=0.3.36
LLAMA_COMMIT=0c1e57098   # the llama.cpp commit that sdist vendors (no git metadata in it)
DIR=${LLMPLUG_LLAMA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llmplug/llama-server-$VERSION}
BIN=$DIR/llama-server
TEMPLATE=$DIR/Qwen-Qwen2.5-7B-Instruct.jinja
if [ -x "$BIN" ] && [ -f "$TEMPLATE" ]; then echo "$BIN"; exit 0; fi

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing ${need[*]} with apt-get" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >&2
fi

mkdir -p "$DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmplug-llama-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "building llama-server from llama-cpp-python==$VERSION's vendored llama.cpp (once, ~5 min)" >&2
PY=${PYTHON:-python3}
# --no-binary for this one package only: `:all:` would also build its build backend's own
# dependencies from source just to read the sdist's metadata (minutes, for nothing).
if [ -n "${LLMPLUG_LLAMA_SDIST:-}" ]; then cp "$LLMPLUG_LLAMA_SDIST" "$WORK/"; else
  "$PY" -m pip download -q --disable-pip-version-check "llama-cpp-python==$VERSION" \
    --no-deps --no-binary llama-cpp-python -d "$WORK" >&2
fi
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
  -DLLAMA_BUILD_COMMIT="$LLAMA_COMMIT" -DLLAMA_BUILD_NUMBER=0 >&2
cmake --build "$WORK/build" --target llama-server -j"${LLMPLUG_BUILD_JOBS:-2}" >&2
# Tool calls need a chat template with tool markup; llama.cpp (MIT) ships this one.
cp "$SRC/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" "$TEMPLATE.tmp"
mv "$TEMPLATE.tmp" "$TEMPLATE"
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
