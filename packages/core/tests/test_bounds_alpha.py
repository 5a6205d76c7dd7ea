"""α-CROWN with optimised intermediate-layer slopes (Xu et al. 2021, arXiv:2011.13824).

Soundness over many random small nets: every sampled input (vertices included) and a PGD
attack stay inside the optimised bounds, for per-(start node, ReLU) α sets and for shared
α. Tightness: never looser than CROWN, and optimising the intermediate slopes is strictly
tighter than optimising only the output's slopes on some nets.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, margin_spec  # noqa: E402

_spec = importlib.util.spec_from_file_location("_tb", Path(__file__).with_name("test_bounds.py"))
assert _spec is not None and _spec.loader is not None
_tb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tb)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    d, h = 4 + seed % 3, 8 + 2 * (seed % 3)
    layers: list[nn.Module] = []
    w = d
    for _ in range(2 + seed % 2):
        layers += [nn.Linear(w, h), nn.ReLU()]
        w = h
    layers.append(nn.Linear(w, 3))
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("shared", [False, True])
def test_alpha_crown_sound_many_nets(shared: bool) -> None:
    gen = torch.Generator().manual_seed(11)
    cases = 0
    for seed in range(24):
        net = _net(seed)
        d = net[0].in_features
        bm = BoundedModel(net, (d,))
        x = torch.randn(3, d, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (3,), generator=gen)
        eps = [0.1, 0.3, 0.6][seed % 3]
        C = margin_spec(y, 3, torch.float64)
        cases += _tb._check_inside(net, bm, x, eps, math.inf, "alpha-CROWN", C, 200, gen,
                                   alpha_iterations=8, alpha_shared=shared)
    assert cases >= 24 * 3 * 200 * 2


def test_alpha_crown_tighter_than_crown_and_output_only() -> None:
    gen = torch.Generator().manual_seed(12)
    strictly_crown = strictly_interm = 0
    for seed in range(12):
        net = _net(seed)
        d = net[0].in_features
        bm = BoundedModel(net, (d,))
        x = torch.randn(4, d, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (4,), generator=gen)
        with torch.no_grad():
            cl, cu = bm.compute_bounds(x, 0.3, method="CROWN", y=y)
            ol, ou = bm.compute_bounds(x, 0.3, method="alpha-CROWN", y=y, alpha_intermediate=False)
            fl, fu = bm.compute_bounds(x, 0.3, method="alpha-CROWN", y=y)
        assert (ol >= cl - 1e-9).all() and (ou <= cu + 1e-9).all()
        assert (fl >= cl - 1e-9).all() and (fu <= cu + 1e-9).all()
        strictly_crown += int((fl > cl + 1e-6).sum() + (fu < cu - 1e-6).sum())
        strictly_interm += int(float((fl - ol).sum() + (ou - fu).sum()) > 1e-6)
    assert strictly_crown > 0
    assert strictly_interm >= 6  # intermediate slopes help on at least half of the nets


def test_alpha_zero_iterations_is_crown_and_bad_args() -> None:
    net = _net(0)
    bm = BoundedModel(net, (4,))
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        cl, cu = bm.compute_bounds(x, 0.3, method="CROWN")
        al, au = bm.compute_bounds(x, 0.3, method="alpha-CROWN", alpha_iterations=0)
    torch.testing.assert_close(al, cl)
    torch.testing.assert_close(au, cu)
    with pytest.raises(ValueError, match="alpha_iterations"):
        bm.compute_bounds(x, 0.3, method="alpha-CROWN", alpha_iterations=-1)
    with pytest.raises(ValueError, match="alpha_lr"):
        bm.compute_bounds(x, 0.3, method="alpha-CROWN", alpha_lr=0.0)
    with pytest.raises(ValueError, match="alpha_lr_decay"):
        bm.compute_bounds(x, 0.3, method="alpha-CROWN", alpha_lr_decay=1.5)


def test_alpha_one_sided_and_bn_residual_sound() -> None:
    """bound_lower / bound_upper alone, and a residual net (two paths into one ReLU)."""
    gen = torch.Generator().manual_seed(13)
    torch.manual_seed(3)
    net = _tb._Res().double()
    bm = BoundedModel(net, (5,))
    x = torch.rand(3, 5, generator=gen, dtype=torch.float64)
    C = torch.randn(3, 4, 3, generator=gen, dtype=torch.float64)
    lo, _ = bm.compute_bounds(x, 0.2, method="alpha-CROWN", C=C, alpha_iterations=6)
    lo1, none1 = bm.compute_bounds(x, 0.2, method="alpha-CROWN", C=C, alpha_iterations=6, bound_upper=False)
    assert none1 is None
    torch.testing.assert_close(lo1, lo)
    _tb._check_inside(net, bm, x, 0.2, math.inf, "alpha-CROWN", C, 300, gen, alpha_iterations=6)
