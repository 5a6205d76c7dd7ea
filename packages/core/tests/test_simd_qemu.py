"""The installed core on older x86-64 CPUs, emulated by qemu-user (Debian's ``qemu-user``):
Westmere (SSE4.2, no AVX), Haswell (AVX2 + FMA) and Skylake-Server (AVX-512; qemu's TCG does
not emulate AVX-512, so there the CPU reports AVX2 and the avx2 variant must be chosen).

In each, a child Python imports certkit.core, checks that the best variant the emulated CPU
runs was chosen, runs every runnable variant, and prints digests of the sampler's output and
the statistics; they must equal this host's (sampler bit for bit, statistics to 1e-13).
Opt-in (about a minute per CPU model): ``CERTKIT_QEMU=1 pytest packages/core/tests/test_simd_qemu.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import certkit.core as ck
from certkit.core._ext import core_ext

QEMU = shutil.which("qemu-x86_64")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CERTKIT_QEMU") != "1", reason="opt-in: CERTKIT_QEMU=1"),
    pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (Debian: qemu-user)"),
]

CHILD = r"""
import hashlib, json
import numpy as np
import certkit.core as ck
from certkit.core import stats
from certkit.core._ext import core_ext

def digest():
    parts = [ck.gaussian_noise(20_003, 0.5, seed=3, offset=5),
             ck.laplace_noise(5_001, 1.0, seed=4, offset=1),
             ck.uniform_noise(5_001, seed=6, dtype=np.float64),
             ck.random_bits(4_001, seed=7, offset=2)]
    return hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest()

def stat_values():
    k = np.arange(0, 1001, 37); n = np.full_like(k, 1000)
    return np.concatenate([stats.clopper_pearson(k, n, 0.001, "lower"),
                           stats.norm_ppf(np.linspace(0.001, 0.999, 51))]).tolist()

info = ck.build_info()
out = {"simd": info["simd"], "cpu": info["simd_cpu"], "runs": {}}
for v in info["simd_variants"]:
    if core_ext._set_simd(v):
        out["runs"][v] = {"digest": digest(), "stats": stat_values()}
print(json.dumps(out))
"""


def _host() -> tuple[str, list[float]]:
    # the baseline variant; the other variants equal it (test_simd_dispatch.py)
    ns: dict[str, object] = {}
    exec(CHILD.split("info = ck.build_info()")[0], ns)  # defines digest, stat_values
    before = ck.build_info()["simd"]
    try:
        if before != "native":
            assert core_ext._set_simd("baseline")
        return ns["digest"](), ns["stat_values"]()  # type: ignore[operator]
    finally:
        if before != "native":
            core_ext._set_simd(before)


@pytest.mark.skipif(ck.build_info()["simd"] == "native", reason="a -march=native build runs on this CPU only")
@pytest.mark.parametrize(("cpu", "expected"), [("Westmere", "baseline"), ("Haswell", "avx2"),
                                               ("Skylake-Server", "avx2")])
def test_runs_and_agrees_on_emulated_cpu(cpu: str, expected: str) -> None:
    assert QEMU is not None
    r = subprocess.run([QEMU, "-cpu", cpu, sys.executable, "-c", CHILD], capture_output=True,
                       text=True, timeout=900, check=False,
                       env=dict(os.environ, OMP_NUM_THREADS="1", CERTKIT_SIMD=""))
    assert r.returncode == 0, f"{cpu}: exit {r.returncode}\n{r.stderr[-2000:]}"
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["simd"] == expected, got
    assert got["cpu"][-1] == expected
    digest, values = _host()
    assert set(got["runs"]) == {v for v in ck.build_info()["simd_variants"] if v in got["cpu"]}
    for variant, run in got["runs"].items():
        assert run["digest"] == digest, f"{cpu}/{variant}: sampler differs"
        np.testing.assert_allclose(run["stats"], values, rtol=1e-13, atol=0,
                                   err_msg=f"{cpu}/{variant}")
