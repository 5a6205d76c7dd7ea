"""Vote counting for randomized smoothing (Cohen, Rosenfeld, Kolter 2019)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core._ext import core_ext
from certkit.core.validation import check_int


def top_two_counts(labels: Any, num_classes: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Counts and classes of the two most frequent labels per row.

    labels: (B, N) integer class ids in [0, num_classes). Returns ``counts`` (B, 2) and
    ``classes`` (B, 2), int64, largest first. Ties go to the smaller class index; a row with
    a single class present gets the smallest other class (count 0) as runner-up.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"labels: expected shape (B, N), got {arr.shape}")
    counts, classes = core_ext.votes.top_two_counts(np.ascontiguousarray(arr, np.int64), num_classes)
    return counts, classes


def top_two_from_counts(counts: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Same as :func:`top_two_counts` for a histogram ``counts`` (B, C) of non-negative ints."""
    arr = np.asarray(counts)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"counts: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"counts: expected shape (B, C), got {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError("counts: expected non-negative counts")
    return core_ext.votes.top_two_from_hist(np.ascontiguousarray(arr, np.int64))  # type: ignore[no-any-return]
