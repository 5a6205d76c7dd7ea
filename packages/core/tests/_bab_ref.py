"""Test helper shared by the BaB tests: a split problem's root bounds by IBP + CROWN."""
from __future__ import annotations

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
