"""Embedded default data: scikit-learn's digits (8×8 grey images, 10 classes, 1,797
images, shipped inside scikit-learn, so nothing is downloaded).

Pixel convention: images are float32 tensors in [0, 1] (the raw 0..16 values divided by
16), shape (N, 1, 8, 8). All noise and every ε in certkit-vision is in these units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Split:
    """x: (N, 1, 8, 8) float32 in [0, 1]; y: (N,) int64 in [0, 10)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_digits(test_fraction: float = 0.3, seed: int = 0) -> tuple[Split, Split]:
    """The digits data set as a deterministic, stratified (train, test) split."""
    from sklearn.datasets import load_digits as _sk_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction!r}")
    d = _sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = round(len(idx) * test_fraction)
        test_idx.extend(idx[:k])
        train_idx.extend(idx[k:])
    tr = np.sort(np.array(train_idx))
    te = np.sort(np.array(test_idx))
    return (Split(torch.from_numpy(x[tr]), torch.from_numpy(y[tr])),
            Split(torch.from_numpy(x[te]), torch.from_numpy(y[te])))
