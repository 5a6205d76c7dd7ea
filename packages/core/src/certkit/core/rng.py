"""Counter-based sampling with Philox4x32-10 (Salmon et al., SC'11).

A stream is named by ``(seed, stream)``; its elements are indexed ``j = 0, 1, 2, ...``.
Element ``j`` depends only on ``(seed, stream, j)``: never on the chunking, the thread
count, or how an offset is split, so work split across batches, processes or machines
reproduces bit for bit. certkit keys noise by (seed, input index, sample index) by using
the input index as ``stream`` and ``sample_index * dim`` as ``offset``.

float32 element ``j`` is word ``j % 4`` of Philox block ``j // 4`` (Box-Muller on word
pairs for normals); float64 element ``j`` uses two words of block ``j // 2``. The float32
path uses no FMA contraction and our own branch-free ``log``/``sincos``, so it is
bit-identical across compilers and between the CPU and CUDA builds.

In-place fills require a C-contiguous, writable float32/float64 array: a non-contiguous
``out`` is rejected (``ValueError``) rather than silently copied, because a copy would not
fill the caller's array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from certkit.core._ext import core_ext
from certkit.core.validation import check_finite_scalar, check_int, check_seed, check_sigma

_NORMAL, _UNIFORM, _LAPLACE = 0, 1, 2
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ShapeLike = int | Sequence[int]


def _shape(shape: ShapeLike) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        dims: tuple[int, ...] = (int(shape),)
    else:
        try:
            dims = tuple(check_int(s, "shape") for s in shape)  # type: ignore[union-attr]
        except TypeError as exc:
            raise TypeError(f"shape: expected an int or a sequence of ints, got {shape!r}") from exc
    if any(d < 0 for d in dims):
        raise ValueError(f"shape: dimensions must be >= 0, got {dims}")
    return dims


def _dtype(dtype: Any) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from exc
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _check_out(out: Any) -> npt.NDArray[np.floating[Any]]:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    if out.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"out: expected dtype float32 or float64, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array (non-contiguous views are rejected)")
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    return out


def _fill(out: npt.NDArray[Any], dist: int, a: float, b: float, seed: int, offset: int,
          stream: int) -> None:
    seed = check_seed(seed)
    offset = check_int(offset, "offset", minimum=0)
    stream = check_seed(stream, "stream")
    if offset + out.size > 2**64 - 1:
        raise ValueError("offset: offset + size exceeds the 2**64 stream length")
    flat = out.reshape(1, -1)
    core_ext.rng.fill(flat, seed, np.array([stream], np.uint64), np.array([offset], np.uint64),
                      dist, a, b)


def fill_gaussian(out: npt.NDArray[Any], sigma: float = 1.0, seed: int = 0, offset: int = 0, *,
                  stream: int = 0, mean: float = 0.0) -> npt.NDArray[Any]:
    """Fill ``out`` in place with N(mean, sigma²) draws; returns ``out``.

    out: any shape, float32/float64, C-contiguous. Element ``i`` of ``out.ravel()`` is
    element ``offset + i`` of the stream ``(seed, stream)``.
    """
    out = _check_out(out)
    sigma = check_sigma(sigma)
    mean = check_finite_scalar(mean, "mean")
    _fill(out, _NORMAL, mean, sigma, seed, offset, stream)
    return out


def gaussian_noise(shape: ShapeLike, sigma: float = 1.0, seed: int = 0, offset: int = 0,
                   dtype: Any = np.float32, *, stream: int = 0,
                   mean: float = 0.0) -> npt.NDArray[Any]:
    """N(mean, sigma²) draws of the given shape: elements ``[offset, offset + size)`` of the
    stream ``(seed, stream)``. Returns a new C-contiguous array of ``dtype``."""
    out = np.empty(_shape(shape), dtype=_dtype(dtype))
    return fill_gaussian(out, sigma, seed, offset, stream=stream, mean=mean)


def fill_uniform(out: npt.NDArray[Any], low: float = 0.0, high: float = 1.0, seed: int = 0,
                 offset: int = 0, *, stream: int = 0) -> npt.NDArray[Any]:
    """Fill ``out`` in place with U(low, high) draws (never exactly ``low`` or ``high`` for
    float64; float32 values are (k + 0.5)/2²⁴ scaled)."""
    out = _check_out(out)
    lo = check_finite_scalar(low, "low")
    hi = check_finite_scalar(high, "high")
    if not hi > lo:
        raise ValueError(f"high: expected high > low, got low={low!r}, high={high!r}")
    _fill(out, _UNIFORM, lo, hi, seed, offset, stream)
    return out


def uniform_noise(shape: ShapeLike, low: float = 0.0, high: float = 1.0, seed: int = 0,
                  offset: int = 0, dtype: Any = np.float32, *,
                  stream: int = 0) -> npt.NDArray[Any]:
    """U(low, high) draws of the given shape (see :func:`fill_uniform`)."""
    out = np.empty(_shape(shape), dtype=_dtype(dtype))
    return fill_uniform(out, low, high, seed, offset, stream=stream)


def fill_laplace(out: npt.NDArray[Any], scale: float = 1.0, seed: int = 0, offset: int = 0, *,
                 stream: int = 0, loc: float = 0.0) -> npt.NDArray[Any]:
    """Fill ``out`` in place with Laplace(loc, scale) draws (density e^{-|x-loc|/scale}/2scale)."""
    out = _check_out(out)
    scale = check_sigma(scale, "scale")
    loc = check_finite_scalar(loc, "loc")
    _fill(out, _LAPLACE, loc, scale, seed, offset, stream)
    return out


def laplace_noise(shape: ShapeLike, scale: float = 1.0, seed: int = 0, offset: int = 0,
                  dtype: Any = np.float32, *, stream: int = 0,
                  loc: float = 0.0) -> npt.NDArray[Any]:
    """Laplace(loc, scale) draws of the given shape (see :func:`fill_laplace`)."""
    out = np.empty(_shape(shape), dtype=_dtype(dtype))
    return fill_laplace(out, scale, seed, offset, stream=stream, loc=loc)


def random_bits(n: int, seed: int = 0, offset: int = 0, *, stream: int = 0) -> npt.NDArray[np.uint32]:
    """Raw Philox words: element ``j`` is word ``j % 4`` of block ``j // 4``. Shape (n,)."""
    n = check_int(n, "n", minimum=0)
    out = np.empty((1, n), dtype=np.uint32)
    core_ext.rng.fill_bits(out, check_seed(seed), np.array([check_seed(stream, "stream")], np.uint64),
                           np.array([check_int(offset, "offset", minimum=0)], np.uint64))
    return out.reshape(n)


def gaussian_rows(shape: ShapeLike, sigma: float, seed: int, streams: Any, offsets: Any,
                  dtype: Any = np.float32, out: npt.NDArray[Any] | None = None,
                  mean: float = 0.0) -> npt.NDArray[Any]:
    """Noise for several streams in one call.

    shape: (B, ...) — row ``b`` (flattened, M = prod(shape[1:]) elements) holds elements
    ``[offsets[b], offsets[b] + M)`` of stream ``(seed, streams[b])``. streams, offsets: (B,)
    non-negative integers. This is how certkit keys noise by (seed, input, sample): pass the
    input indices as ``streams`` and ``first_sample * M`` as ``offsets``.
    """
    dims = _shape(shape)
    if len(dims) < 1:
        raise ValueError("shape: expected at least one dimension (B, ...)")
    sigma = check_sigma(sigma)
    seed = check_seed(seed)
    b = dims[0]
    s = np.asarray(streams)
    o = np.asarray(offsets)
    for arr, name in ((s, "streams"), (o, "offsets")):
        if arr.shape != (b,):
            raise ValueError(f"{name}: expected shape ({b},), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name}: expected non-negative integers")
    if out is None:
        out = np.empty(dims, dtype=_dtype(dtype))
    else:
        out = _check_out(out)
        if out.shape != dims:
            raise ValueError(f"out: expected shape {dims}, got {out.shape}")
    core_ext.rng.fill(out.reshape(b, -1), seed, s.astype(np.uint64), o.astype(np.uint64),
                      _NORMAL, check_finite_scalar(mean, "mean"), sigma)
    return out
