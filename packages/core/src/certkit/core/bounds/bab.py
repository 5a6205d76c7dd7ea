"""Complete verification of low-dimensional properties by input splitting (branch and bound).

A VNN-LIB disjunct asks whether some ``x`` in the box ``[lo, hi]`` satisfies every row of
``C @ f(x) <= d``. One bound pass over the whole box is usually too loose to rule that out
(on ACAS Xu the CROWN lower bound of property 1 over its box is about -800 against a
threshold of -4). Splitting the box and bounding every part is complete in the limit and
fast when the input has few dimensions (ACAS Xu has 5): ReluVal (Wang et al., USENIX
Security 2018) and Neurify (Wang et al., NeurIPS 2018) split the input, α,β-CROWN (Wang et
al., NeurIPS 2021; Xu et al., ICLR 2021) does the same with batched CROWN bounds on the
sub-boxes, which is what this module does:

1. take up to ``batch`` open boxes (depth first, so the queue stays small);
2. evaluate the model at every box's centre and after a few signed-gradient steps inside
   it: a point that satisfies every row of the disjunct is a counterexample (``sat``),
   returned after a re-check by a plain forward pass;
3. bound ``C @ f`` over each box with :class:`~certkit.core.bounds.BoundedModel`
   (CROWN by default); a box is closed when some row's certified lower bound exceeds its
   threshold (no point of the box can satisfy that row, so none satisfies the disjunct);
4. split every open box in two halves along the input with the largest estimated effect
   on the bound of the row closest to being proven: by default the sensitivity of its
   CROWN lower bound to the box's sides, ``(∂lb/∂lo_i - ∂lb/∂hi_i) · (hi_i - lo_i)``
   (for a linear bound ``A x + b`` this is ``|A_i|`` times the width, the effect that
   α,β-CROWN's input-split heuristic estimates), or ReluVal's "smear"
   ``|∂(c·f)/∂x_i| · (hi_i - lo_i)`` at the centre.

Guarantee: ``unsat`` means every box of a partition of ``[lo, hi]`` was closed by a sound
bound, so the disjunct is unsatisfiable whenever the bounds are sound (same float
arithmetic as the model; run in float64 for VNN-COMP). ``sat`` comes with a witness
inside the box that satisfies every row in the model's own arithmetic. Otherwise the
result is ``timeout`` (the deadline passed) or ``unknown`` (``max_boxes`` reached).

Shapes: ``lo``, ``hi`` (n,) with ``n = prod(input_shape)``; ``C`` (S, K); ``d`` (S,).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from certkit.core.bounds.deadline import fits
from certkit.core.bounds.fused import centre_radius
from certkit.core.bounds.half import half_dtype, split_in_float64
from certkit.core.bounds.model import BoundedModel

BoundFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(lo (b, n), hi (b, n), C (b, S, K)) -> certified lower bounds of C @ f, (b, S)."""


@dataclass
class SplitResult:
    """``status`` in sat / unsat / timeout / unknown; ``x`` (n,) and ``y`` (K,) for sat;
    ``boxes`` bounded, ``max_depth`` reached, ``time_s``."""

    status: str
    boxes: int = 0
    max_depth: int = 0
    time_s: float = 0.0
    x: Tensor | None = None
    y: Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)


def _check(batch: int, max_boxes: int, pgd_steps: int) -> None:
    for name, v, least in (("batch", batch, 1), ("max_boxes", max_boxes, 1), ("pgd_steps", pgd_steps, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{name}: expected an integer >= {least}, got {v!r}")


def as_problem(model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor, d: Tensor
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``lo``, ``hi`` flattened to (n,) and everything in the model's parameter dtype
    (float64 for a model without parameters)."""
    n = math.prod(input_shape)
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None else torch.float64
    lo_t, hi_t = torch.as_tensor(lo, dtype=dtype), torch.as_tensor(hi, dtype=dtype)
    for name, t in (("lo", lo_t), ("hi", hi_t)):
        if t.numel() != n:
            raise ValueError(f"{name}: expected {n} entries (input_shape {tuple(input_shape)}), got {t.numel()}")
    C_t, d_t = torch.as_tensor(C, dtype=dtype), torch.as_tensor(d, dtype=dtype)
    if bool(torch.isnan(d_t).any()) or bool(torch.isnan(C_t).any()):
        raise ValueError("d: NaN in the thresholds" if bool(torch.isnan(d_t).any()) else "C: NaN in its rows")
    return lo_t.reshape(n), hi_t.reshape(n), C_t, d_t


def input_split(model: nn.Module, input_shape: tuple[int, ...], lo: Tensor, hi: Tensor, C: Tensor,
                d: Tensor, *, deadline: float | None = None, method: str = "CROWN", batch: int = 256,
                max_boxes: int = 10_000_000, pgd_steps: int = 3,
                bound_fn: BoundFn | None = None, split: str = "bound") -> SplitResult:
    """Decide one disjunct ``∃ x ∈ [lo, hi]: C @ model(x) <= d`` by input splitting.

    Args:
        model: (B, *input_shape) -> (B, K), in eval mode; its dtype is used throughout.
        lo, hi: (n,) input box.
        C, d: (S, K) and (S,): the disjunct's rows (all must hold for a counterexample).
        deadline: a ``time.perf_counter()`` value after which the search stops (``timeout``).
        method: the bound method for each box (``"CROWN"``, ``"IBP"``, ``"CROWN-IBP"``,
            ``"alpha-CROWN"``).
        batch: boxes bounded per call.
        max_boxes: stop with ``unknown`` after this many boxes.
        pgd_steps: signed-gradient steps per box looking for a counterexample.
        bound_fn: replaces the bound computation (tests plant bugs through it).
        split: how the input to split is chosen: ``"bound"`` (default) by the sensitivity
            of the row's CROWN lower bound to each side of the box, ``d lb/d lo_i - d lb/d hi_i``
            times the width (one extra differentiable CROWN pass per batch; on ACAS Xu it
            needs about 4x fewer boxes), or ``"smear"``: ``|∂(c·f)/∂x_i| · width_i`` at the
            centre (ReluVal's smear with the gradient at one point, cheaper per box).
    """
    if half_dtype(model) is not None:  # searched on a float64 copy, a witness re-checked in half (bounds/half.py)
        return split_in_float64(input_split, dict(locals()))
    _check(batch, max_boxes, pgd_steps)
    if split not in ("bound", "smear"):
        raise ValueError(f"split: expected 'bound' or 'smear', got {split!r}")
    t0 = time.perf_counter()
    lo, hi, C, d = as_problem(model, input_shape, lo, hi, C, d)
    d = d.reshape(-1)
    if C.dim() != 2 or C.shape[0] != d.shape[0]:
        raise ValueError(f"C, d: expected (S, K) and (S,), got {tuple(C.shape)} and {tuple(d.shape)}")
    if not bool((lo <= hi).all()):
        raise ValueError("lo, hi: the input box is empty (lo > hi somewhere)")
    if C.shape[0] == 0:  # no output constraint: any point of the box is a counterexample
        x = (lo + hi) / 2
        with torch.no_grad():
            y = model(x.reshape(1, *input_shape)).reshape(-1)
        return SplitResult("sat", 0, 0, time.perf_counter() - t0, x, y)
    model = model.eval()
    bm = BoundedModel(model, tuple(input_shape)) if split == "bound" or bound_fn is None else None
    if bm is not None and C.shape[1] != math.prod(bm.graph.shapes[bm.graph.output]):
        raise ValueError(f"C: rows of {C.shape[1]} entries, the model has {math.prod(bm.graph.shapes[bm.graph.output])} outputs")
    if bound_fn is None:
        assert bm is not None

        def bound_fn(blo: Tensor, bhi: Tensor, bC: Tensor) -> Tensor:
            shp = (blo.shape[0], *input_shape)
            mid, eps = centre_radius(blo, bhi)
            mid, eps = mid.reshape(shp), eps.amax(1)
            grad = torch.enable_grad() if method.lower() == "alpha-crown" else torch.no_grad()
            with grad:
                lb, _ = bm.compute_bounds(mid, eps, method=method, C=bC, x_L=blo.reshape(shp),
                                          x_U=bhi.reshape(shp), bound_upper=False, deadline=deadline)
            return lb.detach()

    def objective(x: Tensor) -> tuple[Tensor, Tensor]:
        """(b, S) row values c·f(x) - d (a counterexample has all <= 0) and f(x) (b, K)."""
        y = model(x.reshape(-1, *input_shape)).reshape(x.shape[0], -1)
        return y @ C.T - d, y

    los, his, depth = [lo.unsqueeze(0)], [hi.unsqueeze(0)], [torch.zeros(1, dtype=torch.long)]
    boxes = 0
    max_depth = 0
    per_box = 0.0
    t_bound = 0.0
    while los:
        if deadline is not None and time.perf_counter() > deadline:
            return SplitResult("timeout", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
        if boxes >= max_boxes:
            return SplitResult("unknown", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
        # pop up to `batch` boxes from the top of the stack (depth first)
        blo, bhi, bdep = torch.cat(los), torch.cat(his), torch.cat(depth)
        take = min(batch, blo.shape[0])
        if deadline is not None and per_box > 0:
            # near the deadline, take only what fits in a quarter of the time left; stop when
            # not even one box (bound + split, measured on the last batch) can end in time
            if not fits(deadline, per_box):
                return SplitResult("timeout", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
            take = max(1, int(min(take, (deadline - time.perf_counter()) / (4 * per_box))))  # (inf: no limit)
        rest = blo.shape[0] - take
        los, his, depth = ([blo[:rest]], [bhi[:rest]], [bdep[:rest]]) if rest else ([], [], [])
        blo, bhi, bdep = blo[rest:], bhi[rest:], bdep[rest:]
        boxes += take
        max_depth = max(max_depth, int(bdep.max()))

        # counterexample search: the centre, then a few signed-gradient steps on the worst row
        x = centre_radius(blo, bhi)[0]
        width = bhi - blo
        for step in range(pgd_steps + 1):
            with torch.no_grad():
                v, y = objective(x)
            worst = v.amax(1)
            hit = torch.nonzero(worst <= 0).flatten()
            if hit.numel():
                j = int(hit[0])
                return SplitResult("sat", boxes, max_depth, time.perf_counter() - t0, x[j].detach().clone(),
                                   y[j].detach().clone(), stats={"bound_s": t_bound})
            if step == pgd_steps:
                break
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                vv, _ = objective(xg)
                (g,) = torch.autograd.grad(vv.amax(1).sum(), xg)
            x = torch.min(torch.max(x - 0.5 ** (step + 2) * width * g.sign(), blo), bhi)

        t1 = time.perf_counter()
        lb = bound_fn(blo, bhi, C.unsqueeze(0).expand(take, -1, -1))
        t_bound += time.perf_counter() - t1
        if deadline is not None and time.perf_counter() > deadline:
            return SplitResult("timeout", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
        margin = lb - d  # > 0 on some row: the box holds no counterexample
        closed = (margin > 0).any(1)
        open_ = torch.nonzero(~closed).flatten()
        if open_.numel() == 0:
            continue
        olo, ohi, odep = blo[open_], bhi[open_], bdep[open_]
        row = margin[open_].argmax(1)
        if split == "bound" and bm is not None:
            # split dimension: how fast the row's certified bound falls as the box widens
            # along each input, d lb / d lo_i - d lb / d hi_i, times the width
            blo_g, bhi_g = olo.clone().requires_grad_(True), ohi.clone().requires_grad_(True)
            shp = (olo.shape[0], *input_shape)
            with torch.enable_grad():
                mid_g, rad_g = centre_radius(blo_g, bhi_g)
                lbg, _ = bm.compute_bounds(mid_g.reshape(shp), rad_g.amax(1),
                                           method="CROWN", C=C.unsqueeze(0).expand(olo.shape[0], -1, -1),
                                           x_L=blo_g.reshape(shp), x_U=bhi_g.reshape(shp), bound_upper=False,
                                           deadline=deadline)
                g_lo, g_hi = torch.autograd.grad(lbg.gather(1, row.unsqueeze(1)).sum(), (blo_g, bhi_g))
            score = (g_lo - g_hi).clamp(min=0) * (ohi - olo)
        else:
            # split dimension: |gradient of the row closest to proven| x width, at the centre
            xc = centre_radius(olo, ohi)[0].detach().requires_grad_(True)
            with torch.enable_grad():
                vv, _ = objective(xc)
                sel = vv.gather(1, row.unsqueeze(1)).sum()
                (g,) = torch.autograd.grad(sel, xc)
            score = g.abs() * (ohi - olo)
        score = torch.where(ohi > olo, score, torch.full_like(score, -1.0))  # never split a point
        # a zero gradient (dead region) still needs a split: fall back to the widest input
        flat = score.amax(1) <= 0
        if bool(flat.any()):
            score[flat] = (ohi - olo)[flat]
        dim = score.argmax(1)
        ar = torch.arange(open_.numel())
        mid = centre_radius(olo[ar, dim], ohi[ar, dim])[0]
        if bool(((mid <= olo[ar, dim]) | (mid >= ohi[ar, dim])).any()):
            # a box as narrow as the float grid cannot be split further: give up honestly
            return SplitResult("unknown", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
        left_hi = ohi.clone()
        left_hi[ar, dim] = mid
        right_lo = olo.clone()
        right_lo[ar, dim] = mid
        los.append(torch.cat([olo, right_lo]))
        his.append(torch.cat([left_hi, ohi]))
        depth.append(torch.cat([odep + 1, odep + 1]))
        per_box = (time.perf_counter() - t1) / take  # bound + split cost of one box, last batch
    return SplitResult("unsat", boxes, max_depth, time.perf_counter() - t0, stats={"bound_s": t_bound})
