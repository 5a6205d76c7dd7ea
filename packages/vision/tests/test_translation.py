"""Translation robustness: realistic shifts against a naive reference, the crop-selection
consistency certificate (brute force + attack by exhaustive shifts), the exchangeable-score
bound by Monte Carlo, and the flip-rate reduction on digits."""

from __future__ import annotations

import pytest
import torch

from certkit.vision.corruptions import translation as T
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shift_model():
    tr, te = load_digits()
    xa, ya = T.shift_augment(tr.x, tr.y, 2, copies=2)
    torch.manual_seed(0)
    return train_classifier(DigitsCNN(), xa, ya, epochs=6, seed=0), te.x[:200], te.y[:200]


def naive_shift(x, dy, dx):
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            si, sj = i + dy, j + dx
            if 0 <= si < h and 0 <= sj < w:
                out[..., i, j] = x[..., si, sj]
    return out


def test_realistic_shift_is_non_cyclic_and_matches_naive():
    x = torch.rand(3, 1, 8, 8)
    scene = T.pad_scene(x, 1)
    for dy, dx in T.AXIS_SHIFTS:
        assert torch.equal(T.view(scene, 1 + dy, 1 + dx, 8), naive_shift(x, dy, dx))
    assert not torch.equal(T.view(scene, 1, 2, 8), T.cyclic_shift(x, 0, -1))
    with pytest.raises(ValueError, match="view"):
        T.view(scene, 3, 0, 8)


def test_flip_rate_matches_naive(shift_model):
    model, x, _ = shift_model
    scene = T.pad_scene(x, 1)
    with torch.no_grad():
        rate, changed = T.flip_rate(lambda v: model(v).argmax(1), scene, 8)
        base = model(x).argmax(1)
        ref = torch.zeros_like(base, dtype=torch.bool)
        for d in T.AXIS_SHIFTS:
            ref |= model(naive_shift(x, *d)).argmax(1) != base
    assert torch.equal(changed, ref)
    assert rate == pytest.approx(float(ref.float().mean()))


def test_selected_crop_brute_force():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(4, 1, 12, 12, generator=g)
    sel = T.CropSelection(torch.nn.Identity(), 8)
    off = sel.select(v)
    for b in range(4):
        best, arg = -1e9, None
        for i in range(5):
            for j in range(5):
                s = float((v[b, 0, i:i + 8, j:j + 8].double() * sel.template.double()).sum())
                if s > best:
                    best, arg = s, (i, j)
        assert tuple(off[b].tolist()) == arg
    assert torch.equal(sel.crops(v)[1], v[1, :, off[1, 0]:off[1, 0] + 8, off[1, 1]:off[1, 1] + 8])


def test_certificate_is_sound_under_every_shift(shift_model):
    """Attack: try every axis shift (and both base positions) — no certified input may flip."""
    model, x, _ = shift_model
    sel = T.CropSelection(model, 8)
    scene = T.pad_scene(x, 4)
    vsz = 12
    checked = 0
    with torch.no_grad():
        for top, left in ((2, 2), (3, 2), (2, 3)):
            base = sel(T.view(scene, top, left, vsz)).argmax(1)
            base_crops = sel.crops(T.view(scene, top, left, vsz))
            for dy, dx in T.AXIS_SHIFTS:
                cert = T.consistency_certificate(sel, scene, top, left, vsz, (dy, dx))
                v2 = T.view(scene, top + dy, left + dx, vsz)
                pred = sel(v2).argmax(1)
                assert bool((pred[cert] == base[cert]).all())
                # stronger: the very same pixels were classified
                assert torch.equal(sel.crops(v2)[cert], base_crops[cert])
                checked += int(cert.sum())
    assert checked > 0.5 * 200 * 12


def test_exchangeable_bound_by_monte_carlo():
    """Scores i.i.d. on the (n+1) × n union: consistency ≈ (n−1)/(n+1) (Monte Carlo)."""
    g = torch.Generator().manual_seed(0)
    for n in (3, 5):
        trials = 20000
        sc = torch.rand(trials, n, n + 1, generator=g)
        a = sc[..., :n].flatten(1).argmax(1)
        b = sc[..., 1:].flatten(1).argmax(1)
        ra, ca = a // n, a % n
        rb, cb = b // n, b % n + 1
        same = ((ra == rb) & (ca == cb)).float().mean().item()
        bound = T.consistency_lower_bound(n)
        assert same >= bound - 0.015
        assert same == pytest.approx(bound, abs=0.015)


def test_crop_selection_reduces_flips_on_digits(shift_model):
    model, x, y = shift_model
    r = T.translation_report(model, x, y, radius=2)
    assert r["flip_crop_selection"] < 0.5 * r["flip_plain"]
    assert r["acc_crop_selection"] > r["acc_plain"] - 0.1
    assert r["certified_consistent"] <= 1 - r["flip_crop_selection"] + 1e-9
    assert r["bound_exchangeable"] == pytest.approx(4 / 6)


def test_bad_input():
    with pytest.raises(ValueError, match="template"):
        T.CropSelection(torch.nn.Identity(), 8, template=torch.ones(3, 3))
    with pytest.raises(ValueError, match="n"):
        T.consistency_lower_bound(0)
    with pytest.raises(ValueError, match="bounds"):
        T.translation_report(torch.nn.Identity(), torch.full((2, 1, 8, 8), 3.0),
                             torch.zeros(2, dtype=torch.long))
