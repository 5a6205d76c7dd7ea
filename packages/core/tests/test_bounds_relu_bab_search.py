"""The ReLU-split search's bookkeeping (certkit.core.bounds.relu_bab): the α / β that
close a domain are those of each row's best α,β iterate, so the confirming re-bound in the
model's arithmetic reproduces the search's bound."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _bab_ref import crown_root, random_mlp

from certkit.core.bounds import relu_bab


def _split_problem(seed: int, D: int = 12) -> tuple[relu_bab._Problem, torch.Tensor]:
    """A 3-layer MLP's problem and D random split vectors over its unstable neurons."""
    net = random_mlp(seed, (6, 16, 16, 3), 0.5)
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(6, generator=g, dtype=torch.float64) - 1.0
    hi = lo + 0.6
    C = torch.tensor([[[1.0, -1.0, 0.0]], [[1.0, 0.0, -1.0]]], dtype=torch.float64)
    d = torch.zeros(2, 1, dtype=torch.float64)
    P = relu_bab._Problem(net, (6,), lo, hi, C.reshape(2, 1, 3), d, torch.ones(2, 1, dtype=torch.bool))
    rl, ru = crown_root(P)
    unstable = torch.nonzero((rl < 0) & (ru > 0)).flatten()
    splits = torch.zeros(D, P.total, dtype=torch.int8)
    for j in range(D):
        pick = unstable[torch.randperm(unstable.numel(), generator=g)[:3]]
        splits[j, pick] = (torch.randint(0, 2, (pick.numel(),), generator=g) * 2 - 1).to(torch.int8)
    return P, splits


def _optimised(P: relu_bab._Problem, splits: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:  # type: ignore[type-arg]
    """The search's α,β optimisation of the domains (large steps, so iterates oscillate):
    (best lower bounds (D, R), opt_out, empty (D,))."""
    ctx, empty = relu_bab._domain_ctx(P, splits, "ibp", None)
    betas = {p: P.split_view(splits, k).to(P.C.dtype) for k, p in enumerate(P.pre)
             if bool((P.split_view(splits, k) != 0).any())}
    R = P.C.shape[0]
    Cb = P.C.unsqueeze(0).expand(splits.shape[0], R, -1)
    with torch.enable_grad():
        lb, _ = ctx.alpha_crown(Cb, True, False, 6, 0.9, intermediate=False, splits=betas, beta_lr=2.0,
                                keep_best=True)
    assert lb is not None
    return lb.detach(), ctx.opt_out, empty


def test_best_iterate_alpha_beta_reproduce_the_search_bound() -> None:
    worse = 0
    for seed in range(4):
        P, splits = _split_problem(seed)
        lb, out, empty = _optimised(P, splits)
        live = ~empty
        _, lb_best = relu_bab._confirm(P, splits, out["best_alphas"], out["best_beta"], "ibp")
        assert torch.allclose(lb_best[live], lb[live], rtol=0, atol=1e-9)
        # the last iterate's α / β (what the confirmation used before) give lower bounds here
        _, lb_last = relu_bab._confirm(P, splits, out["alphas"], out["beta"], "ibp")
        assert bool((lb_last[live] <= lb[live] + 1e-9).all())
        worse += int((lb_last[live] < lb[live] - 1e-6).sum())
    assert worse > 0  # (so the equality above is not trivially met by the last iterate)


def test_the_search_confirms_with_the_best_iterate(monkeypatch: pytest.MonkeyPatch) -> None:
    """relu_split passes each row's best α / β to the confirming re-bound (the last
    iterate's left a third of the domains mnistfc 256x4's float32 search closed open)."""
    net = random_mlp(2, (8, 24, 24, 24, 3), 0.3)
    lo = torch.full((8,), -0.3, dtype=torch.float64)
    hi = -lo
    C = torch.tensor([[[1.0, -1.0, 0.0]], [[0.0, 1.0, -1.0]]], dtype=torch.float64)
    xs = lo + (hi - lo) * torch.rand(4000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = (torch.einsum("nk,bk->bn", C[:, 0], net(xs).detach()).amin(0) - 0.4).reshape(2, 1)
    seen: dict[str, Any] = {"calls": 0}
    bound_domains, confirm = relu_bab._bound_domains, relu_bab._confirm

    def spy_bound(*a: Any, **k: Any) -> dict[str, Any]:
        res = bound_domains(*a, **k)
        seen["best"] = res["ctx"].opt_out.get("best_alphas")
        return res

    def spy_confirm(P: Any, splits: torch.Tensor, alphas: Any, betas: Any, interm: str) -> Any:
        seen["calls"] += 1
        ok, lb = confirm(P, splits, alphas, betas, interm)
        best = seen["best"]
        assert best is not None
        n = splits.shape[0]
        # the α given are rows of the best-iterate α (float32 search: compare in float32)
        for r, a in alphas.items():
            b = best[r].to(a.dtype).reshape(best[r].shape[0], -1)
            for j in range(n):
                assert bool((b == a[j].reshape(1, -1)).all(1).any())
        return ok, lb

    monkeypatch.setattr(relu_bab, "_bound_domains", spy_bound)
    monkeypatch.setattr(relu_bab, "_confirm", spy_confirm)
    r = relu_bab.relu_split(net, (8,), lo, hi, C, d, batch=8, max_domains=4000, pgd_steps=2)
    assert r.status == "unsat"
    assert seen["calls"] > 0


@pytest.mark.parametrize(("sizes", "k"), [((8, 16, 16, 3), 4), ((8, 12, 12, 12, 12, 3), 2)])
def test_fsb_candidates_default_by_depth(monkeypatch: pytest.MonkeyPatch, sizes: tuple[int, ...], k: int) -> None:
    """FSB bounds 4 candidates per domain on shallow nets and 2 on nets of 4 or more ReLU
    layers (fewer domains there); an explicit fsb_candidates wins."""
    net = random_mlp(3, sizes, 0.3)
    lo = torch.full((8,), -0.5, dtype=torch.float64)
    C = torch.tensor([[[1.0, -1.0, 0.0]]], dtype=torch.float64)
    seen: list[int] = []
    real = relu_bab._fsb_choose

    def spy(P: Any, res: Any, scores: torch.Tensor, kk: int) -> torch.Tensor:
        seen.append(kk)
        return real(P, res, scores, kk)

    monkeypatch.setattr(relu_bab, "_fsb_choose", spy)
    d = torch.full((1, 1), -50.0, dtype=torch.float64)  # (far below: the search splits, then stops)
    r = relu_bab.relu_split(net, (8,), lo, -lo, C, d, max_domains=3, pgd_steps=0)
    assert seen and set(seen) == {k} and r.stats["fsb_candidates"] == k
    seen.clear()
    relu_bab.relu_split(net, (8,), lo, -lo, C, d, max_domains=3, pgd_steps=0, fsb_candidates=3)
    assert set(seen) == {3}
