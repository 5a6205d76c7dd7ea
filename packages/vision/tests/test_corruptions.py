"""Corruption suite: shapes and range, determinism, severity ordering, JPEG and blur against
naive references, CE/mCE against a hand computation, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from certkit.vision.corruptions import suite as C
from certkit.vision.data.digits import load_digits


@pytest.fixture(scope="module")
def x():
    _, te = load_digits()
    return te.x[:64]


@pytest.mark.parametrize("name", sorted(C.CORRUPTIONS))
def test_shape_range_determinism_and_severity(x, name):
    dists = []
    for s in range(1, 6):
        out = C.corrupt(x, name, s, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(out, C.corrupt(x, name, s, seed=1))
        dists.append(float((out - x).pow(2).mean()))
    assert dists[0] > 0
    # severity 5 is clearly further from the clean image than severity 1
    assert dists[4] > dists[0]


def test_jpeg_matches_naive_blockwise_reference():
    from scipy.fft import dctn, idctn

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 8, generator=g)
    q = 30
    table = C.jpeg_table(q).numpy()
    ref = np.zeros((2, 1, 16, 8))
    for b in range(2):
        for by in range(0, 16, 8):
            blk = x[b, 0, by:by + 8, :].double().numpy() * 255 - 128
            coef = np.round(dctn(blk, norm="ortho") / table) * table
            ref[b, 0, by:by + 8, :] = np.clip(np.round(idctn(coef, norm="ortho") + 128), 0, 255) / 255
    out = C.jpeg_quality(x, q).double().numpy()
    assert np.abs(out - ref).max() < 1e-6
    # IJG scaling: quality 50 is the base table, 100 all ones
    assert torch.equal(C.jpeg_table(50), C._JPEG_LUMA)
    assert torch.equal(C.jpeg_table(100), torch.ones(8, 8, dtype=torch.float64))


def test_dct_matrix_is_orthonormal():
    d = C.dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)


def test_gaussian_blur_matches_naive_convolution():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 6, 6, generator=g)
    out = C.gaussian_blur(x, 3)
    sigma = 0.8
    r = math.ceil(3 * sigma)
    k = [[math.exp(-(i * i + j * j) / (2 * sigma * sigma)) for j in range(-r, r + 1)]
         for i in range(-r, r + 1)]
    tot = sum(map(sum, k))
    ref = torch.zeros_like(x)
    for i in range(6):
        for j in range(6):
            acc = 0.0
            for a in range(-r, r + 1):
                for b in range(-r, r + 1):
                    ii = min(max(i + a, 0), 5)
                    jj = min(max(j + b, 0), 5)
                    acc += k[a + r][b + r] / tot * float(x[0, 0, ii, jj])
            ref[0, 0, i, j] = acc
    assert torch.allclose(out, ref.clamp(0, 1), atol=1e-5)


def test_contrast_and_pixelate_reference(x):
    out = C.contrast(x, 2)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out, ((x - m) * 0.5 + m).clamp(0, 1))
    p = C.pixelate(x[:1], 4)                      # 8 → 4 → 8: 2×2 blocks of their mean
    blocks = x[:1].view(1, 1, 4, 2, 4, 2).mean((3, 5))
    assert torch.allclose(p, blocks.repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)


def test_corruption_errors_and_mce_by_hand():
    class Const(torch.nn.Module):
        def forward(self, z):
            out = torch.zeros(z.shape[0], 10)
            out[:, 0] = 1.0
            return out

    x = torch.rand(10, 1, 8, 8)
    y = torch.tensor([0] * 7 + [1] * 3)
    e = C.corruption_errors(Const().eval(), x, y, names=["jpeg", "fog"])
    assert e["clean"] == pytest.approx([0.3]) and e["jpeg"] == pytest.approx([0.3] * 5)
    errs = {"clean": [0.1], "a": [0.2, 0.3, 0.4, 0.5, 0.6], "b": [0.1] * 5}
    base = {"clean": [0.05], "a": [0.4] * 5, "b": [0.2] * 5}
    m, ces = C.mce(errs, base)
    assert math.isclose(ces["a"], 2.0 / 2.0) and math.isclose(ces["b"], 0.5)
    assert math.isclose(m, 0.75)
    rel, _ = C.mce(errs, base, relative=True)
    assert math.isclose(rel, ((2.0 - 0.5) / (2.0 - 0.25) + (0.5 - 0.5) / (1.0 - 0.25)) / 2)


def test_bad_input(x):
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(x, "fog", 6)
    with pytest.raises(ValueError, match="name"):
        C.corrupt(x, "rain", 1)
    with pytest.raises(ValueError, match="bounds"):
        C.corrupt(x + 2, "fog", 1)
    with pytest.raises(ValueError, match="quality"):
        C.jpeg_table(101)
    with pytest.raises(ValueError, match="baseline"):
        C.mce({"clean": [0.0], "a": [0.1] * 5}, {"clean": [0.0]})
