"""Embedding the core (examples/embed-cpp, examples/embed-pybind11): both are configured
with find_package(certkit_core CONFIG) against this installation (get_cmake_dir()), built and
run, and their outputs equal the Python API bit for bit.

Builds take ~10-30 s each (a compiler, CMake and, for the extension, pybind11 are needed; the
tests skip without them)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import certkit.core as ck
from certkit.core import stats

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CMAKE = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CMAKE is None or shutil.which("c++") is None, reason="needs cmake and a C++ compiler"),
    pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/ not in this checkout"),
]


def _build(src: Path, build: Path, *extra: str) -> None:
    assert CMAKE is not None
    cfg = [CMAKE, "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
           f"-Dcertkit_core_DIR={ck.get_cmake_dir()}", *extra]
    for cmd in (cfg, [CMAKE, "--build", str(build), "-j", "2"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def _hex32(values: np.ndarray) -> list[str]:
    return [float(v).hex() for v in values.astype(np.float64)]


def _canon(tokens: list[str]) -> list[str]:
    # C's %a and Python's float.hex() spell the same number differently
    return [float.fromhex(t).hex() for t in tokens]


def test_embed_cpp_equals_python(tmp_path: Path) -> None:
    _build(EXAMPLES / "embed-cpp", tmp_path / "build")
    r = subprocess.run([str(tmp_path / "build" / "embed_cpp")], capture_output=True, text=True,
                       timeout=60, check=True)
    out = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in r.stdout.strip().splitlines()}
    assert out["version"].split()[0] == ck.__version__
    assert out["simd"] == ck.build_info()["simd"]
    ref = ck.gaussian_noise(8, 0.5, seed=42, offset=3, stream=7)
    assert _canon(out["gaussian_c"].split()) == _hex32(ref)
    assert _canon(out["gaussian_cpp"].split()) == _hex32(ref)
    lo = float(stats.clopper_pearson(990, 1000, 0.001, "lower"))
    two = stats.clopper_pearson(990, 1000, 0.001, "two-sided")
    assert float.fromhex(out["cp_lower"]) == lo
    assert float.fromhex(out["cp_lower_cpp"]) == lo
    assert [float.fromhex(t) for t in out["cp_two_sided"].split()] == [float(two[0]), float(two[1])]
    assert out["error"].startswith("1 k: expected 0 <= k <= n")


def test_embed_pybind11_equals_python(tmp_path: Path) -> None:
    pybind11 = pytest.importorskip("pybind11")
    build = tmp_path / "build"
    _build(EXAMPLES / "embed-pybind11", build, f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
           f"-DPython_EXECUTABLE={sys.executable}")
    so = next(build.glob("certkit_embed_example*.so"))
    spec = importlib.util.spec_from_file_location("certkit_embed_example", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.certkit_version == ck.__version__
    got = mod.gaussian(100_003, 0.25, 9, stream=4, offset=11)
    ref = ck.gaussian_noise(100_003, 0.25, seed=9, offset=11, stream=4)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    for k, n, alpha in [(990, 1000, 0.001), (0, 5, 0.05), (10**6, 10**6, 1e-9)]:
        assert mod.cp_lower(k, n, alpha) == float(stats.clopper_pearson(k, n, alpha, "lower"))
