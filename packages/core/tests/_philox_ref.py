"""Naive pure-Python references for the sampler (slow, obviously correct)."""

from __future__ import annotations

import numpy as np

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return c0, c1, c2, c3


def words(seed: int, stream: int, start: int, n: int) -> np.ndarray:
    """Stream elements [start, start + n) as uint32 words (element j = word j%4 of block j//4)."""
    out = []
    key = (seed & MASK, seed >> 32)
    for j in range(start, start + n):
        b = j // 4
        blk = philox4x32_10((b & MASK, b >> 32, stream & MASK, stream >> 32), key)
        out.append(blk[j % 4])
    return np.array(out, dtype=np.uint32)


def _f(x: float) -> np.float32:
    return np.float32(x)


def open01f(w: np.ndarray) -> np.ndarray:
    return ((w >> np.uint32(8)).astype(np.float32) + _f(0.5)) * _f(5.9604644775390625e-08)


def logf_ref(x: np.ndarray) -> np.ndarray:
    """The sampler's float32 log, step by step in numpy float32 (each op rounded)."""
    u = x.view(np.uint32)
    e = ((u >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int32) - 127
    m = ((u & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = m > _f(1.41421356)
    m = np.where(big, m * _f(0.5), m).astype(np.float32)
    e = np.where(big, e + 1, e)
    t = (m - _f(1.0)) / (m + _f(1.0))
    t2 = t * t
    poly = _f(2.0) + t2 * (_f(0.6666666667) + t2 * (_f(0.4) + t2 * (_f(0.2857142857) + t2 * _f(0.2222222222))))
    return e.astype(np.float32) * _f(0.693147180559945) + t * poly


def sincos_ref(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.floor(u * _f(4.0) + _f(0.5)).astype(np.float32)  # u > 0, so trunc == floor
    w = u - q * _f(0.25)
    p = w * _f(6.28318530717958648)
    p2 = p * p
    sp = p * (_f(1.0) + p2 * (_f(-1.6666667e-1) + p2 * (_f(8.3333333e-3) + p2 * (_f(-1.98412698e-4) + p2 * _f(2.75573192e-6)))))
    cp = _f(1.0) + p2 * (_f(-0.5) + p2 * (_f(4.16666667e-2) + p2 * (_f(-1.38888889e-3) + p2 * (_f(2.48015873e-5) - p2 * _f(2.75573192e-7)))))
    qi = q.astype(np.int32) & 3
    swap = (qi & 1) != 0
    x = np.where(swap, sp, cp)
    y = np.where(swap, cp, sp)
    c = np.where(((qi + 1) & 2) != 0, -x, x)
    s = np.where((qi & 2) != 0, -y, y)
    return s.astype(np.float32), c.astype(np.float32)


def normal_f32(seed: int, stream: int, start: int, n: int) -> np.ndarray:
    """Reference float32 normals, bit-exact with the compiled sampler."""
    b0, b1 = start // 4, (start + n - 1) // 4
    w = words(seed, stream, 4 * b0, 4 * (b1 - b0 + 1)).reshape(-1, 4)
    out = np.empty(w.shape, np.float32)
    for h in range(2):
        u1 = open01f(w[:, 2 * h])
        u2 = open01f(w[:, 2 * h + 1])
        r = np.sqrt(np.maximum(_f(-2.0) * logf_ref(u1), _f(0.0))).astype(np.float32)
        s, c = sincos_ref(u2)
        out[:, 2 * h] = r * c
        out[:, 2 * h + 1] = r * s
    flat = out.reshape(-1)
    return flat[start - 4 * b0: start - 4 * b0 + n]
