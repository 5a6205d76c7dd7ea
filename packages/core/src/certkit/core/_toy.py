"""A small, deterministic certification task for testing the distributed backends: randomized
smoothing (Cohen et al. 2019) of a fixed random linear classifier on numpy, with the noise
keyed by (seed, unit index, sample index) through the core's counter-based sampler."""

from __future__ import annotations

from typing import Any

import numpy as np

from certkit.core import gaussian_noise, gaussian_rows, stats, top_two_counts


class ToySmoothingTask:
    """unit idx → certify input x_idx (dim ``dim``) with ``n`` noise samples at ``sigma``."""

    def __init__(self, seed: int = 0, dim: int = 16, classes: int = 4, n: int = 2000,
                 sigma: float = 0.5, alpha: float = 0.001) -> None:
        self.seed, self.dim, self.classes, self.n = seed, dim, classes, n
        self.sigma, self.alpha = sigma, alpha
        self.w = gaussian_noise((dim, classes), 1.0, seed, stream=2**63, dtype=np.float64)

    def __call__(self, idx: int) -> dict[str, Any]:
        x = gaussian_noise(self.dim, 1.0, self.seed, stream=2**62 + idx, dtype=np.float64)
        noise = gaussian_rows((1, self.n, self.dim), self.sigma, self.seed, [idx], [0],
                              dtype=np.float64)[0]
        labels = np.argmax((x + noise) @ self.w, axis=1)[None, :]
        counts, classes = top_two_counts(labels, self.classes)
        p_low = float(np.ravel(stats.clopper_pearson(int(counts[0, 0]), self.n, self.alpha))[0])
        radius = float(np.ravel(stats.certified_radius(p_low, self.sigma))[0]) if p_low > 0.5 else 0.0
        return {"idx": idx, "prediction": int(classes[0, 0]) if p_low > 0.5 else -1,
                "count": int(counts[0, 0]), "radius": radius}


def make_toy_task(**kwargs: Any) -> ToySmoothingTask:
    return ToySmoothingTask(**kwargs)
