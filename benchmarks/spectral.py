"""Spectral ops: certkit's compiled kNN + Laplacian + eigenbasis vs scipy / numpy.

Anchors (same work, same process, BLAS pinned to one thread):
- truncated: scipy cKDTree + Laplacian assembly + eigsh shift-invert (first 100 pairs);
- full: numpy.linalg.eigh on the same dense Laplacian.
Prints a table and ends with one JSON line (ratio = anchor / ours, > 1 is faster).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from certkit.core import spectral as S  # noqa: E402


def _cloud(n: int, seed: int) -> np.ndarray:
    from certkit.pointcloud.data import make_shapes

    return make_shapes(1, n, seed=seed)[0][0].astype(np.float64)


def _best(f, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    try:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh
        from scipy.spatial import cKDTree
    except ImportError:
        print("scipy is not installed: skipping the scipy anchor")
        return
    k, m = 10, 100
    rows = []
    tot_ours = tot_anchor = 0.0
    for n in (1024, 2048):
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

        t_ours = _best(lambda x=x: S.graph_basis(x, k, m))
        t_anchor = _best(scipy_trunc)
        w, _ = S.graph_basis(x, k, m)
        ref = scipy_trunc()
        rel = float(
            np.max(np.abs(w - ref) / np.maximum(np.abs(ref), 1e-12 + 1e-9 * np.abs(ref).max()))
        )
        rows.append((f"knn+L+eig{m} n={n}", t_ours, t_anchor, rel))
        tot_ours += t_ours
        tot_anchor += t_anchor
        ip, ix, dt = S.laplacian(x, k)
        Ld = sp.csr_matrix((dt, ix, ip), shape=(n, n)).toarray()
        tf = _best(lambda Ld=Ld: S.eigh(Ld), reps=1)
        ta = _best(lambda Ld=Ld: np.linalg.eigh(Ld), reps=1)
        rows.append((f"full eigh n={n}", tf, ta, float("nan")))
    print(f"{'work':<24}{'ours s':>10}{'anchor s':>10}{'ratio':>8}{'max rel err':>14}")
    for name, o, a, e in rows:
        print(f"{name:<24}{o:>10.4f}{a:>10.4f}{a / o:>8.2f}{e:>14.2e}")
    print(
        json.dumps(
            {
                "name": "spectral",
                "ours_s": tot_ours,
                "anchor_s": tot_anchor,
                "ratio": tot_anchor / tot_ours,
            }
        )
    )


if __name__ == "__main__":
    main()
