"""Compiled spectral ops against naive / scipy references."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from scipy.spatial import cKDTree

from certkit.core import spectral as S


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * (1 + 0.1 * rng.random((n, 1)))


@pytest.fixture(params=["envelope", "supernodal"])
def factor_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a truncated-solver test with each factor of the shift-invert solves: the RCM
    envelope LDL^T and the nested-dissection supernodal one (auto picks by size)."""
    from certkit.core._ext import core_ext

    core_ext.spectral._set_factor_mode(request.param)
    try:
        yield request.param
    finally:
        core_ext.spectral._set_factor_mode("auto")


def _naive_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    n = len(x)
    idx = np.zeros((n, k), np.int64)
    dd = np.zeros((n, k))
    for i in range(n):
        order = sorted((d2[i, j], j) for j in range(n) if j != i)[:k]
        idx[i] = [j for _, j in order]
        dd[i] = [d for d, _ in order]
    return idx, dd


def _naive_laplacian(x: np.ndarray, k: int, weight: str, normalized: bool) -> np.ndarray:
    idx, d2 = _naive_knn(x, k)
    n = len(x)
    A = np.zeros((n, n))
    sigma = np.sqrt(d2).mean()
    for i in range(n):
        for t in range(k):
            w = 1.0 if weight == "binary" else np.exp(-d2[i, t] / (2 * sigma**2))
            A[i, idx[i, t]] = A[idx[i, t], i] = w
    D = A.sum(1)
    if normalized:
        return np.eye(n) - A / np.sqrt(np.outer(D, D))
    return np.diag(D) - A


@pytest.mark.parametrize("n,k", [(50, 1), (120, 7), (300, 16)])
def test_knn_matches_naive(n: int, k: int) -> None:
    x = _cloud(n, n)
    idx, d2 = S.knn(x, k)
    ridx, rd2 = _naive_knn(x, k)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(d2, rd2, rtol=1e-12, atol=1e-15)


def test_knn_batched_and_ckdtree() -> None:
    xs = np.stack([_cloud(400, s) for s in range(3)])
    idx, _ = S.knn(xs, 10)
    for b in range(3):
        _, ref = cKDTree(xs[b]).query(xs[b], 11)
        np.testing.assert_array_equal(idx[b], ref[:, 1:])


def test_knn_duplicates_are_zero_distance_neighbours() -> None:
    x = np.repeat(_cloud(20, 1), 3, axis=0)  # every point three times
    idx, d2 = S.knn(x, 2)
    assert np.all(d2 == 0.0)
    for i in range(len(x)):
        assert i not in idx[i]
        assert np.all(np.all(x[idx[i]] == x[i], axis=1))


@pytest.mark.parametrize("weight", ["binary", "gaussian"])
@pytest.mark.parametrize("normalized", [False, True])
def test_laplacian_matches_naive(weight: str, normalized: bool) -> None:
    x = _cloud(80, 3)
    ip, ix, dt = S.laplacian(x, 6, weight=weight, normalized=normalized)  # type: ignore[arg-type]
    L = sp.csr_matrix((dt, ix, ip), shape=(80, 80)).toarray()
    np.testing.assert_allclose(L, _naive_laplacian(x, 6, weight, normalized), atol=1e-12)
    assert np.all(np.diff(ip) > 0)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 150])
def test_dense_eigh_matches_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n))
    a = a + a.T
    w, V = S.eigh(a)
    wn = np.linalg.eigvalsh(a)
    np.testing.assert_allclose(w, wn, rtol=1e-10, atol=1e-10 * np.abs(wn).max())
    assert np.all(np.diff(w) >= 0)
    np.testing.assert_allclose(a @ V, V * w, atol=1e-9 * max(1.0, np.abs(wn).max()))
    np.testing.assert_allclose(V.T @ V, np.eye(n), atol=1e-10)
    big = np.argmax(np.abs(V) >= np.abs(V).max(axis=0) * (1 - 1e-9), axis=0)
    assert np.all(V[big, np.arange(n)] > 0)


def test_dense_eigh_repeated_and_diagonal() -> None:
    a = np.diag([3.0, 1.0, 1.0, 2.0, 0.0])
    w, V = S.eigh(a)
    np.testing.assert_allclose(w, [0, 1, 1, 2, 3])
    np.testing.assert_allclose(np.abs(V.T @ V), np.eye(5), atol=1e-14)


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("n,m", [(200, 10), (600, 60)])
def test_truncated_matches_scipy(n: int, m: int, normalized: bool, factor_mode: str) -> None:
    x = _cloud(n, 7)
    ip, ix, dt = S.laplacian(x, 10, normalized=normalized)
    L = sp.csr_matrix((dt, ix, ip), shape=(n, n))
    w, V = S.eigsh_csr(ip, ix, dt, m)
    ref = np.sort(eigsh(L, k=m, sigma=-1e-3, which="LM", return_eigenvectors=False))
    full = np.linalg.eigvalsh(L.toarray())[:m]
    np.testing.assert_allclose(w, full, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(w, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(L @ V, V * w, atol=1e-8)
    np.testing.assert_allclose(V.T @ V, np.eye(m), atol=1e-12)
    assert _lanczos_certified(ip, ix, dt, m)


def test_truncated_disconnected_graph_keeps_multiplicity_of_zero(factor_mode: str) -> None:
    parts = [_cloud(150, s) + 10 * s for s in range(3)]
    x = np.concatenate(parts)
    w, _V = S.graph_basis(x, 5, 8)
    assert np.sum(np.abs(w) < 1e-10) == 3
    ip, ix, dt = S.laplacian(x, 5)
    full = np.linalg.eigvalsh(sp.csr_matrix((dt, ix, ip), shape=(450, 450)).toarray())[:8]
    np.testing.assert_allclose(w, full, atol=1e-9)


def test_truncated_unequal_components_get_their_share_and_more(factor_mode: str) -> None:
    # A path graph of 300 vertices (eigenvalues 2 - 2 cos(pi j / 300): dense near 0) next to
    # a 20 x 30 grid. Each component is first solved for its share of the m pairs
    # (1.5 m n_c / n + 8 = 38 for the path); 45-46 of the 60 smallest belong to the path, so
    # it must be solved again: the first round alone would return grid eigenvalues in their
    # place. The result is exact because each component's missing eigenvalues lie above
    # the m-th smallest of the union.
    def lap(A: sp.spmatrix) -> sp.csr_matrix:
        return (sp.diags(np.asarray(A.sum(1)).ravel()) - A).tocsr()

    def line(k: int) -> sp.spmatrix:
        return sp.diags([np.ones(k - 1), np.ones(k - 1)], [1, -1])

    path = lap(line(300))
    grid = lap(sp.kron(sp.eye(20), line(30)) + sp.kron(line(20), sp.eye(30)))
    L = sp.block_diag([path, grid]).tocsr()
    m = 60
    w, V = S.eigsh_csr(L.indptr, L.indices, L.data, m)
    full = np.linalg.eigvalsh(L.toarray())[:m]
    assert np.sum(np.abs(V[:300]).max(0) > 0) > int(np.ceil(1.5 * m * 300 / 900)) + 8  # 45-46 (a tie)
    np.testing.assert_allclose(w, full, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(L @ V, V * w, atol=1e-8)
    np.testing.assert_allclose(V.T @ V, np.eye(m), atol=1e-12)


def test_truncated_finds_exactly_repeated_eigenvalues(factor_mode: str) -> None:
    # A ring graph (each point's 2 nearest neighbours are its ring neighbours): every nonzero
    # eigenvalue 2 - 2 cos(2 pi j / n) is double, which one Krylov space cannot resolve. The
    # inertia check must notice and still return both copies.
    n, m = 300, 11
    t = 2 * np.pi * np.arange(n) / n
    x = np.stack([np.cos(t), np.sin(t), np.zeros(n)], axis=1)
    w, V = S.graph_basis(x, 2, m)
    ref = np.sort(2 - 2 * np.cos(2 * np.pi * np.r_[0, np.repeat(np.arange(1, 6), 2)] / n))
    np.testing.assert_allclose(w, ref, rtol=1e-9, atol=1e-12)
    ip, ix, dt = S.laplacian(x, 2)
    L = sp.csr_matrix((dt, ix, ip), shape=(n, n))
    np.testing.assert_allclose(L @ V, V * w, atol=1e-9)
    np.testing.assert_allclose(V.T @ V, np.eye(m), atol=1e-12)


def test_truncated_many_pairs_point_cloud_matches_dense(factor_mode: str) -> None:
    x = _cloud(700, 11)
    ip, ix, dt = S.laplacian(x, 10)
    w, V = S.eigsh_csr(ip, ix, dt, 100)
    L = sp.csr_matrix((dt, ix, ip), shape=(700, 700))
    full = np.linalg.eigvalsh(L.toarray())[:100]
    np.testing.assert_allclose(w, full, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(L @ V, V * w, atol=1e-8)
    np.testing.assert_allclose(V.T @ V, np.eye(100), atol=1e-12)
    assert _lanczos_certified(ip, ix, dt, 100)


def test_graph_basis_batched_equals_single_and_full(factor_mode: str) -> None:
    xs = np.stack([_cloud(160, s) for s in range(4)])
    w, V = S.graph_basis(xs, 8, 12)
    for b in range(4):
        w1, V1 = S.graph_basis(xs[b], 8, 12)
        np.testing.assert_array_equal(w[b], w1)
        np.testing.assert_array_equal(V[b], V1)
    wf, Vf = S.graph_basis(xs[0], 8)
    assert Vf.shape == (160, 160)
    np.testing.assert_allclose(wf[:12], w[0], atol=1e-9)
    # same eigenvectors up to the deterministic sign (non-degenerate spectrum here)
    np.testing.assert_allclose(np.abs(Vf[:, 1:12].T @ V[0][:, 1:12]), np.eye(11), atol=1e-6)


def test_gft_roundtrip_and_band_filter() -> None:
    x = _cloud(120, 5)
    _, V = S.graph_basis(x, 8)
    c = S.gft(x, V)
    np.testing.assert_allclose(S.igft(c, V), x, atol=1e-10)
    lo = S.band_filter(x, V, 0, 20)
    hi = S.band_filter(x, V, 20)
    np.testing.assert_allclose(lo + hi, x, atol=1e-10)
    np.testing.assert_allclose(S.gft(lo, V)[20:], 0, atol=1e-10)


def test_fps_matches_naive() -> None:
    x = _cloud(90, 2)
    got = S.farthest_point_sample(x, 12, start=3)
    chosen = [3]
    dist = ((x - x[3]) ** 2).sum(1)
    for _ in range(11):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, ((x - x[j]) ** 2).sum(1))
    assert got.tolist() == chosen


def test_normalize_unit_sphere() -> None:
    x = _cloud(50, 1) * 7 + 3
    out, c, s = S.normalize_unit_sphere(x)
    np.testing.assert_allclose(c, x.mean(0))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1).max(), 1.0)
    same, _, s1 = S.normalize_unit_sphere(np.ones((4, 3)))
    assert s1 == 1.0 and np.all(same == 0)
    assert s > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: S.knn(np.full((10, 3), np.nan), 2),
        lambda: S.knn(np.zeros((10, 2)), 2),
        lambda: S.knn(np.zeros((5, 3)), 5),
        lambda: S.knn(np.zeros((5, 3)), 0),
        lambda: S.graph_basis(np.zeros((5, 3)), 2, 6),
        lambda: S.eigh(np.zeros((3, 4))),
        lambda: S.eigh(np.array([[np.inf]])),
        lambda: S.eigsh_csr([0, 1, 2], [0, 1], [-1.0, 1.0], 1),
        lambda: S.eigsh_csr([0, 1, 5], [0, 1], [1.0, 1.0], 1),
        lambda: S.laplacian(np.zeros((10, 3)), 3, weight="cosine"),  # type: ignore[arg-type]
        lambda: S.farthest_point_sample(np.zeros((4, 3)), 5),
    ],
)
def test_bad_input_raises_value_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


def test_knn_rejects_non_numeric() -> None:
    with pytest.raises(TypeError):
        S.knn(np.array([["a", "b", "c"]] * 4), 1)


def _safe_mode(on: bool) -> None:
    from certkit.core._ext import core_ext

    core_ext.spectral._set_lanczos_safe_mode(on)


def _lanczos_certified(ip: np.ndarray, ix: np.ndarray, dt: np.ndarray, m: int) -> bool:
    """Whether the truncated solver certified its pairs by Lanczos (a failed run falls back
    to the dense solver, which would hide a wrong factor from the pair checks)."""
    from certkit.core._ext import core_ext

    return int(core_ext.spectral.eigh_truncated(ip, ix, dt, m)[2]) > 0


def _check_pairs(L: sp.csr_matrix, w: np.ndarray, V: np.ndarray) -> None:
    m = w.size
    full = np.linalg.eigvalsh(L.toarray())[:m]
    np.testing.assert_allclose(w, full, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(L @ V, V * w, atol=1e-8)
    np.testing.assert_allclose(V.T @ V, np.eye(m), atol=1e-12)


def test_truncated_fast_path_equals_safe_path(factor_mode: str) -> None:
    # m >= 24: the default run shifts inside the wanted spectrum (indefinite LDL^T) and
    # reorthogonalises every other step; the safe path shifts below 0 and reorthogonalises
    # every step. Both must give the same pairs (signs are fixed, eigenvalues simple here).
    x = _cloud(900, 5)
    ip, ix, dt = S.laplacian(x, 10)
    L = sp.csr_matrix((dt, ix, ip), shape=(900, 900))
    w, V = S.eigsh_csr(ip, ix, dt, 80)
    _safe_mode(True)
    try:
        ws, Vs = S.eigsh_csr(ip, ix, dt, 80)
    finally:
        _safe_mode(False)
    _check_pairs(L, w, V)
    _check_pairs(L, ws, Vs)
    np.testing.assert_allclose(w, ws, rtol=1e-9, atol=1e-11)
    gaps = np.diff(ws)
    simple = np.r_[gaps[0], np.minimum(gaps[1:], gaps[:-1]), gaps[-1]] > 1e-4
    np.testing.assert_allclose(V[:, simple], Vs[:, simple], atol=1e-6)


@pytest.mark.parametrize(
    "shape", ["ring", "solid", "gaussian"], ids=["ring-1d", "solid-3d", "gaussian-weights"]
)
def test_truncated_interior_shift_when_weyl_guess_is_off(shape: str, factor_mode: str) -> None:
    # The first shift guess assumes a surface (lambda_j linear in j). A ring (lambda_j ~ j^2,
    # every nonzero eigenvalue double) and a solid cube (lambda_j ~ j^(2/3)) put the guess
    # far off: the inertia count must rescale it (or fall back) and the result stay exact.
    rng = np.random.default_rng(3)
    if shape == "ring":
        n, k, m = 400, 2, 41
        t = 2 * np.pi * np.arange(n) / n
        x = np.stack([np.cos(t), np.sin(t), np.zeros(n)], axis=1)
        kw: dict[str, str] = {}
    elif shape == "solid":
        n, k, m = 900, 10, 50
        x = rng.uniform(-1, 1, size=(n, 3))
        kw = {}
    else:
        n, k, m = 700, 10, 60
        x = _cloud(n, 9)
        kw = {"weight": "gaussian"}
    ip, ix, dt = S.laplacian(x, k, **kw)
    L = sp.csr_matrix((dt, ix, ip), shape=(n, n))
    w, V = S.eigsh_csr(ip, ix, dt, m)
    _check_pairs(L, w, V)
    assert _lanczos_certified(ip, ix, dt, m)
    if shape == "ring":
        ref = np.sort(2 - 2 * np.cos(2 * np.pi * np.r_[0, np.repeat(np.arange(1, 21), 2)] / n))
        np.testing.assert_allclose(w, ref, rtol=1e-9, atol=1e-12)


def test_truncated_large_cloud_auto_factor_matches_dense() -> None:
    # 2048 points, k = 10: the RCM envelope (~190k entries) exceeds the cache threshold, so
    # "auto" runs on the nested-dissection supernodal factor; it must agree with the
    # envelope factor and with a dense solver.
    from certkit.core._ext import core_ext

    x = _cloud(2048, 3)
    ip, ix, dt = S.laplacian(x, 10)
    L = sp.csr_matrix((dt, ix, ip), shape=(2048, 2048))
    w, V = S.eigsh_csr(ip, ix, dt, 100)
    _check_pairs(L, w, V)
    assert _lanczos_certified(ip, ix, dt, 100)
    core_ext.spectral._set_factor_mode("envelope")
    try:
        we, Ve = S.eigsh_csr(ip, ix, dt, 100)
        assert _lanczos_certified(ip, ix, dt, 100)
    finally:
        core_ext.spectral._set_factor_mode("auto")
    np.testing.assert_allclose(w, we, rtol=1e-10, atol=1e-12)
    gaps = np.diff(we)
    simple = np.r_[gaps[0], np.minimum(gaps[1:], gaps[:-1]), gaps[-1]] > 1e-4
    np.testing.assert_allclose(V[:, simple], Ve[:, simple], atol=1e-6)


def test_factor_mode_switch_rejects_unknown_mode() -> None:
    from certkit.core._ext import core_ext

    with pytest.raises(ValueError, match="mode"):
        core_ext.spectral._set_factor_mode("cholmod")


def _graph_laplacian(kind: str) -> sp.csr_matrix:
    rng = np.random.default_rng(4)
    if kind == "erdos-renyi":  # sparse random weights: several components, isolated vertices
        n = 500
        A = sp.random(
            n, n, density=3.0 / n, random_state=4, data_rvs=lambda k: rng.uniform(0.1, 2, k)
        )
    elif kind == "star":  # one hub: eigenvalue 1 with multiplicity n - 2
        n = 300
        A = sp.coo_matrix((np.ones(n - 1), (np.zeros(n - 1, int), np.arange(1, n))), shape=(n, n))
    elif kind == "path":
        n = 300
        A = sp.diags([np.ones(n - 1)], [1], shape=(n, n))
    elif kind == "grid":  # a 2-D mesh, where nested dissection is at its best
        g = 24
        idx = np.arange(g * g).reshape(g, g)
        r = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
        c = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
        A = sp.coo_matrix((np.ones(r.size), (r, c)), shape=(g * g, g * g))
    else:  # dense weighted graph: one big front
        A = sp.csr_matrix(np.triu(rng.uniform(0, 1, (120, 120)), 1))
    A = sp.csr_matrix(A)
    A = A.maximum(A.T)
    A.setdiag(0)
    A.eliminate_zeros()
    return sp.csr_matrix(sp.diags(np.asarray(A.sum(1)).ravel()) - A)


@pytest.mark.parametrize("kind", ["erdos-renyi", "star", "path", "grid", "dense"])
def test_truncated_unusual_graphs_match_dense(kind: str, factor_mode: str) -> None:
    # Graphs unlike kNN clouds (the orderings' separators, supernodes and pivots differ a
    # lot): both factors must still give the dense solver's pairs.
    L = _graph_laplacian(kind)
    L.sort_indices()
    n = L.shape[0]
    for m in (5, 40):
        w, V = S.eigsh_csr(
            L.indptr.astype(np.int64), L.indices.astype(np.int64), L.data.astype(np.float64), m
        )
        full = np.linalg.eigvalsh(L.toarray())[:m]
        np.testing.assert_allclose(w, full, rtol=1e-9, atol=1e-9 * max(1.0, full[-1]))
        np.testing.assert_allclose(L @ V, V * w, atol=1e-7)
        np.testing.assert_allclose(V.T @ V, np.eye(m), atol=1e-12)
        assert V.shape == (n, m)
        # Lanczos (not the dense fallback) produced them, except where the solver goes
        # dense by design: n <= max(96, 3 m), or the star's eigenvalue of multiplicity n - 2
        if kind != "star" and n > max(96, 3 * m):
            assert _lanczos_certified(
                L.indptr.astype(np.int64), L.indices.astype(np.int64), L.data, m
            )


@pytest.mark.parametrize("mode", ["envelope", "supernodal"])
@pytest.mark.parametrize("kind", ["cloud", "gaussian-cloud", "grid", "dense"])
def test_shift_factor_solves_and_counts_like_dense(kind: str, mode: str) -> None:
    # The truncated solver's factor itself, against numpy: x = (A - mu I)^{-1} b and the
    # negative-pivot count = the eigenvalues below mu, for mu below the spectrum and
    # between eigenvalues inside it (an indefinite LDL^T). The eigen-pair tests cannot see
    # a wrong factor: the solver would fail its residual check and fall back to the dense
    # solver.
    from certkit.core._ext import core_ext

    if kind in ("cloud", "gaussian-cloud"):
        x = _cloud(700, 2)
        ip, ix, dt = S.laplacian(x, 10, weight="gaussian" if kind == "gaussian-cloud" else "binary")
        L = sp.csr_matrix((dt, ix, ip), shape=(700, 700))
    else:
        L = _graph_laplacian(kind)
        L.sort_indices()
    n = L.shape[0]
    lam = np.linalg.eigvalsh(L.toarray())
    b = np.random.default_rng(0).normal(size=n)
    gaps = np.flatnonzero(np.diff(lam) > 1e-6 * lam[-1]) + 1  # j with lam[j-1] < lam[j]
    for j in (0, 5, 40, 90):
        if j > 0:  # the next gap at or after j (the grid repeats eigenvalues)
            j = int(gaps[np.searchsorted(gaps, j)])
        mu = -0.5 if j == 0 else 0.5 * (lam[j - 1] + lam[j])
        xs, neg = core_ext.spectral._shift_factor_solve(
            L.indptr.astype(np.int64), L.indices.astype(np.int64), L.data, -mu, b, mode
        )
        ref = np.linalg.solve(L.toarray() - mu * np.eye(n), b)
        np.testing.assert_allclose(xs, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
        assert neg == int(np.sum(lam < mu))
