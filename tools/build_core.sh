#!/usr/bin/env bash
# (Re)build the compiled core into the venv as an editable install. Incremental: CMake
# reuses packages/core/build/core. Serialised with flock so parallel callers never share a
# half build.
# CERTKIT_ARCH: -march of the baseline (default x86-64-v2: the portable build with the AVX2 /
# AVX-512 kernel variants chosen at run time, as in the wheels); CERTKIT_ARCH=native builds
# for this machine only. CERTKIT_CUDA=1 also builds the CUDA extension (needs nvcc).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$(pwd)/.venv}
mkdir -p build
exec 9>build/.core.lock
flock 9
cuda_flag=()
if [ "${CERTKIT_CUDA:-0}" = "1" ]; then cuda_flag=(-Ccmake.define.CERTKIT_CUDA=ON); fi
# The CMake source is packages/core/cpp (a symlink to cpp/, so the sdist carries it); a build
# directory configured from another source path is reset once.
cache=packages/core/build/core/CMakeCache.txt
if [ -f "$cache" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd)/packages/core/cpp" "$cache"; then
  rm -rf packages/core/build/core/CMakeCache.txt packages/core/build/core/CMakeFiles
fi
"$VENV/bin/python" -m pip --disable-pip-version-check install -q --no-build-isolation --no-deps \
  -Cbuild-dir=build/core -Ccmake.define.CERTKIT_ARCH="${CERTKIT_ARCH:-x86-64-v2}" "${cuda_flag[@]}" \
  -e packages/core
