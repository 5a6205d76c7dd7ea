"""Red-team test (session 5) of the z-rotation smoothing certificate (rotation_smoothing.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from certkit.pointcloud import rotation_smoothing as rs


class _Heading(torch.nn.Module):
    """Class 0 when the first point's heading has cos >= 0, else class 1: (B, N, 3) -> (B, 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        front = (x[:, 0, 0] >= 0).float()
        return torch.stack([front, 1 - front], 1)


def test_uniform_angle_beyond_pi_is_not_every_angle() -> None:
    """Uniform noise U[-b, b] with b >= pi was certified for every angle. Only a whole
    multiple of pi wraps uniformly onto the circle: with b = 1.5 pi, class 1 holds 2/3 of
    the angles at phi = 0 and class 0 holds 2/3 at phi = pi (exact), so the smoothed
    prediction changes under a rotation the old certificate covered. Now the angle is
    b (2 p_A - 1) < pi, and the rotation that flips the prediction lies outside it."""
    x = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    b = 1.5 * np.pi
    c0 = rs.certify_rotation(_Heading(), x, 2, noise="uniform", scale=b, n0=64, n=2000, alpha=0.001)
    flipped = rs.certify_rotation(_Heading(), rs.rotate_z(x, np.pi)[0], 2, noise="uniform", scale=b, n0=64,
                                  n=2000, alpha=0.001)
    assert c0.label == 1 and flipped.label == 0  # the smoothed prediction changes at phi = pi
    assert c0.angle < np.pi, c0  # so pi must not be certified
    # the exact smoothed probability of class 1 at rotation phi stays above 1/2 inside the angle
    phi = np.linspace(-c0.angle, c0.angle, 41)
    th = np.linspace(-b, b, 200_001)
    p1 = [(np.cos(th + f) < 0).mean() for f in phi]
    assert min(p1) > 0.5
    # whole multiples of pi are exactly invariant; beyond pi otherwise only when r > pi
    assert rs.certified_angle(0.51, "uniform", np.pi) == float("inf")
    assert rs.certified_angle(0.51, "uniform", 2 * np.pi) == float("inf")
    assert rs.certified_angle(0.6, "uniform", b) == pytest.approx(0.2 * b)
    assert rs.certified_angle(0.9, "uniform", b) == float("inf")  # r = 1.2 pi
