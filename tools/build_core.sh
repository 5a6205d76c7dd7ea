#!/usr/bin/env bash
# (Re)build the compiled core into the venv as an editable install. Incremental: CMake
# reuses build/core. Serialised with flock so parallel callers never share a half build.
# Set CERTKIT_CUDA=1 to also build the CUDA extension (needs nvcc).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$(pwd)/.venv}
mkdir -p build
exec 9>build/.core.lock
flock 9
cuda_flag=()
if [ "${CERTKIT_CUDA:-0}" = "1" ]; then cuda_flag=(-Ccmake.define.CERTKIT_CUDA=ON); fi
"$VENV/bin/python" -m pip --disable-pip-version-check install -q --no-build-isolation --no-deps \
  -Cbuild-dir=build/core "${cuda_flag[@]}" -e packages/core
