"""Rotation smoothing about the z axis (TPC-style transformation-specific smoothing).

Chu, Chen, Zhang, Li, "TPC: Transformation-Specific Smoothing for Point Cloud Models",
ICML 2022, arXiv:2201.12733. The smoothed classifier is
``g(x) = argmax_c P(f(R_z(theta) x) = c)`` with ``theta ~ N(0, sigma^2)`` (``noise="gaussian"``)
or ``theta ~ U[-b, b]`` (``noise="uniform"``).

Guarantee (derived here; it is Cohen et al.'s 1-D argument, since z-rotations compose
*exactly*, ``R(theta) R(phi) = R(theta + phi)``, so rotating the input by ``phi`` shifts the
noise parameter): with ``p_A`` a Clopper-Pearson lower bound on the top-class probability,
g predicts the same class for every rotation ``|phi| < r`` with

- Gaussian: ``r = sigma * Phi^{-1}(p_A)``;
- uniform: ``r = b (2 p_A - 1)`` (the shifted interval overlaps in ``2b - |phi|``, and
  wrapping the angle onto the circle cannot increase the total variation), every angle when
  ``r > pi``; and every angle when ``b`` is a whole multiple of ``pi``: the angle is then
  uniform on the circle and the smoothed classifier exactly z-invariant. (For other
  ``b >= pi`` it is not: with ``b = 1.5 pi`` the wrapped angle covers half the circle twice,
  and a classifier of the cloud's heading flips between ``phi = 0`` and ``phi = pi``; the
  red-team test ``test_rotation_redteam_s5.py`` certified "every angle" there before.)

No interpolation (sampling) error arises for z-rotations, unlike TPC's general rotations;
the only sampling error is the Monte-Carlo estimate of ``p_A``, covered by Clopper-Pearson
at level ``1 - alpha``. Rotations are computed in float64 and the rotated cloud is cast to
float32, so ``R(theta) R(phi) x`` and ``R(theta + phi) x`` agree to float32 rounding
(~1e-7 relative): a base classifier that flips on such differences is outside the claim.
Angles come from the core's counter-based sampler keyed by (seed, input index, draw).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from certkit.core import gaussian_noise, uniform_noise
from certkit.core.stats import clopper_pearson, norm_ppf
from certkit.core.validation import check_alpha, check_int, check_positive, check_seed
from certkit.pointcloud._votes import count_votes

Noise = Literal["gaussian", "uniform"]
ABSTAIN = -1


def rotate_z(x: Any, theta: Any) -> npt.NDArray[np.float32]:
    """Rotate cloud x (N, 3) by angles theta (B,) about z -> (B, N, 3) float32."""
    xa = np.asarray(x, dtype=np.float64)
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    c, s = np.cos(th)[:, None], np.sin(th)[:, None]
    out = np.empty((len(th), *xa.shape))
    out[..., 0] = c * xa[:, 0] - s * xa[:, 1]
    out[..., 1] = s * xa[:, 0] + c * xa[:, 1]
    out[..., 2] = xa[:, 2]
    return out.astype(np.float32)


@dataclass(frozen=True)
class RotationCertificate:
    """label (ABSTAIN = -1), certified angle (radians; inf = every angle), p_A lower bound."""

    idx: int
    label: int
    angle: float
    p_lower: float
    count: int
    n: int


def _angles(noise: Noise, scale: float, n: int, seed: int, index: int, first: int) -> npt.NDArray[np.float64]:
    if noise == "gaussian":
        return gaussian_noise((n,), scale, seed, first, np.float64, stream=index)  # type: ignore[no-any-return]
    return uniform_noise((n,), -scale, scale, seed, first, np.float64, stream=index)  # type: ignore[no-any-return]


@torch.no_grad()
def rotation_counts(
    model: torch.nn.Module,
    x: Any,
    n: int,
    num_classes: int,
    *,
    noise: Noise = "gaussian",
    scale: float = 0.5,
    seed: int = 0,
    index: int = 0,
    first: int = 0,
    batch_size: int = 200,
) -> npt.NDArray[np.int64]:
    """Class counts (C,) of ``model`` on ``n`` randomly z-rotated copies of x (N, 3)."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2 or xa.shape[1] != 3 or not np.isfinite(xa).all():
        raise ValueError(f"x: expected a finite (N, 3) cloud, got shape {xa.shape}")
    if noise not in ("gaussian", "uniform"):
        raise ValueError(f"noise: expected 'gaussian' or 'uniform', got {noise!r}")
    scale = check_positive(scale, "scale")
    return count_votes(model, lambda start, b: rotate_z(xa, _angles(noise, scale, b, seed, index, first + start)),
                       n, batch_size, num_classes)


def certified_angle(p_lower: float, noise: Noise, scale: float) -> float:
    """Certified rotation angle (radians) for a lower bound ``p_lower`` on p_A (0: abstain)."""
    if p_lower <= 0.5:
        return 0.0
    if noise == "gaussian":
        return float(scale * norm_ppf(p_lower))
    k = round(scale / np.pi)
    if k >= 1 and abs(scale - k * np.pi) <= 1e-12 * scale:  # U[-k pi, k pi]: uniform on the circle
        return float("inf")
    r = float(scale * (2 * p_lower - 1))
    return float("inf") if r > np.pi else r


def certify_rotation(
    model: torch.nn.Module,
    x: Any,
    num_classes: int,
    *,
    noise: Noise = "gaussian",
    scale: float = 0.5,
    n0: int = 64,
    n: int = 1000,
    alpha: float = 0.001,
    seed: int = 0,
    index: int = 0,
    batch_size: int = 200,
) -> RotationCertificate:
    """CERTIFY for z-rotations of one cloud x (N, 3): selection with n0, estimation with n draws."""
    alpha = check_alpha(alpha)
    n0 = check_int(n0, "n0", minimum=1)
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    kw: dict[str, Any] = dict(noise=noise, scale=scale, seed=seed, index=index, batch_size=batch_size)
    top = int(np.argmax(rotation_counts(model, x, n0, num_classes, first=0, **kw)))
    c = rotation_counts(model, x, n, num_classes, first=n0, **kw)
    k = int(c[top])
    pl = float(clopper_pearson(k, n, alpha, side="lower"))
    ang = certified_angle(pl, noise, scale)
    if ang <= 0:
        return RotationCertificate(index, ABSTAIN, 0.0, pl, k, n)
    return RotationCertificate(index, top, ang, pl, k, n)


__all__ = ["ABSTAIN", "RotationCertificate", "certified_angle", "certify_rotation", "rotate_z", "rotation_counts"]
