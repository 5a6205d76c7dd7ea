"""Spectral ops: certkit's compiled kNN + Laplacian + eigenbasis vs scipy / numpy.

Anchors (same work, same process, BLAS pinned to one thread for both sides):
- truncated: scipy cKDTree + Laplacian assembly + eigsh shift-invert (first 100 pairs),
  against ``graph_basis(x, 10, 100)`` (kNN + Laplacian + shift-invert Lanczos);
- full: numpy.linalg.eigh on the same dense Laplacian, against ``eigh`` (LAPACK dsyevd when
  the core found LAPACK, else the own Householder + QL solver);
- batched full basis of B clouds with T threads for both: ours threads over clouds (one
  dsyevd per thread); the anchor is the faster of numpy.linalg.eigh on the (B, N, N) stack
  with T BLAS threads and a pool of T Python threads calling eigh with 1 BLAS thread.

Timings are the minimum over repeats (the machine may be shared). Prints a table and ends
with one JSON line (ratio = anchor / ours, > 1 is faster; the headline ``ratio`` is the
truncated work, issue 5's target).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from certkit.core import spectral as S  # noqa: E402
from certkit.core._ext import core_ext  # noqa: E402


def _cloud(n: int, seed: int) -> np.ndarray:
    try:
        from certkit.pointcloud.data import make_shapes
    except ImportError:  # the point-cloud package is optional here
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 3))
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    return make_shapes(1, n, seed=seed)[0][0].astype(np.float64)


def _best(f: Callable[[], Any], reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def _rel_err(w: np.ndarray, ref: np.ndarray) -> float:
    """Max |w - ref| / |ref|; eigenvalues below 1e-6 max|ref| (the zero eigenvalue) are
    measured against 1e-6 max|ref| instead of themselves."""
    den = np.maximum(np.abs(ref), 1e-6 * np.abs(ref).max())
    return float(np.max(np.abs(w - ref) / den))


def _blas_limits(n: int) -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="repeats of the truncated work (min taken)")
    ap.add_argument("--full-reps", type=int, default=2, help="repeats of the full work")
    ap.add_argument("--batch", type=int, default=4, help="clouds in the batched full basis")
    ap.add_argument("--threads", type=int, default=2, help="threads for the batched full basis")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    args = ap.parse_args()
    try:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh
        from scipy.spatial import cKDTree
    except ImportError:
        print("scipy is not installed: skipping the scipy anchor")
        return
    core_ext._set_num_threads(1)
    print(f"lapack: {core_ext.spectral.lapack_info()}")
    k, m = 10, 100
    rows = []
    tot_ours = tot_anchor = 0.0
    for n in args.sizes:
        x = _cloud(n, n)

        def scipy_trunc(x: np.ndarray = x, n: int = n) -> np.ndarray:
            _, idx = cKDTree(x).query(x, k + 1)
            r = np.repeat(np.arange(n), k)
            A = sp.csr_matrix((np.ones(n * k), (r, idx[:, 1:].ravel())), shape=(n, n))
            A = A.maximum(A.T)
            L = sp.diags(np.asarray(A.sum(1)).ravel()) - A
            return np.sort(
                eigsh(L.tocsc(), k=m, sigma=-1e-3, which="LM", return_eigenvectors=True)[0]
            )

        # interleave ours and the anchor so that both see the same load
        t_ours = t_anchor = float("inf")
        for _ in range(args.reps):
            t_ours = min(t_ours, _best(lambda x=x: S.graph_basis(x, k, m), 1))
            t_anchor = min(t_anchor, _best(scipy_trunc, 1))
        w, _ = S.graph_basis(x, k, m)
        rows.append((f"knn+L+eig{m} n={n}", t_ours, t_anchor, _rel_err(w, scipy_trunc())))
        tot_ours += t_ours
        tot_anchor += t_anchor
        ip, ix, dt = S.laplacian(x, k)
        Ld = sp.csr_matrix((dt, ix, ip), shape=(n, n)).toarray()
        tf = ta = float("inf")
        for _ in range(args.full_reps):
            tf = min(tf, _best(lambda Ld=Ld: S.eigh(Ld), 1))
            ta = min(ta, _best(lambda Ld=Ld: np.linalg.eigh(Ld), 1))
        wf, _ = S.eigh(Ld)
        rows.append((f"full eigh n={n}", tf, ta, _rel_err(wf, np.linalg.eigvalsh(Ld))))

    # batched full basis, T threads on both sides
    B, T, n = args.batch, args.threads, min(args.sizes)
    xs = np.stack([_cloud(n, 100 + b) for b in range(B)])
    Ls = []
    for b in range(B):
        ip, ix, dt = S.laplacian(xs[b], k)
        Ls.append(sp.csr_matrix((dt, ix, ip), shape=(n, n)).toarray())
    stack = np.stack(Ls)
    core_ext._set_num_threads(T)
    t_ours_b = t_np_stack = t_np_pool = float("inf")
    lim = _blas_limits(T)
    for _ in range(args.full_reps):
        t_ours_b = min(t_ours_b, _best(lambda: S.graph_basis(xs, k), 1))
        if lim is not None:
            t_np_stack = min(t_np_stack, _best(lambda: np.linalg.eigh(stack), 1))
    if lim is not None:
        lim.unregister()
    lim1 = _blas_limits(1)
    with ThreadPoolExecutor(T) as pool:
        for _ in range(args.full_reps):
            t_np_pool = min(t_np_pool, _best(lambda: list(pool.map(np.linalg.eigh, Ls)), 1))
    if lim1 is not None:
        lim1.unregister()
    core_ext._set_num_threads(1)
    wb, _ = S.graph_basis(xs, k)
    err_b = max(_rel_err(wb[b], np.linalg.eigvalsh(Ls[b])) for b in range(B))
    rows.append((f"full basis B={B} T={T} n={n}", t_ours_b, min(t_np_stack, t_np_pool), err_b))

    print(f"{'work':<28}{'ours s':>10}{'anchor s':>10}{'ratio':>8}{'max rel err':>14}")
    for name, o, a, e in rows:
        print(f"{name:<28}{o:>10.4f}{a:>10.4f}{a / o:>8.2f}{e:>14.2e}")
    print(
        json.dumps(
            {
                "name": "spectral",
                "ours_s": tot_ours,
                "anchor_s": tot_anchor,
                "ratio": tot_anchor / tot_ours,
                "rows": {
                    name: {"ours_s": o, "anchor_s": a, "ratio": a / o} for name, o, a, _ in rows
                },
                "lapack": bool(core_ext.spectral.has_lapack()),
            }
        )
    )


if __name__ == "__main__":
    main()
