"""Test helper shared by the BaB tests: a split problem's root bounds by IBP + CROWN."""
from __future__ import annotations

import itertools
from typing import Any

import torch


def crown_root(P: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill ``P.root`` (relu_bab._Problem / act_bab._ActProblem) with IBP + CROWN
    intermediate bounds of one example; returns the split neurons' (lower, upper), flat."""
    ctx = P.ctx(1)
    with torch.no_grad():
        ctx.fill_ibp()
        ctx.fill_crown_intermediate()
    P.root = {i: b for i, b in ctx.bounds.items() if 0 < i < P.g.output}
    rl = torch.cat([P.root[p][0].reshape(-1) for p in P.pre])
    ru = torch.cat([P.root[p][1].reshape(-1) for p in P.pre])
    return rl, ru


def random_mlp(seed: int, sizes: tuple[int, ...], bias_scale: float,
               dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    """A seeded ReLU MLP with layer widths ``sizes`` (Linear, ReLU, ..., Linear): weights
    N(0, 1/fan_in), biases N(0, bias_scale²), drawn in float64, then cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) / m.in_features ** 0.5)
                m.bias.copy_(bias_scale * torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    return net.to(dtype).eval()
