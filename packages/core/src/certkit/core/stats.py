"""Certificate statistics (vectorised). TEMPORARY scipy-backed placeholder: the compiled
implementation replaces this module (same signatures)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core.validation import as_float_array, as_int_array, check_alpha

FloatArray = npt.NDArray[np.float64]


def clopper_pearson(k: Any, n: Any, alpha: float, side: str = "lower") -> FloatArray:
    from scipy.stats import beta

    alpha = check_alpha(alpha)
    k_arr, n_arr = np.broadcast_arrays(as_int_array(k, "k"), as_int_array(n, "n"))
    if side == "two-sided":
        lo = np.where(k_arr == 0, 0.0, beta.ppf(alpha / 2, k_arr, n_arr - k_arr + 1))
        hi = np.where(k_arr == n_arr, 1.0, beta.ppf(1 - alpha / 2, k_arr + 1, n_arr - k_arr))
        return np.stack([lo, hi], axis=-1)
    if side == "lower":
        return np.where(k_arr == 0, 0.0, beta.ppf(alpha, k_arr, n_arr - k_arr + 1))
    if side == "upper":
        return np.where(k_arr == n_arr, 1.0, beta.ppf(1 - alpha, k_arr + 1, n_arr - k_arr))
    raise ValueError(f"side: expected 'lower', 'upper' or 'two-sided', got {side!r}")


def norm_ppf(p: Any) -> FloatArray:
    from scipy.stats import norm

    return np.asarray(norm.ppf(as_float_array(p, "p")), dtype=np.float64)


def norm_cdf(x: Any) -> FloatArray:
    from scipy.stats import norm

    return np.asarray(norm.cdf(as_float_array(x, "x", finite=False)), dtype=np.float64)


def binom_test_two_sided(k: Any, n: Any, p: float = 0.5) -> FloatArray:
    from scipy.stats import binomtest

    k_arr, n_arr = np.broadcast_arrays(as_int_array(k, "k"), as_int_array(n, "n"))
    out = np.empty(k_arr.shape)
    for idx in np.ndindex(k_arr.shape):
        out[idx] = binomtest(int(k_arr[idx]), int(n_arr[idx]), p).pvalue
    return out


def certified_radius(p_lower: Any, sigma: float) -> FloatArray:
    p = as_float_array(p_lower, "p_lower")
    r = sigma * norm_ppf(np.clip(p, 0.5, 1.0 - 1e-16))
    return np.where(p > 0.5, r, 0.0)
