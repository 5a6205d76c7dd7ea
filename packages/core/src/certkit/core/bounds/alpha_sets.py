"""α-CROWN's lower-slope sets stored only for the neurons that can use them.

α-CROWN (Xu et al. 2021, arXiv:2011.13824) optimises one lower ReLU slope α per (start
node, ReLU, bound row, example, neuron). A slope only enters the bound where the ReLU's
pre-activation is unstable (l < 0 < u); elsewhere the relaxation is exact and α is never
read. During the optimisation the pre-activation bounds only tighten (every recomputed bound
is intersected with the reference bounds at the start), so the neurons unstable at any
iterate are a subset of those unstable at the start. :class:`SparseAlpha` therefore keeps α
(and so its Adam state and its gradient) only for the neurons unstable at the start for some
example of the batch (the union over the batch, as auto_LiRPA's ``sparse_features_alpha``),
and is scattered into the relaxation where it is applied. Bounds are equal to those of the
dense α maps holding the same values on those neurons (whatever the dense maps hold
elsewhere), and an Adam step on the dense maps leaves the other entries unchanged (their
gradient is zero), so the optimisation is the same too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor

__all__ = ["SparseAlpha", "dense_alpha", "rows_of", "unstable_index"]


def unstable_index(l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
    """(m,) the flat indices of the neurons unstable (l < 0 < u) for some example of the
    batch; l, u: (B, *shape) pre-activation bounds. A module-level function so a test can
    plant one that drops a neuron."""
    return torch.nonzero(((l < 0) & (u > 0)).reshape(l.shape[0], -1).any(0)).flatten()


@dataclass
class SparseAlpha:
    """An α set (B, P, *shape) stored as ``values`` (B, P, m): the slopes of the neurons
    ``index`` (m,) (flat indices into ``shape``, ascending) for every example and bound row;
    the other neurons' entries are not stored (they are never read)."""

    values: Tensor
    index: Tensor
    shape: tuple[int, ...]

    def lookup(self) -> Tensor:
        """(n,) long over the flattened ``shape``: the position of each neuron in
        ``values``' last dimension, ``m`` for a neuron not stored (cached)."""
        lut = self.__dict__.get("_lut")
        if lut is None:
            n = 1
            for s in self.shape:
                n *= s
            m = self.index.numel()
            lut = torch.full((n,), m, dtype=torch.long, device=self.index.device)
            lut[self.index] = torch.arange(m, device=self.index.device)
            self.__dict__["_lut"] = lut
        return lut

    def with_values(self, values: Tensor) -> SparseAlpha:
        out = SparseAlpha(values, self.index, self.shape)
        if "_lut" in self.__dict__:
            out.__dict__["_lut"] = self.__dict__["_lut"]
        return out


def dense_alpha(a: Tensor | SparseAlpha) -> Tensor:
    """The dense (B, P, *shape) α set (a tensor is returned as is; a :class:`SparseAlpha`
    is scattered into zeros, which stand for the slopes that are never read).
    Differentiable in the stored values."""
    if isinstance(a, torch.Tensor):
        return a
    v = a.values
    n = a.lookup().numel()
    d = torch.zeros(*v.shape[:-1], n, dtype=v.dtype, device=v.device).index_copy(v.dim() - 1, a.index, v)
    return d.reshape(*v.shape[:-1], *a.shape)


def rows_of(a: Tensor | SparseAlpha, s: int, e: int, k: int) -> Tensor | SparseAlpha:
    """The α rows of start rows [s, e) of an α set over k start rows (lower rows [0, k),
    upper rows [k, 2k)); a shared set (P = 1) as is."""
    v = a if isinstance(a, torch.Tensor) else a.values
    if v.shape[1] == 1:
        return a
    sub = torch.cat([v[:, s:e], v[:, k + s:k + e]], 1)
    return sub if isinstance(a, torch.Tensor) else a.with_values(sub)
