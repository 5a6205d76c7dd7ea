"""Half-precision models (float16 / bfloat16) are bounded in float64.

A bound pass in the model's own half arithmetic, rounding to nearest at every op, lost up
to 0.5 on small random nets (bfloat16 CROWN, outputs of order 10): sampled points of the
same net evaluated in float64 lay outside the certified bounds, and ``verify_property``
answered ``unsat`` on a bfloat16 net where a point of the box met the disjunct in float64
(red team, ``test_bounds_redteam_s5.py``). Every half value is a float64 value, so a float64
copy of the model computes the same function in (nearly) real arithmetic, whose bounds are
as sound as any float64 model's; they reach the caller rounded outward to the half dtype
(lower bounds down, upper bounds up). Thresholds ``d`` and rows ``C`` are compared in
float64, never rounded to half. A ``sat`` witness found on the float64 copy is rounded to
the model's dtype inside the box and re-checked in the model's own arithmetic; where it
does not hold there the answer is ``unknown``.

The bounds of a half model carry no gradient to its parameters (bounding runs on a copy).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from certkit.core.bounds.activations import _outward

HALF = (torch.float16, torch.bfloat16)


def half_dtype(model: nn.Module) -> torch.dtype | None:
    """The model's parameter dtype if it is float16 / bfloat16, else ``None``."""
    p = next((t for t in model.parameters() if t.is_floating_point()), None)
    return p.dtype if p is not None and p.dtype in HALF else None


def widened(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` (exact: every half value is a float64 value); same
    train / eval mode."""
    return copy.deepcopy(model).double()


def _f64(t: Any) -> Any:
    return t.double() if isinstance(t, Tensor) and t.is_floating_point() else t


def outward(lo: Tensor | None, up: Tensor | None, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """float64 bounds in ``dtype``: lower bounds rounded down, upper bounds up."""
    return (None if lo is None else _outward(lo, dtype, up=False)), (None if up is None else _outward(up, dtype, up=True))


def _wide_model(bm: Any) -> Any:
    from certkit.core.bounds.model import BoundedModel

    return BoundedModel(widened(bm.model), bm.input_shape, use_compiled=bm.use_compiled, conv_mode=bm.conv_mode)


def wide_bounds(bm: Any, x: Tensor, eps: Any, norm: Any, method: str, C: Any, x_L: Any, x_U: Any,
                **kw: Any) -> tuple[Tensor | None, Tensor | None]:
    """``BoundedModel.compute_bounds`` of a half model: the same call on a float64 copy
    (rebuilt per call, so it follows every change to the model), rounded outward to
    ``x.dtype``. ``eps``, ``C``, ``x_L``, ``x_U`` are used exactly (not rounded to half)."""
    wide = _wide_model(bm)
    lo, up = wide.compute_bounds(x.double(), _f64(eps), norm, method, _f64(C), _f64(x_L), _f64(x_U), **kw)
    return outward(lo, up, x.dtype)


def wide_intermediate(bm: Any, x: Tensor, eps: Any, norm: Any, method: str, x_L: Any, x_U: Any
                      ) -> dict[str, tuple[Tensor, Tensor]]:
    """``BoundedModel.intermediate_bounds`` of a half model, as :func:`wide_bounds`."""
    wide = _wide_model(bm)
    out = wide.intermediate_bounds(x.double(), _f64(eps), norm, method, _f64(x_L), _f64(x_U))
    return {k: outward(lo, up, x.dtype) for k, (lo, up) in out.items()}  # type: ignore[misc]


def _rechecked(model: nn.Module, input_shape: tuple[int, ...], x: Tensor, boxes: list[tuple[Tensor, Tensor]],
               rows: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor] | None:
    """``x`` (float64, found on the float64 copy) rounded to the model's dtype inside each
    disjunct's box (its half points: the box rounded inward); the first disjunct whose rows
    ``C y <= d`` all hold, compared in float64, at the model's own output gives (x, y)."""
    dt = half_dtype(model)
    assert dt is not None
    for (lo, hi), (C, d) in zip(boxes, rows):
        lo_h = _outward(lo.double().reshape(-1), dt, up=True)  # inward: the smallest half >= lo
        hi_h = _outward(hi.double().reshape(-1), dt, up=False)
        if not bool((lo_h <= hi_h).all()):
            continue
        xh = torch.min(torch.max(x.double().reshape(-1).to(dt), lo_h), hi_h)
        with torch.no_grad():
            y = model(xh.reshape(1, *input_shape)).reshape(-1)
        if bool(((C.double() @ y.double()) <= d.double()).all()):
            return xh, y
    return None


def split_in_float64(split: Callable[..., Any], args: dict[str, Any]) -> Any:
    """``relu_split`` / ``act_split`` / ``input_split`` of a half model (``args``: the call's
    arguments by name): the search on a float64 copy with ``lo``, ``hi``, ``C``, ``d`` (and
    ``root_bounds``) in float64; a ``sat`` witness is re-checked in the model's arithmetic
    (else ``unknown``)."""
    kw = dict(args)
    model = kw.pop("model")
    kw.update(kw.pop("_relu_only", {}))
    for k in ("lo", "hi", "C", "d"):
        kw[k] = torch.as_tensor(kw[k]).double()
    if kw.get("root_bounds") is not None:
        kw["root_bounds"] = {i: (lb.double(), ub.double()) for i, (lb, ub) in kw["root_bounds"].items()}
    r = split(widened(model), **kw)
    if r.status != "sat" or r.x is None:
        return r
    C, d, valid = kw["C"], kw["d"], kw.get("valid")
    if C.dim() == 2:
        rows = [(C, d.reshape(-1))]
    else:
        v = torch.ones(d.shape, dtype=torch.bool) if valid is None else torch.as_tensor(valid, dtype=torch.bool)
        rows = [(C[i][v[i]], d[i][v[i]]) for i in range(C.shape[0])]
    hit = _rechecked(model, kw["input_shape"], r.x, [(kw["lo"], kw["hi"])] * len(rows), rows)
    if hit is None:
        return dataclasses.replace(r, status="unknown", x=None, y=None)
    return dataclasses.replace(r, x=hit[0], y=hit[1])


def verify_in_float64(verify: Callable[..., Any], model: nn.Module, input_shape: tuple[int, ...], prop: Any,
                      timeout: float, **kw: Any) -> Any:
    """``verify_property`` of a half model: run on a float64 copy (the property's boxes,
    rows and thresholds exactly as parsed); a ``sat`` witness is re-checked in the model's
    arithmetic (else ``unknown``)."""
    t0 = time.perf_counter()
    wide = widened(model)
    left = timeout - (time.perf_counter() - t0)
    r = verify(wide, input_shape, prop, timeout=left if left > 0 else math.ulp(0.0), **kw)
    r = dataclasses.replace(r, time_s=time.perf_counter() - t0)
    if r.status != "sat" or r.x is None:
        return r
    boxes = [(torch.as_tensor(c.lo, dtype=torch.float64), torch.as_tensor(c.hi, dtype=torch.float64))
             for c in prop.clauses]
    rows = [(torch.as_tensor(c.C, dtype=torch.float64), torch.as_tensor(c.d, dtype=torch.float64))
            for c in prop.clauses]
    hit = _rechecked(model, input_shape, torch.as_tensor(r.x, dtype=torch.float64), boxes, rows)
    if hit is None:
        return dataclasses.replace(r, status="unknown", x=None, y=None)
    return dataclasses.replace(r, x=hit[0].double().numpy(), y=hit[1].double().numpy())
