"""Argument checks shared by every certkit package.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the argument
and says what was expected, so bad input never reaches the compiled core.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A significance level in the open interval (0, 1)."""
    a = check_finite_scalar(alpha, name)
    if not 0.0 < a < 1.0:
        raise ValueError(f"{name}: expected a value in (0, 1), got {alpha!r}")
    return a


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    v = check_finite_scalar(value, name)
    if v < 0.0 or (v == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite value {bound}, got {value!r}")
    return v


def check_sigma(sigma: Any, name: str = "sigma") -> float:
    """A noise level: finite and > 0."""
    return check_positive(sigma, name)


def check_finite_scalar(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        else:
            raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """An integer (Python or numpy), optionally >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    return v


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for the counter-based sampler: an integer in [0, 2**64)."""
    v = check_int(seed, name, minimum=0)
    if v >= 2**64:
        raise ValueError(f"{name}: expected an integer < 2**64, got {v}")
    return v


def as_int_array(value: Any, name: str) -> npt.NDArray[np.int64]:
    """Integer-valued array as int64 (float arrays must hold whole numbers)."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf")
        if not np.all(arr == np.floor(arr)):
            raise ValueError(f"{name}: expected whole numbers")
    if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: values exceed int64")
    return np.asarray(arr, dtype=np.int64, order="C")


def as_float_array(value: Any, name: str, *, finite: bool = True) -> npt.NDArray[np.float64]:
    """Real-valued array as float64; NaN (and inf, with ``finite``) rejected."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64, order="C")
    if np.isnan(arr).any():
        raise ValueError(f"{name}: contains NaN")
    if finite and np.isinf(arr).any():
        raise ValueError(f"{name}: contains inf")
    return arr
