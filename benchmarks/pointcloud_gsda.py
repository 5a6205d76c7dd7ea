"""GSDA's spectral basis step: certkit's symmetric, sorted, sign-fixed graph basis vs the
GSDA reference style (torch dense kNN graph + non-symmetric ``torch.linalg.eig``).

The anchor is re-written here in the reference's *style* (no code copied): a dense kNN
adjacency from ``torch.cdist``/``topk``, ``L = D - A`` on the symmetrised graph and
``torch.linalg.eig`` (general, complex) whose eigenpairs come back unsorted; GSDA then indexes
them as if sorted. We report the time for B clouds and whether the anchor's order is
ascending (the bug), and check that the sorted spectra agree.
Prints a table and one JSON line per size (ratio = anchor / ours, > 1: we are faster).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import best_time, emit, print_table  # noqa: E402

from certkit.core.spectral import graph_basis  # noqa: E402
from certkit.pointcloud.data import make_shapes  # noqa: E402


def anchor_basis(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GSDA-style: dense symmetric kNN Laplacian, general eig, real parts, unsorted."""
    B, N, _ = x.shape
    d = torch.cdist(x, x)
    idx = d.topk(k + 1, largest=False).indices[..., 1:]
    A = torch.zeros(B, N, N, dtype=x.dtype)
    A.scatter_(2, idx, 1.0)
    A = ((A + A.transpose(1, 2)) > 0).to(x.dtype)
    L = torch.diag_embed(A.sum(-1)) - A
    w, V = torch.linalg.eig(L)
    return w.real, V.real


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for n, B in ((256, 8), (512, 4), (1024, 2)):
        X, _ = make_shapes(B, n, seed=0)
        Xd = X.astype(np.float64)
        Xt = torch.from_numpy(Xd)
        t_ours = best_time(lambda: graph_basis(Xd, 10), repeat=3)  # noqa: B023
        t_anchor = best_time(lambda: anchor_basis(Xt, 10), repeat=2, warmup=0)  # noqa: B023
        w_ours, _ = graph_basis(Xd, 10)
        w_anc, _ = anchor_basis(Xt, 10)
        wa = w_anc.numpy()
        sorted_anchor = bool(np.all(np.diff(wa, axis=1) >= -1e-9))
        err = float(np.abs(np.sort(wa, axis=1) - w_ours).max() / np.abs(w_ours).max())
        rows.append([n, B, t_ours, t_anchor, t_anchor / t_ours, sorted_anchor, err])
        emit(f"pointcloud_gsda_basis_n{n}_b{B}", t_ours, t_anchor, anchor_sorted=sorted_anchor,
             max_rel_eig_diff=err)
    print_table("GSDA basis step (full basis, k = 10, one thread)",
                ["N", "B", "ours_s", "anchor_s", "ratio", "anchor sorted?", "rel eig diff"], rows)


if __name__ == "__main__":
    main()
