#!/usr/bin/env bash
# One-shot, idempotent set-up for a fresh Debian machine:
#   1. Debian packages (open3d needs libusb-1.0-0; the ranking attacks read WordNet;
#      the spectral ops use LAPACK from OpenBLAS (OpenMP build) when present; the report
#      page's browser test drives chromium through chromium-driver)
#   2. the virtual environment, with torch pinned to the local CPU wheel (constraints.txt)
#   3. the compiled core (certkit-core, scikit-build-core + CMake + pybind11)
#   4. every certkit distribution, editable, with its test extras
# A stamp keyed on every pyproject.toml, constraints.txt and this script skips step 2/4
# when nothing changed; the core's CMake build directory makes step 3 incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# ---- 1. Debian packages ---------------------------------------------------------------
DEB_PKGS=(libusb-1.0-0 libgomp1 wordnet-base libopenblas-openmp-dev chromium chromium-driver)
missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root or sudo to install Debian packages: ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ---- 2. virtual environment ---------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
stamp_src=$(cat constraints.txt tools/setup.sh packages/*/pyproject.toml | sha256sum | cut -c1-16)
stamp_file="$VENV/.certkit-setup-$stamp_src"
if [ ! -f "$stamp_file" ]; then
  log "installing build tools and dependencies (torch pinned to the local CPU wheel)"
  "${PIP[@]}" install -q -c constraints.txt --upgrade pip setuptools wheel
  # scipy-openblas32: certkit-core's run-time LAPACK (a dependency of the core, which step 4
  # installs with --no-deps), so development and CI load the library users get
  # uv: nox's backend for the fresh venvs of the test matrix (noxfile.py)
  "${PIP[@]}" install -q -c constraints.txt torch scikit-build-core pybind11 cmake ninja nox uv ruff mypy \
    "scipy-openblas32; sys_platform == 'linux'"
fi

# ---- 3. compiled core ---------------------------------------------------------------
bash tools/build_core.sh

# ---- 4. every distribution, editable --------------------------------------------------
if [ ! -f "$stamp_file" ]; then
  log "installing the certkit distributions (editable)"
  args=()
  for pkg in vision pointcloud rl rank theory certkit; do
    args+=(-e "packages/$pkg[test]")
  done
  "${PIP[@]}" install -q -c constraints.txt --no-build-isolation "${args[@]}"
  "${PIP[@]}" install -q -c constraints.txt -e "packages/core[torch,test]" --no-build-isolation --no-deps
  rm -f "$VENV"/.certkit-setup-*
  touch "$stamp_file"
fi
log "ready: $("$VENV/bin/python" -c 'import certkit.core as c; i=c.build_info(); print("certkit-core", i["version"], "|", i["compiler"], "| simd", i["simd"], "| openmp", i["openmp"], "| cuda", i["cuda"])')"
