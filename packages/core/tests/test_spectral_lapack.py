"""The optional LAPACK path of the spectral ops against the own solvers (and numpy).

With LAPACK (``_core.spectral.has_lapack()``), the dense basis uses ``dsyevd`` and the
Krylov solver uses BLAS ``dgemv``/``dgemm``; ``_set_lapack_enabled(False)`` forces the own
kernels in the same build, so both paths are compared here. Without LAPACK only the
reporting is tested (the own path is covered by packages/pointcloud/tests/test_spectral.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp

from certkit.core import spectral as S
from certkit.core._ext import core_ext

HAS = bool(core_ext.spectral.has_lapack())
needs_lapack = pytest.mark.skipif(
    not HAS, reason="no LAPACK (core built without it, or CERTKIT_LAPACK=0)"
)


def _cloud(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * (1 + 0.1 * rng.random((n, 1)))


@pytest.fixture
def own_path() -> Iterator[None]:
    core_ext.spectral._set_lapack_enabled(False)
    try:
        yield
    finally:
        core_ext.spectral._set_lapack_enabled(True)


def test_lapack_reporting() -> None:
    info = core_ext.spectral.lapack_info()
    assert isinstance(core_ext.spectral.has_lapack(), bool)
    assert info.startswith("yes (" if HAS else "no (")


def _both(fn):  # type: ignore[no-untyped-def]
    out_lapack = fn()
    core_ext.spectral._set_lapack_enabled(False)
    try:
        out_own = fn()
    finally:
        core_ext.spectral._set_lapack_enabled(True)
    return out_lapack, out_own


@needs_lapack
@pytest.mark.parametrize("n", [1, 2, 40, 257])
def test_dense_lapack_equals_own_and_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n))
    a = a + a.T
    (w1, V1), (w2, V2) = _both(lambda: S.eigh(a))
    ref = np.linalg.eigvalsh(a)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(w1, ref, rtol=0, atol=1e-12 * scale * n)
    np.testing.assert_allclose(w1, w2, rtol=0, atol=1e-12 * scale * n)
    np.testing.assert_allclose(a @ V1, V1 * w1, atol=1e-11 * scale * n)
    np.testing.assert_allclose(V1.T @ V1, np.eye(n), atol=1e-12 * n)
    # random spectrum: simple eigenvalues, so the sign-fixed vectors agree between paths
    np.testing.assert_allclose(V1, V2, atol=1e-8)
    big = np.argmax(np.abs(V1) >= np.abs(V1).max(axis=0) * (1 - 1e-9), axis=0)
    assert np.all(V1[big, np.arange(n)] > 0)


@needs_lapack
@pytest.mark.parametrize("factor", ["envelope", "supernodal"])
@pytest.mark.parametrize("normalized", [False, True])
def test_truncated_blas_kernels_equal_own(normalized: bool, factor: str) -> None:
    # "supernodal": the frontal update matrices use BLAS dgemm or the own loops
    core_ext.spectral._set_factor_mode(factor)
    try:
        _truncated_blas_kernels_equal_own(normalized)
    finally:
        core_ext.spectral._set_factor_mode("auto")


def _truncated_blas_kernels_equal_own(normalized: bool) -> None:
    x = _cloud(500, 3)
    ip, ix, dt = S.laplacian(x, 8, normalized=normalized)
    (w1, V1), (w2, V2) = _both(lambda: S.eigsh_csr(ip, ix, dt, 40))
    full = np.linalg.eigvalsh(sp.csr_matrix((dt, ix, ip), shape=(500, 500)).toarray())[:40]
    np.testing.assert_allclose(w1, full, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(w2, full, rtol=1e-9, atol=1e-11)
    L = sp.csr_matrix((dt, ix, ip), shape=(500, 500))
    for V, w in ((V1, w1), (V2, w2)):
        np.testing.assert_allclose(L @ V, V * w, atol=1e-8)
        np.testing.assert_allclose(V.T @ V, np.eye(40), atol=1e-12)
    # eigenvalue 0 (constant vector) aside the spectrum is simple: same vectors
    np.testing.assert_allclose(V1, V2, atol=1e-6)


@needs_lapack
def test_batched_full_basis_threads_equal_single() -> None:
    xs = np.stack([_cloud(150, s) for s in range(3)])
    w, V = S.graph_basis(xs, 8)
    for b in range(3):
        w1, V1 = S.graph_basis(xs[b], 8)
        np.testing.assert_allclose(w[b], w1, atol=1e-12)
        ip, ix, dt = S.laplacian(xs[b], 8)
        L = sp.csr_matrix((dt, ix, ip), shape=(150, 150))
        np.testing.assert_allclose(L @ V[b], V[b] * w[b], atol=1e-11)
        np.testing.assert_allclose(V[b].T @ V[b], np.eye(150), atol=1e-12)
        # vectors of simple eigenvalues agree (these clouds have some repeated ones)
        gap = np.minimum(np.diff(w1, prepend=-np.inf), np.diff(w1, append=np.inf))
        simple = gap > 1e-6
        np.testing.assert_allclose(V[b][:, simple], V1[:, simple], atol=1e-8)
    (wl, _), (wo, _) = _both(lambda: S.graph_basis(xs[0], 8))
    np.testing.assert_allclose(wl, wo, atol=1e-11)


def test_own_path_switch_is_harmless_without_lapack(own_path: None) -> None:
    a = np.diag([2.0, 1.0, 3.0])
    w, V = S.eigh(a)
    np.testing.assert_allclose(w, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.abs(V), np.eye(3)[:, [1, 0, 2]])


def test_blas_pinned_to_one_thread_again_after_threadpoolctl() -> None:
    """threadpoolctl (or the user) may raise the loaded OpenBLAS's thread count after we set
    it to one; every spectral op pins it back, since a multi-threaded OpenBLAS called from our
    own threads over clouds oversubscribes the cores."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not S.has_lapack():
        pytest.skip("no LAPACK loaded")
    where = S.lapack_info() if hasattr(S, "lapack_info") else ""
    pts = np.random.default_rng(0).normal(size=(2, 64, 3))
    S.graph_basis(pts, k=8, m=64)  # loads the library

    def ours() -> list[dict]:  # type: ignore[type-arg]
        return [i for i in threadpoolctl.threadpool_info()
                if i.get("internal_api") == "openblas" and i["filepath"] in where]

    if not ours():
        pytest.skip(f"threadpoolctl does not see the loaded BLAS ({where})")
    ctl = threadpoolctl.ThreadpoolController()
    ctl.select(filepath=ours()[0]["filepath"]).limit(limits=2)  # raise it, as a user could
    assert all(i["num_threads"] == 2 for i in ours())
    S.graph_basis(pts, k=8, m=64)
    assert all(i["num_threads"] == 1 for i in ours())
