"""Optimistic OMD rate sweeps: the ONS step against a naive reference and the rate plots' numbers."""

from __future__ import annotations

import numpy as np
import pytest

from certkit.theory import optimistic_omd


@pytest.mark.parametrize("optimistic", [True, False])
def test_optimistic_ons_matches_naive(optimistic: bool) -> None:
    rng = np.random.default_rng(0)
    d, t_len, gamma = 3, 25, 0.5
    a_idx = rng.integers(0, d, t_len)
    z = rng.standard_normal((t_len, d))
    got = optimistic_omd.optimistic_ons(a_idx, z, d, optimistic=optimistic, gamma=gamma)
    xh, m, a = np.zeros(d), np.zeros(d), np.eye(d)
    for t in range(t_len):
        x = xh - np.linalg.solve(a, m) / gamma if optimistic else xh.copy()
        assert np.allclose(got[t], x, atol=1e-10)
        g = np.zeros(d)
        g[a_idx[t]] = x[a_idx[t]] - z[t, a_idx[t]]
        e = g - m if optimistic else g
        a = a + np.outer(e, e)
        xh = xh - np.linalg.solve(a, g) / gamma
        m = g if optimistic else m
    assert got.shape == (t_len, d)


def test_strongly_convex_sweep_uses_exact_regret_and_rate() -> None:
    rows = optimistic_omd.strongly_convex_sweep(ts=(50, 200), noise=(0.0, 1.0), periods=(3.0, 1e9))
    for r in rows:
        c = optimistic_omd.drift_path(int(r["T"]), 2, 1.0, r["period"])
        v = np.full(int(r["T"]), r["noise"] ** 2)
        assert r["regret_oomd"] == pytest.approx(optimistic_omd.closed_form(c, v, algo="oomd"))
        assert r["rate"] <= np.log1p(r["sigma2"] + r["Sigma2"]) + 1e-12
    # the O(rate) constant stays bounded as T grows 4x
    assert optimistic_omd.rate_ratio(rows) < 3.0


def test_exp_concave_regret_within_constant_of_rate() -> None:
    rows = optimistic_omd.exp_concave_sweep(ds=(1, 4), ts=(100, 400), noise=(1.0,), flips=(0.5,), n_rep=3)
    assert all(r["regret_oomd"] <= 2.0 * r["rate"] for r in rows)
    assert rows[-1]["regret_oomd"] > rows[0]["regret_oomd"]       # grows with d and T
