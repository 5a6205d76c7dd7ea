"""``BoundedModel``: certified lower/upper bounds on ``C @ model(x')`` for every x' in an
ℓ∞ or ℓ2 ball around x, by

- IBP (interval bound propagation; Gowal et al. 2018, arXiv:1810.12715),
- CROWN (backward linear relaxation; Zhang et al. 2018, arXiv:1811.00866),
- CROWN-IBP (IBP intermediate bounds, CROWN at the output; Zhang et al. 2020,
  arXiv:1906.06316),
- α-CROWN (CROWN with the lower ReLU slopes optimised by projected gradient; Xu et al.
  2021, arXiv:2011.13824).

Guarantee: for every x' in the perturbation set (and within ``[x_L, x_U]`` when given),
``lower <= C @ model(x') <= upper`` holds exactly in real arithmetic; in floating point the
bounds are computed with the same ops as the model (no directed rounding), like
auto_LiRPA. The method names and call shape mirror auto_LiRPA's so users can switch.

Intermediate bounds (documented choice): for CROWN, every ReLU's pre-activation bounds are
computed by CROWN and intersected with the IBP bounds of the same node (IBP recomputed from
the already tightened earlier layers); CROWN is evaluated only on the neurons that IBP
finds unstable for that example (stable neurons keep their IBP bounds, which fix the same,
exact relaxation). This matches auto_LiRPA's default (sparse intermediate bounds with IBP
references) up to the rare neuron where CROWN is looser than IBP. With ``tighten_with_ibp=True`` the final bounds are also
intersected with IBP's, so the result is never looser than IBP.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Literal

import torch
from torch import nn

from certkit.core.bounds import alpha_sets, fused, ops, patches
from certkit.core.bounds.deadline import fits as deadline_fits
from certkit.core.bounds.deadline import how_many
from certkit.core.bounds.graph import Graph, UnsupportedLayerError, capture, structure_key

Tensor = torch.Tensor
Method = Literal["IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"]
_METHODS = {"ibp": "IBP", "crown": "CROWN", "crown-ibp": "CROWN-IBP", "alpha-crown": "alpha-CROWN",
            "crown-optimized": "alpha-CROWN", "ibp+backward": "CROWN-IBP"}


def margin_spec(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """C (B, K-1, K) with rows e_y - e_j for every j != y (j ascending): ``C @ logits`` are
    the margins of the true class; all lower bounds > 0 certify the prediction. Built with
    two scatters into zeros (row j: +1 at y, -1 at j + [j >= y])."""
    y = y.reshape(-1).long()
    B = y.shape[0]
    K = num_classes
    C = torch.zeros(B, K - 1, K, dtype=dtype, device=y.device)
    yc = y.view(B, 1, 1)
    j = torch.arange(K - 1, device=y.device).view(1, K - 1, 1)
    others = j + (j >= yc).long()  # (B, K-1, 1): the classes != y, ascending
    C.scatter_(2, yc.expand(B, K - 1, 1), 1.0)
    return C.scatter_(2, others, -1.0)


class BoundedModel(nn.Module):
    """Wrap ``model`` (eval-mode semantics for BN unless the model is in train mode, see
    :class:`~certkit.core.bounds.ops.BatchNorm`) for bound propagation.

    Args:
        model: a torch module made of supported layers (see :mod:`certkit.core.bounds.graph`),
            or the module of a ``torch.export`` program (its ATen graph is mapped back onto
            nn layers, :mod:`certkit.core.bounds.exported`). TorchScript is rejected.
        input_shape: the per-example input shape without the batch dimension, e.g.
            ``(1, 28, 28)``.
        use_compiled: dispatch inference-only CPU calls on Linear/Conv/ReLU chains to the
            compiled kernels (``certkit.core._core.bounds``); ``False`` forces torch.
        conv_mode: ``"patches"`` (default) computes the CROWN intermediate bounds of
            (C, H, W) nodes with local windows (:mod:`certkit.core.bounds.patches`, as
            auto_LiRPA's ``conv_mode``); ``"matrix"`` with dense coefficient matrices.
            Both give the same bounds up to float rounding.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...] | torch.Size, *,
                 use_compiled: bool = True, conv_mode: str = "patches") -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"input_shape: expected positive sizes, got {tuple(input_shape)!r}")
        if conv_mode not in ("patches", "matrix"):
            raise ValueError(f"conv_mode: expected 'patches' or 'matrix', got {conv_mode!r}")
        self.conv_mode = conv_mode
        if isinstance(model, torch.jit.ScriptModule):
            raise UnsupportedLayerError(
                "model: a TorchScript module cannot be bounded (its graph is not capturable by torch.fx); "
                "save it with torch.export (.pt2) or load it as module:factory + state_dict")
        from certkit.core.bounds.exported import from_exported, is_aten_graph

        if is_aten_graph(model):
            model = from_exported(model)  # type: ignore[arg-type]  # torch.export program → nn layers
        self.model = model
        self.input_shape = shape
        self.graph: Graph = capture(model, shape)
        self.__dict__["_structure"] = structure_key(model)
        self.use_compiled = use_compiled
        self._compiled_plan: Any = None

    # ------------------------------------------------------------------ helpers
    def forward(self, x: Tensor) -> Tensor:
        """The model's output through the captured graph. (B, *input_shape) → (B, K)."""
        self._follow_structure()
        return self.graph.forward(x)[self.graph.output]

    def _param_key(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        """A key that changes whenever the content of a parameter or buffer changes: the
        (data_ptr, _version) of every tensor (replaced, moved, updated in place) *and* a
        generation counter bumped when the content differs from the snapshot taken at the
        last change (writes through ``.data`` bypass the version counter). Every cache of
        parameter-derived state (the finiteness check, the compiled kernels' arrays with
        folded BatchNorm and transposed IBP panels) is keyed on it. The snapshot compare is
        exact (``torch.equal``, no hash collisions) and costs one pass over the parameters,
        which every bounding call reads anyway. The module list is captured once (the
        graph is fixed at construction)."""
        mods = self.__dict__.get("_mods")
        if mods is None:
            mods = tuple(self.model.modules())
            self.__dict__["_mods"] = mods
        ts = [t for m in mods for d in (m._parameters, m._buffers) for t in d.values() if t is not None]
        ptrs = tuple((t.data_ptr(), t._version) for t in ts)
        snap = self.__dict__.get("_snapshot")
        with torch.no_grad():
            same = (snap is not None and snap[0] == ptrs and len(snap[1]) == len(ts)
                    and all(a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
                            for a, b in zip(snap[1], ts)))
            if not same:
                gen = self.__dict__.get("_generation", 0) + 1
                self.__dict__["_generation"] = gen
                self.__dict__["_snapshot"] = (ptrs, [t.detach().clone() for t in ts])
        return self.__dict__["_generation"], ptrs

    def _follow_structure(self) -> None:
        """Capture the model again when a submodule was replaced or a plain attribute changed
        since the last call (:func:`~certkit.core.bounds.graph.structure_key`: LeakyReLU's
        slope, Softplus's β, train / eval): the graph copied them at capture, so the bounds
        were those of the old model. Every parameter-keyed cache starts afresh."""
        key = structure_key(self.model)
        if key != self.__dict__["_structure"]:
            self.graph = capture(self.model, self.input_shape)
            self._compiled_plan = None
            for k in ("_mods", "_snapshot", "_checked_key", "_compiled_arrays"):
                self.__dict__.pop(k, None)
            self.__dict__["_structure"] = key

    def _check_params(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        # re-checked only when a parameter or buffer changed (content or identity)
        self._follow_structure()
        key = self._param_key()
        if self.__dict__.get("_checked_key") != key:
            self._check_params_now()
            self.__dict__["_checked_key"] = key
        return key

    def _check_params_now(self) -> None:
        for name, p in self.model.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise ValueError(f"model: parameter '{name}' contains NaN or inf")
        for name, b in self.model.named_buffers():
            if b.is_floating_point() and not bool(torch.isfinite(b).all()):
                raise ValueError(f"model: buffer '{name}' contains NaN or inf")

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.input_shape or x.dim() != len(self.input_shape) + 1:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        p = next((t for t in self.model.parameters() if t.is_floating_point()), None)
        if not x.is_floating_point() or (p is not None and x.dtype != p.dtype):
            want = p.dtype if p is not None else "a floating dtype"
            raise ValueError(f"x: expected dtype {want} (the model's), got {x.dtype}; convert it with x.to({want})")

    def _input_box(self, x: Tensor, eps: float | Tensor, norm: float, x_L: Tensor | None,
                   x_U: Tensor | None) -> tuple[Tensor, Tensor]:
        if norm == math.inf:
            lo = x - eps
            hi = x + eps
            # in place into the fresh x ± eps buffers when nothing is traced and no dtype or
            # shape promotion happens (same values as torch.max / torch.min)
            if x_L is not None:
                lo = torch.maximum(lo, x_L, out=lo) if _same_layout(lo, x_L) else torch.max(lo, x_L)
            if x_U is not None:
                hi = torch.minimum(hi, x_U, out=hi) if _same_layout(hi, x_U) else torch.min(hi, x_U)
        else:
            lo, hi = x - eps, x + eps  # the ℓ2 ball lies inside this box
        return lo, hi

    @staticmethod
    def _domain_error(x_L: Tensor | None, x_U: Tensor | None) -> None:
        """Raises the first problem with the domain bounds x_L / x_U, if any."""
        for nm, t in (("x_L", x_L), ("x_U", x_U)):
            if t is not None and bool(torch.isnan(t).any()):
                raise ValueError(f"{nm}: contains NaN")
        if x_L is not None and x_U is not None and bool((x_L > x_U).any()):
            raise ValueError("x_L, x_U: x_L must be <= x_U")

    # ------------------------------------------------------------------ public API
    def compute_bounds(self, x: Tensor, eps: float | Tensor = 0.0, norm: float | str = math.inf,
                       method: str = "CROWN", C: Tensor | None = None, x_L: Tensor | None = None,
                       x_U: Tensor | None = None, *, y: Tensor | None = None,
                       bound_lower: bool = True, bound_upper: bool = True,
                       tighten_with_ibp: bool = False, alpha_iterations: int = 20,
                       alpha_lr: float = 0.5, alpha_lr_decay: float = 0.98,
                       alpha_intermediate: bool = True, alpha_shared: bool = False,
                       deadline: float | None = None) -> tuple[Tensor, Tensor]:
        """Lower and upper bounds on ``C @ model(x')`` over the perturbation set.

        Args:
            x: (B, *input_shape) clean inputs.
            eps: radius (float, or a (B,) tensor of per-example radii), >= 0.
            norm: ``inf`` (also ``"inf"``, ``"linf"``) or ``2``.
            method: ``"IBP"``, ``"CROWN"``, ``"CROWN-IBP"`` or ``"alpha-CROWN"``
                (case-insensitive).
            C: (S, K) or (B, S, K) specification. When ``None``: the margin spec
                :func:`margin_spec` of ``y`` if ``y`` is given, else the identity
                (bounds on the logits themselves).
            x_L, x_U: (B, *input_shape) domain bounds (e.g. 0 and 1 for images), intersected
                with the ℓ∞ ball; with ``eps=0`` they define the box alone. Only for ℓ∞.
            y: (B,) labels, used for the default margin spec.
            tighten_with_ibp: intersect the final CROWN/α-CROWN bounds with IBP's.
            alpha_iterations, alpha_lr, alpha_lr_decay: α-CROWN's Adam steps, learning rate
                and its per-step exponential decay (defaults as auto_LiRPA: 20, 0.5, 0.98).
            alpha_intermediate: also optimise the slopes used for every intermediate
                (pre-activation) bound, one α set per (start node, ReLU) pair (full
                α-CROWN); ``False`` optimises only the output's slopes.
            alpha_shared: one α per ReLU neuron shared by all start nodes (less memory).
            deadline: a ``time.perf_counter()`` value. Past it, α-CROWN stops iterating
                (the best bounds so far are returned) and CROWN stops tightening
                intermediate bounds (the rest keep their IBP bounds): the result is still
                sound, only looser, and the call returns within one step of the deadline.

        Returns:
            ``(lower, upper)``, each (B, S). A bound that is not requested is ``None``.
        """
        norm_v = _check_norm(norm)
        m = _METHODS.get(str(method).lower())
        if m is None:
            raise ValueError(f"method: expected one of IBP, CROWN, CROWN-IBP, alpha-CROWN, got {method!r}")
        self._check_x(x)
        # a finite sum implies finite entries (NaN / inf propagate); the exact check runs
        # only when the sum is not finite (it may also overflow on finite input)
        if not math.isfinite(float(x.detach().sum())) and not bool(torch.isfinite(x).all()):
            raise ValueError("x: contains NaN or inf")
        if x.dtype in (torch.float16, torch.bfloat16):  # bounded in float64, rounded outward (bounds/half.py)
            from certkit.core.bounds.half import wide_bounds
            return wide_bounds(self, x, eps, norm, method, C, x_L, x_U, y=y, bound_lower=bound_lower,
                               bound_upper=bound_upper, tighten_with_ibp=tighten_with_ibp,
                               alpha_iterations=alpha_iterations, alpha_lr=alpha_lr, alpha_lr_decay=alpha_lr_decay,
                               alpha_intermediate=alpha_intermediate, alpha_shared=alpha_shared, deadline=deadline)
        B = x.shape[0]
        eps_t = _check_eps(eps, B, x)
        for nm, t in (("x_L", x_L), ("x_U", x_U)):
            if t is not None:
                if not isinstance(t, torch.Tensor):
                    raise TypeError(f"{nm}: expected a torch.Tensor, got {type(t).__name__}")
                if tuple(t.shape) != tuple(x.shape):
                    raise ValueError(f"{nm}: shape {tuple(t.shape)} does not match x {tuple(x.shape)}")
                if norm_v != math.inf:
                    raise ValueError(f"{nm}: domain bounds are only supported with norm=inf")
        pkey = self._check_params()
        K = self.graph.shapes[self.graph.output]
        if len(K) != 1:
            raise ValueError(f"model: expected a (B, K) output, got per-example shape {K}")
        Cb = self._spec(C, y, B, K[0], x)
        lo_box, hi_box = self._input_box(x, eps_t, norm_v, x_L, x_U)
        # one pass on the box catches every bad domain: a NaN in x_L / x_U propagates into the
        # box (torch.max / min keep NaN), and x_L > x_U anywhere gives lo_box >= x_L > x_U >=
        # hi_box there; the detailed checks (and their messages) run only on failure
        # without x_L / x_U the box is never empty (x, eps finite, eps >= 0: x - eps <= x + eps
        # in any rounding), so the pass runs only when a domain bound is given
        if (x_L is not None or x_U is not None) and not bool((lo_box <= hi_box).all()):
            self._domain_error(x_L, x_U)
            raise ValueError("x_L, x_U: the perturbation set is empty (x ± eps does not meet [x_L, x_U])")

        if self._use_compiled(x, m, norm_v):
            from certkit.core.bounds import compiled
            res = compiled.compute(self, lo_box, hi_box, Cb, m, key=pkey)
            if res is not None:
                lo, up = _no_nan(*res)
                return (lo if bound_lower else None), (up if bound_upper else None)  # type: ignore[return-value]

        ctx = _Ctx(self.graph, x, lo_box, hi_box, eps_t, norm_v)
        ctx.deadline = deadline
        ctx.conv_mode = self.conv_mode
        if m == "IBP":
            lo, up = ctx.ibp_output(Cb)
        elif m == "CROWN-IBP":
            ctx.fill_ibp()
            lo, up = ctx.crown(self.graph.output, Cb, bound_lower, bound_upper)
        else:
            ctx.fill_ibp()
            ctx.fill_crown_intermediate()
            if m == "alpha-CROWN":
                if int(alpha_iterations) < 0:
                    raise ValueError(f"alpha_iterations: expected an integer >= 0, got {alpha_iterations!r}")
                if not (float(alpha_lr) > 0 and math.isfinite(float(alpha_lr))):
                    raise ValueError(f"alpha_lr: expected a finite value > 0, got {alpha_lr!r}")
                if not 0 < float(alpha_lr_decay) <= 1:
                    raise ValueError(f"alpha_lr_decay: expected a value in (0, 1], got {alpha_lr_decay!r}")
                lo, up = ctx.alpha_crown(Cb, bound_lower, bound_upper, int(alpha_iterations), float(alpha_lr),
                                         intermediate=alpha_intermediate, shared=alpha_shared,
                                         lr_decay=float(alpha_lr_decay))
            elif ctx.output_fits(Cb.shape[1] * (int(bound_lower) + int(bound_upper))):
                lo, up = ctx.crown(self.graph.output, Cb, bound_lower, bound_upper)
            else:  # the output pass would end past the deadline: IBP's (sound) bounds
                lo, up = ctx.ibp_output(Cb)
            if tighten_with_ibp:
                il, iu = ctx.ibp_output(Cb)
                lo = torch.max(lo, il) if lo is not None else None
                up = torch.min(up, iu) if up is not None else None
        lo, up = _no_nan(lo, up)
        return (lo if bound_lower else None), (up if bound_upper else None)  # type: ignore[return-value]

    def intermediate_bounds(self, x: Tensor, eps: float, norm: float | str = math.inf, method: str = "IBP",
                            x_L: Tensor | None = None, x_U: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """Bounds of every ReLU's pre-activation, keyed by the ReLU's name (IBP or CROWN)."""
        norm_v = _check_norm(norm)
        self._check_x(x)
        if x.dtype in (torch.float16, torch.bfloat16):  # bounded in float64, rounded outward (bounds/half.py)
            from certkit.core.bounds.half import wide_intermediate
            return wide_intermediate(self, x, eps, norm, method, x_L, x_U)
        self._check_params()
        eps_t = _check_eps(eps, x.shape[0], x)
        lo_box, hi_box = self._input_box(x, eps_t, norm_v, x_L, x_U)
        ctx = _Ctx(self.graph, x, lo_box, hi_box, eps_t, norm_v)
        ctx.conv_mode = self.conv_mode
        ctx.fill_ibp()
        if str(method).lower() == "crown":
            ctx.fill_crown_intermediate()
        out = {}
        for i, op in enumerate(self.graph.nodes):
            if op.nonlinear:
                out[op.name] = ctx.bounds[self.graph.inputs[i][0]]
        return out

    # ------------------------------------------------------------------ internals
    def _spec(self, C: Tensor | None, y: Tensor | None, B: int, K: int, x: Tensor) -> Tensor:
        if C is None:
            if y is None:
                return torch.eye(K, dtype=x.dtype, device=x.device).unsqueeze(0).expand(B, K, K)
            if not isinstance(y, torch.Tensor):
                y = torch.as_tensor(y)
            if y.shape != (B,):
                raise ValueError(f"y: expected shape ({B},), got {tuple(y.shape)}")
            if bool(((y < 0) | (y >= K)).any()):
                raise ValueError(f"y: labels must lie in [0, {K})")
            return margin_spec(y.to(x.device), K, x.dtype)
        if not isinstance(C, torch.Tensor):
            raise TypeError(f"C: expected a torch.Tensor, got {type(C).__name__}")
        if C.dim() == 2:
            C = C.unsqueeze(0).expand(B, *C.shape)
        if C.dim() != 3 or C.shape[0] != B or C.shape[2] != K:
            raise ValueError(f"C: expected shape (S, {K}) or ({B}, S, {K}), got {tuple(C.shape)}")
        if not math.isfinite(float(C.detach().sum())) and not bool(torch.isfinite(C).all()):  # as for x
            raise ValueError("C: contains NaN or inf")
        return C.to(x.dtype)

    def _use_compiled(self, x: Tensor, method: str, norm: float) -> bool:
        if not self.use_compiled or x.device.type != "cpu" or (torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad for p in self.model.parameters()))):
            return False
        if method not in ("IBP", "CROWN", "CROWN-IBP") or norm != math.inf:
            return False
        if x.dtype not in (torch.float32, torch.float64):
            return False
        from certkit.core.bounds import compiled
        return compiled.supported(self)


def _no_nan(lo: Tensor | None, up: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """A NaN bound (inf - inf or 0 * inf after an overflow, e.g. eps = 3e38 in float32)
    bounds nothing: -inf / +inf instead, which are sound. So is a lower bound of +inf or an
    upper bound of -inf (an overflowing centre W·mid + b on a finite set: red team s6)."""
    # (a finite sum: every entry finite, the usual case, one pass; else the entrywise check)
    if lo is not None and not math.isfinite(float(lo.detach().sum())) and not bool((lo < math.inf).all()):
        lo = torch.where(lo < math.inf, lo, torch.full_like(lo, -math.inf))
    if up is not None and not math.isfinite(float(up.detach().sum())) and not bool((up > -math.inf).all()):
        up = torch.where(up > -math.inf, up, torch.full_like(up, math.inf))
    return lo, up


def _check_norm(norm: float | str) -> float:
    if isinstance(norm, str):
        s = norm.lower()
        if s in ("inf", "linf", "l_inf", "∞"):
            return math.inf
        if s in ("2", "l2"):
            return 2.0
        raise ValueError(f"norm: expected inf or 2, got {norm!r}")
    try:
        v = float(norm)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"norm: expected inf or 2, got {norm!r}") from exc
    if v == math.inf or v == 2.0:
        return v
    raise ValueError(f"norm: expected inf or 2, got {norm!r}")


def _same_layout(a: Tensor, b: Tensor) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)))


_FINITE_MAX = {dt: float(torch.finfo(dt).max) for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def _check_eps(eps: float | Tensor, B: int, x: Tensor) -> Tensor:
    if isinstance(eps, torch.Tensor):
        e = eps.to(dtype=x.dtype, device=x.device)
        if e.dim() == 0:
            e = e.expand(B)
        if e.shape != (B,):
            raise ValueError(f"eps: expected a scalar or shape ({B},), got {tuple(eps.shape)}")
    else:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise TypeError(f"eps: expected a real number, got {type(eps).__name__}")
        v, vmax = float(eps), _FINITE_MAX.get(x.dtype)
        if vmax is not None and not abs(v) <= vmax:  # NaN, inf, or beyond x's dtype
            raise ValueError(f"eps: expected a finite value, got {eps!r}")
        e = torch.full((B,), v, dtype=x.dtype, device=x.device)
        if vmax is not None and v >= 0.0:
            return e.reshape(B, *([1] * (x.dim() - 1)))  # finite and >= 0 after the cast too
    if not bool(torch.isfinite(e).all()):
        raise ValueError(f"eps: expected a finite value, got {eps!r}")
    if bool((e < 0).any()):
        raise ValueError(f"eps: expected a value >= 0, got {eps!r}")
    return e.reshape(B, *([1] * (x.dim() - 1)))


def projected_adam_step(params: list[Tensor], grads: tuple[Tensor | None, ...], m1: list[Tensor],
                        m2: list[Tensor], it: int, lrs: list[float], upper: list[float | None]) -> None:
    """One Adam step (β₁ 0.9, β₂ 0.999, bias-corrected; Kingma & Ba 2015) on each tensor of
    ``params`` in place, at step size ``lrs[k]``, then projected onto ``[0, upper[k]]``
    (``None``: ``[0, ∞)``). ``m1``/``m2``: the moment buffers (same shapes); ``it``: the
    0-based step count. A ``None`` gradient leaves its tensor alone."""
    with torch.no_grad():
        for a, gr, ma, va, lr_k, hi in zip(params, grads, m1, m2, lrs, upper):
            if gr is None:
                continue
            ma.mul_(0.9).add_(gr, alpha=0.1)
            va.mul_(0.999).addcmul_(gr, gr, value=0.001)
            denom = (va / (1 - 0.999 ** (it + 1))).sqrt_().add_(1e-8)
            a.addcdiv_(ma, denom, value=-lr_k / (1 - 0.9 ** (it + 1)))
            if hi is None:
                a.clamp_(min=0.0)
            else:
                a.clamp_(0.0, hi)


class _Ctx:
    """One bounding call: per-node bounds and the backward pass."""

    conv_mode = "patches"  # intermediate bounds of (C, H, W) nodes: "patches" or "matrix"
    # α-CROWN's intermediate α sets only for the neurons unstable at the start (alpha_sets);
    # False: dense (B, P, *shape) maps (the same bounds, for tests and comparisons)
    sparse_alpha = True

    def __init__(self, g: Graph, x: Tensor, lo: Tensor, hi: Tensor, eps: Tensor, norm: float) -> None:
        self.g, self.x, self.lo, self.hi, self.eps, self.norm = g, x, lo, hi, eps, norm
        self.deadline: float | None = None
        self.row_cost: dict[int, float] = {}  # measured seconds per CROWN row from each start node
        self.opt_out: dict[str, Any] = {}  # α-CROWN's last output α / β terms
        # set to {} to collect the tightest intermediate bounds over α-CROWN's iterates
        self.best_interm: dict[int, tuple[Tensor, Tensor]] | None = None
        self.bounds: dict[int, tuple[Tensor, Tensor]] = {}
        self.consumers = g.consumers()
        if any(isinstance(op, ops.BatchNorm) and (op.m.training or op.m.running_mean is None) for op in g.nodes):
            g.forward(x)  # batch statistics of the clean input

    # ---- IBP
    def _node_ibp(self, i: int) -> tuple[Tensor, Tensor]:
        g = self.g
        op = g.nodes[i]
        if i == 0:
            return self.lo, self.hi
        ins = g.inputs[i]
        if self.norm == 2.0 and ins == [0] and isinstance(op, (ops.Linear, ops.Conv)):
            return op.l2_first(self.x, self.eps.reshape(-1, *([1] * (len(op.out_shape)))))
        lo, up = _no_nan(*op.ibp(*[self.bounds[j] for j in ins]))  # (an overflow: never a bound on the wrong side)
        assert lo is not None and up is not None
        return lo, up

    def fill_ibp(self, upto: int | None = None) -> None:
        n = len(self.g.nodes) if upto is None else upto + 1
        for i in range(n):
            if i not in self.bounds:
                self.bounds[i] = self._node_ibp(i)

    def ibp_output(self, C: Tensor) -> tuple[Tensor, Tensor]:
        g = self.g
        out = g.output
        op = g.nodes[out]
        self.fill_ibp(out - 1)
        for i in range(out):
            self.bounds.setdefault(i, self._node_ibp(i))
        if isinstance(op, ops.Linear) and not (self.norm == 2.0 and g.inputs[out] == [0]):
            return op.ibp_with_spec(self.bounds[g.inputs[out][0]], C)
        lo, hi = self._node_ibp(out)
        Cp, Cn = C.clamp(min=0), C.clamp(max=0)
        low = torch.einsum("bsk,bk->bs", Cp, lo) + torch.einsum("bsk,bk->bs", Cn, hi)
        up = torch.einsum("bsk,bk->bs", Cp, hi) + torch.einsum("bsk,bk->bs", Cn, lo)
        return low, up

    # ---- CROWN
    def _concretize(self, A: Tensor) -> Tensor:
        """min over the input set of sum(A * x'): A (B, S, *in) → (B, S)."""
        B, S = A.shape[:2]
        a = A.reshape(B, S, -1)
        if self.norm == math.inf:
            if B > 1 and self.lo.stride(0) == 0 and self.hi.stride(0) == 0:
                # one box for every example (an expanded view: branch and bound's domains):
                # its centre / radius once, not per example (was ~20 % of a ReLU-split search)
                mid, rad = fused.centre_radius(self.lo[0].reshape(-1), self.hi[0].reshape(-1))
                return torch.matmul(a, mid) - torch.matmul(a.abs(), rad)
            mid, rad = fused.centre_radius(self.lo, self.hi)
            mid, rad = mid.reshape(B, -1, 1), rad.reshape(B, -1, 1)
            return torch.bmm(a, mid).squeeze(-1) - torch.bmm(a.abs(), rad).squeeze(-1)
        x0 = self.x.reshape(B, -1, 1)
        return torch.bmm(a, x0).squeeze(-1) - self.eps.reshape(B, 1) * a.norm(dim=-1)

    def backward(self, start: int, A0: Tensor, alphas: dict[int, Tensor] | None = None,
                 betas: dict[int, Tensor] | None = None, keep: dict[int, Tensor] | None = None) -> Tensor:
        """Lower bound of sum(A0 * node[start]) over the input set. A0: (B, S, *shape).

        betas: split-constraint terms (β-CROWN, Wang et al. 2021, arXiv:2103.06624): node i →
        (B, S or 1, *shape_i) added to the coefficients reaching node i, ``-β·s`` on a neuron
        split with sign s (s·z ≥ 0 on the sub-domain, β ≥ 0), zero elsewhere; the caller
        keeps them sound. keep: filled with the coefficients reaching each node (after the
        β term), for branching scores."""
        g = self.g
        As: dict[int, Tensor] = {start: A0}
        bias = torch.zeros(A0.shape[:2], dtype=A0.dtype, device=A0.device)
        for i in range(start, 0, -1):
            A = As.pop(i, None)
            if A is None:
                continue
            if betas is not None and i in betas:
                A = A + betas[i]
            if keep is not None:
                keep[i] = A
            op = g.nodes[i]
            ins = g.inputs[i]
            alpha = alphas.get(i) if alphas is not None else None
            Ain, b = op.backward(A, [self.bounds[j] for j in ins], alpha)
            if b is not None:
                bias = bias + b
            for j, a in zip(ins, Ain):
                As[j] = As[j] + a if j in As else a
        A_in = As.get(0)
        if keep is not None and A_in is not None:
            keep[0] = A_in
        if A_in is None:
            return bias
        return bias + self._concretize(A_in)

    def crown(self, node: int, C: Tensor, lower: bool = True, upper: bool = True,
              alphas: dict[int, Tensor] | None = None, betas: dict[int, Tensor] | None = None
              ) -> tuple[Tensor | None, Tensor | None]:
        """CROWN bounds on C @ node (C: (B, S, n)); intermediate bounds must be filled.
        ``betas``: as in :meth:`backward`, over the stacked [C, -C] rows."""
        S = C.shape[1]
        shape = self.g.shapes[node]
        parts = ([C] if lower else []) + ([-C] if upper else [])
        A0 = torch.cat(parts, 1).reshape(C.shape[0], len(parts) * S, *shape)
        r = self.backward(node, A0, alphas, betas)
        lo = r[:, :S] if lower else None
        up = -r[:, -S:] if upper else None
        return lo, up

    def _needs_crown(self, i: int) -> bool:
        # pre-activation nodes of a ReLU / max, which are not the input or directly exact
        if i == 0:
            return False
        ins = self.g.inputs[i]
        op = self.g.nodes[i]
        if ins == [0] and op.linear:
            return False  # IBP is exact for an affine map of the input box
        return any(self.g.nodes[c].nonlinear for c in self.consumers[i])

    def _unstable(self, i: int, l: Tensor, u: Tensor) -> Tensor:  # noqa: E741
        """Neurons of node i whose relaxation in some consumer is inexact (B, n): for a
        ReLU / max the ones with l < 0 < u, for smooth activations every non-point one."""
        m = torch.zeros_like(l, dtype=torch.bool)
        for c in self.consumers[i]:
            op = self.g.nodes[c]
            if op.nonlinear:
                m |= op.unstable(l, u)  # type: ignore[attr-defined]
        return m.reshape(l.shape[0], -1)

    def fill_crown_intermediate(self, chunk: int = 4096) -> None:
        """Replace IBP bounds of every ReLU/max pre-activation by CROWN ∩ IBP, in
        topological order, so later layers use the tightened bounds."""
        g = self.g
        for i in range(1, len(g.nodes)):
            if self._late():
                return  # past the deadline: the remaining nodes keep their (sound) IBP bounds
            if not self._needs_crown(i):
                # nodes between: recompute IBP from possibly tightened inputs
                if i in self.bounds and i > 0:
                    self.bounds[i] = self._intersect(self.bounds[i], self._node_ibp(i))
                continue
            il, iu = self._node_ibp(i)
            il, iu = self._intersect((il, iu), self.bounds[i])
            B = il.shape[0]
            n = il[0].numel()
            unst_b = self._unstable(i, il, iu)
            rows = torch.nonzero(unst_b.any(0)).flatten()
            lo, up = il.reshape(B, n).clone(), iu.reshape(B, n).clone()
            structured = self.conv_mode == "patches" and patches.supported_start(g.shapes[i])
            step = patches.chunk_rows(self, i, chunk, unst_b) if structured else chunk
            s = 0
            while s < rows.numel():
                k = self._rows_in_time(i, step)
                if k == 0:
                    break  # past the deadline (or no row would end before it): the rest keep IBP bounds
                r = rows[s:s + k]
                k, s, t1 = r.numel(), s + k, time.perf_counter()
                if structured:
                    cl, cu = patches.crown_rows(self, i, r, unst_b[:, r])
                else:
                    C = torch.zeros(B, k, n, dtype=il.dtype, device=il.device)
                    C[:, torch.arange(k), r] = 1.0
                    cl, cu = self.crown(i, C)
                cl, cu = _no_nan(cl, cu)
                assert cl is not None and cu is not None
                # per-example policy: only neurons unstable for that example take CROWN
                u_r = unst_b[:, r]
                lo[:, r] = torch.where(u_r, torch.max(lo[:, r], cl), lo[:, r])
                up[:, r] = torch.where(u_r, torch.min(up[:, r], cu), up[:, r])
                self.row_cost[i] = (time.perf_counter() - t1) / k
            self.bounds[i] = (lo.reshape(il.shape), up.reshape(iu.shape))

    def _late(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _fits(self, seconds: float | None) -> bool:  # a step of this measured cost can end in time
        return deadline_fits(self.deadline, seconds)

    def output_fits(self, rows: int) -> bool:
        """Whether a CROWN pass of ``rows`` rows from the output can end before the deadline,
        at the cost per row estimated from the deepest measured node (:meth:`_row_cost`)."""
        return self._fits(self._row_cost(self.g.output) * rows if self.row_cost else None)

    def _row_cost(self, i: int) -> float:
        """Seconds per CROWN row from node i: measured, else the deepest measured node j's
        times 4 i / j (a backward pass from a later node is longer, and per-row costs jumped
        up to 3.7x between consecutive resnet_4b nodes, against i / j = 1.3); needs one."""
        if i in self.row_cost:
            return self.row_cost[i]
        j = max((j for j in self.row_cost if j < i), default=max(self.row_cost))
        return self.row_cost[j] * 4 * i / j

    def _rows_in_time(self, i: int, step: int) -> int:
        """How many rows of start node i to bound next: ``step``, or fewer when only those fit
        before the deadline at the cost per row of :meth:`_row_cost`; 0 when none does."""
        return how_many(self.deadline, self._row_cost(i) if self.row_cost else None, step)

    @staticmethod
    def _intersect(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return torch.max(a[0], b[0]), torch.min(a[1], b[1])

    # ---- alpha-CROWN
    def alpha_crown(self, C: Tensor, lower: bool, upper: bool, iters: int, lr: float, *,
                    intermediate: bool = True, shared: bool = False, lr_decay: float = 0.98,
                    splits: dict[int, Tensor] | None = None, beta_lr: float = 0.05,
                    warm: dict[str, dict[int, Tensor]] | None = None,
                    keep_best: bool = False) -> tuple[Tensor | None, Tensor | None]:
        """α-CROWN (Xu et al. 2021, arXiv:2011.13824): optimise the lower ReLU slopes α by
        projected Adam (projection onto [0, 1]) to tighten the output bounds.

        Alpha sets (documented choice, as auto_LiRPA's ``use_shared_alpha=False``): one α per
        (start node, ReLU) pair, shaped (B, P_s, *relu_shape) with P_s the rows bounded from
        start node s (2·#unstable neurons for a pre-activation node: lower and upper rows;
        the stacked [C, -C] rows for the output), so every bound picks its own relaxation.
        An intermediate start node's sets are stored only for the neurons unstable at the
        start (:class:`~certkit.core.bounds.alpha_sets.SparseAlpha`, (B, P_s, m_r); the
        same bounds and optimisation path, see there); ``_Ctx.sparse_alpha = False`` keeps
        dense maps. ``shared=True`` uses one α per ReLU neuron and example, (B, 1, *relu_shape), for all
        start nodes (less memory, looser). With ``intermediate=True`` (full α-CROWN, the
        paper's algorithm; auto_LiRPA's ``fix_interm_bounds=False``) every pre-activation
        bound is recomputed from its α set at each step, and the objective (sum of the
        output bounds) is differentiated through them; with ``False`` only the output's α
        is optimised and the intermediate bounds stay CROWN's.

        Soundness (recalled from the paper, Theorem 1): for any α in [0, 1] the line α·z is
        a valid lower bound of ReLU(z) on [l, u] with l < 0 < u, so every iterate gives valid
        bounds (each recomputed intermediate bound is valid and is also intersected with the
        CROWN ∩ IBP reference bounds, which are valid). Lower and upper output bounds are
        optimised in two separate runs (as auto_LiRPA), so the intermediate α sets of each
        run serve one objective. The best bound per row over all
        iterates (and CROWN's own) is returned, so the result is never looser than CROWN.

        ``splits`` (β-CROWN, Wang et al. 2021, arXiv:2103.06624): pre-activation node →
        (B, *shape) signs of the sub-domain's split decisions (+1: z ≥ 0, -1: z ≤ 0, 0: not
        split); the caller has already clamped those neurons' bounds. One β ≥ 0 per output
        row and split neuron adds ``-β·s·z`` at the node (a valid lower bound of the row on
        the sub-domain for any β ≥ 0), optimised with α by the same Adam loop at
        ``beta_lr`` and projected onto β ≥ 0. The last iterate's output α / β-terms are
        left in ``self.opt_out`` (for branching scores). ``warm``: initial output α
        (``{"alphas": {relu: (B, P, *shape)}}``) and β (``{"betas": {node: (B, P, *shape)}}``),
        e.g. a parent domain's, projected onto [0, 1] and β ≥ 0 (lower bound only).
        ``keep_best`` (lower bound only, ``intermediate=False``; branch and bound):
        ``self.opt_out`` also holds ``best_alphas`` / ``best_beta``, per output row the α /
        β of the iterate that gave the row's best bound (CROWN's own pass counts, with its
        initial slopes and β = 0), so a re-bound with them reproduces the returned bound
        (the last iterate's was 0.02-0.6 below it on a third of the mnistfc 256x4 children
        that closed).
        """
        if lower and upper and iters > 0:
            # two runs, as auto_LiRPA: the intermediate α sets serve one objective each
            lo, _ = self.alpha_crown(C, True, False, iters, lr, intermediate=intermediate, shared=shared,
                                     lr_decay=lr_decay, splits=splits, beta_lr=beta_lr)
            _, up = self.alpha_crown(C, False, True, iters, lr, intermediate=intermediate, shared=shared,
                                     lr_decay=lr_decay, splits=splits, beta_lr=beta_lr)
            return lo, up
        g = self.g
        out = g.output
        with torch.no_grad():
            if not self.output_fits(C.shape[1] * (int(lower) + int(upper))):
                return self.ibp_output(C)  # (sound; no pass, let alone an iterate, ends before the deadline)
            best_lo, best_up = self.crown(out, C, lower, upper)
        if iters <= 0:
            return best_lo, best_up
        ref = dict(self.bounds)  # CROWN ∩ IBP intermediate bounds (valid, fixed)
        relus = [i for i, op in enumerate(g.nodes) if isinstance(op, ops.ReLU)]
        if not relus:
            return best_lo, best_up
        B = C.shape[0]
        S = C.shape[1]
        nparts = int(lower) + int(upper)
        anc = self._ancestors()
        starts = self._alpha_starts(ref, relus) if intermediate else {}

        def init(r: int, p: int) -> Tensor:
            l, u = ref[g.inputs[r][0]]  # noqa: E741
            ld = ops.relu_relaxation(l, u)[2]
            return ld.detach().unsqueeze(1).expand(B, p, *l.shape[1:]).clone().requires_grad_(True)

        params: list[Tensor] = []
        alphas: dict[int, dict[int, Any]] = {}
        if shared:
            sh = {r: init(r, 1) for r in relus}
            params = list(sh.values())
            for s in [*starts, out]:
                alphas[s] = {r: sh[r] for r in relus if r in anc[s]}
        else:
            # intermediate starts: α only for the neurons unstable at the start (alpha_sets);
            # a ReLU with none needs no α. The output's α stays dense (warm starts, opt_out).
            sparse = {r: self._sparse_init(ref[g.inputs[r][0]]) for r in relus} if self.sparse_alpha else {}
            for s in starts:
                p = 2 * starts[s][0].numel()
                if sparse:
                    alphas[s] = {r: sparse[r].with_values(
                        sparse[r].values.expand(B, p, -1).clone().requires_grad_(True))
                        for r in relus if r in anc[s] and sparse[r].index.numel()}
                    params += [a.values for a in alphas[s].values()]
                else:
                    alphas[s] = {r: init(r, p) for r in relus if r in anc[s]}
                    params += list(alphas[s].values())
            alphas[out] = {r: init(r, nparts * S) for r in relus if r in anc[out]}
            for r, a in (warm or {}).get("alphas", {}).items():
                if r in alphas[out] and a.shape == alphas[out][r].shape:  # warm start (a parent domain's α)
                    alphas[out][r] = a.to(C.dtype).clamp(0.0, 1.0).requires_grad_(True)
            params += list(alphas[out].values())
        n_alpha = len(params)
        wb = (warm or {}).get("betas", {})
        betas = {i: (wb[i].to(C.dtype).clamp(min=0.0) if i in wb and wb[i].shape == (B, nparts * S, *sg.shape[1:])
                     else torch.zeros(B, nparts * S, *sg.shape[1:], dtype=C.dtype, device=C.device)
                     ).requires_grad_(True)
                 for i, sg in (splits or {}).items()}
        params += list(betas.values())

        def beta_terms(bs: dict[int, Tensor] = betas) -> dict[int, Tensor] | None:
            return {i: -(b * splits[i].unsqueeze(1)) for i, b in bs.items()} if splits else None
        track = keep_best and lower and not upper and not intermediate and not shared
        best_a = {r: init(r, nparts * S).detach() for r in alphas[out]} if track else {}
        best_b = {i: torch.zeros_like(b.detach()) for i, b in betas.items()} if track else {}
        # Adam (β = 0.9, 0.999, ε = 1e-8, as torch.optim.Adam) with exponential lr decay, written
        # out: torch.optim's first use imports torch._dynamo (seconds), which a deadline cannot afford
        m1 = [torch.zeros_like(a) for a in params]
        m2 = [torch.zeros_like(a) for a in params]
        fwd_s: float | None = None  # measured seconds of an iterate's bound pass / of its gradient step
        bwd_s: float | None = None
        with torch.enable_grad():
            for it in range(iters + 1):
                last = it == iters
                if not self._fits(fwd_s):
                    break  # every iterate so far gave sound bounds: keep the best; this one would end late
                t_it = time.perf_counter()
                with torch.no_grad() if last else contextlib.nullcontext():
                    if starts and not self._alpha_intermediate(ref, starts, alphas):
                        break  # the deadline passed within this iterate
                    if self.best_interm is not None:  # every iterate's bounds are valid: keep the tightest
                        for i, (bl, bu) in self.bounds.items():
                            ol, ou = self.best_interm.get(i, (bl.detach(), bu.detach()))  # (no autograd graph kept)
                            self.best_interm[i] = (torch.max(ol, bl.detach()), torch.min(ou, bu.detach()))
                    terms = beta_terms()
                    lo, up = self.crown(out, C, lower, upper, alphas[out], terms)
                self.opt_out = {"alphas": alphas[out], "betas": terms, "beta": betas}
                if lo is not None:
                    if track:  # each row's α / β where its bound improved
                        imp = lo.detach() > best_lo  # (B, S)
                        for dst, src in ((best_a, alphas[out]), (best_b, betas)):
                            for k_, v in src.items():
                                dst[k_] = torch.where(imp.reshape(*imp.shape, *([1] * (v.dim() - 2))), v.detach(),
                                                      dst[k_])
                    best_lo = torch.max(best_lo, lo.detach())  # type: ignore[arg-type]
                if up is not None:
                    best_up = torch.min(best_up, up.detach())  # type: ignore[arg-type]
                fwd_s, t_it = time.perf_counter() - t_it, time.perf_counter()
                if last or not self._fits(fwd_s + (bwd_s if bwd_s is not None else 2 * fwd_s)):
                    break  # no gradient step unless the next iterate can also end before the deadline
                loss = (-lo.sum() if lo is not None else 0.0) + (up.sum() if up is not None else 0.0)
                grads = torch.autograd.grad(loss, params, allow_unused=True)  # type: ignore[arg-type]
                step_lr = lr * lr_decay ** it
                # α projected onto [0, 1]; β ≥ 0 keeps every split term a valid bound
                projected_adam_step(params, grads, m1, m2, it,
                                    [step_lr if k < n_alpha else beta_lr * lr_decay ** it for k in range(len(params))],
                                    [1.0 if k < n_alpha else None for k in range(len(params))])
                bwd_s = time.perf_counter() - t_it
        if track:
            self.opt_out.update({"best_alphas": best_a, "best_beta": best_b})
        self.bounds = ref
        return best_lo, best_up

    @staticmethod
    def _sparse_init(b: tuple[Tensor, Tensor]) -> alpha_sets.SparseAlpha:
        """A ReLU's sparse α with CROWN's initial slopes (B, 1, m) on the neurons unstable
        for some example under its pre-activation bounds b (the reference bounds: every
        iterate's bounds lie inside them, so no other neuron is ever unstable)."""
        l, u = b  # noqa: E741
        idx = alpha_sets.unstable_index(l, u)
        ld = ops.relu_relaxation(l, u)[2].reshape(l.shape[0], 1, -1)
        return alpha_sets.SparseAlpha(ld.index_select(2, idx).detach(), idx, tuple(l.shape[1:]))

    def _ancestors(self) -> list[set[int]]:
        anc: list[set[int]] = []
        for ins in self.g.inputs:
            a: set[int] = set()
            for j in ins:
                a.add(j)
                a |= anc[j]
            anc.append(a)
        return anc

    def _alpha_starts(self, ref: dict[int, tuple[Tensor, Tensor]], relus: list[int]
                      ) -> dict[int, tuple[Tensor, Tensor, Tensor | None]]:
        """Full α-CROWN's intermediate start nodes: node → (rows (k,): the neurons unstable
        for some example, their (B, k) mask, and for the dense pass only the unit spec
        (B, k, n) of the rows)."""
        g = self.g
        anc = self._ancestors()
        starts: dict[int, tuple[Tensor, Tensor, Tensor | None]] = {}
        for i in range(1, len(g.nodes)):
            if i == g.output or not self._needs_crown(i):
                continue
            l, u = ref[i]  # noqa: E741
            B, n = l.shape[0], l[0].numel()
            unst = self._unstable(i, l, u)
            rows = torch.nonzero(unst.any(0)).flatten()
            if rows.numel() == 0 or not any(r in anc[i] for r in relus):
                continue
            k = rows.numel()
            Ci = None
            if not self._structured(i):  # (the patches pass needs no dense spec)
                Ci = torch.zeros(B, k, n, dtype=l.dtype, device=l.device)
                Ci[:, torch.arange(k), rows] = 1.0
            starts[i] = (rows, unst[:, rows], Ci)
        return starts

    def _structured(self, i: int) -> bool:
        """Whether node i's intermediate bounds run the patches pass."""
        return self.conv_mode == "patches" and patches.supported_start(self.g.shapes[i])

    def _alpha_rows(self, i: int, rows: Tensor, u_r: Tensor, Ci: Tensor | None,
                    alphas: dict[int, Any], chunk: int = 4096) -> tuple[Tensor, Tensor]:
        """CROWN bounds (B, k) of start node i's rows with its α set (B, 2k or 1, *shape)
        per ReLU, dense or :class:`~certkit.core.bounds.alpha_sets.SparseAlpha`: on
        (C, H, W) nodes by the patches pass in chunks of rows (only the (example, row) pairs
        of ``u_r``; the others get ∓inf), else by the dense pass."""
        if Ci is not None:
            cl, cu = self.crown(i, Ci, alphas={r: alpha_sets.dense_alpha(a) for r, a in alphas.items()})
            assert cl is not None and cu is not None
            return cl, cu
        k = rows.numel()
        step = patches.chunk_rows(self, i, chunk, u_r)
        if step >= k:
            return patches.crown_rows(self, i, rows, u_r, alphas)
        los, ups = [], []
        for s in range(0, k, step):
            e = min(k, s + step)
            a_s = {r: alpha_sets.rows_of(a, s, e, k) for r, a in alphas.items()}
            cl, cu = patches.crown_rows(self, i, rows[s:e], u_r[:, s:e], a_s)
            los.append(cl)
            ups.append(cu)
        return torch.cat(los, 1), torch.cat(ups, 1)

    def _alpha_intermediate(self, ref: dict[int, tuple[Tensor, Tensor]],
                            starts: dict[int, tuple[Tensor, Tensor, Tensor | None]],
                            alphas: dict[int, dict[int, Any]]) -> bool:
        """Recompute every node's bounds in topological order: IBP from the current bounds
        ∩ the reference, and, on the pre-activation nodes in ``starts``, CROWN with that
        node's α set on its rows (per example only where the neuron is unstable; with
        patches on (C, H, W) nodes, see :meth:`_alpha_rows`). False when the deadline
        passed before the last start node (the bounds are then partial)."""
        g = self.g
        self.bounds = {0: ref[0]}
        for i in range(1, g.output):
            b = self._intersect(self._node_ibp(i), ref[i])
            if i in starts:
                if not self._fits(self.row_cost.get(i, 0.0) * starts[i][0].numel()):
                    return False  # (CROWN's cost of these rows, measured by fill_crown_intermediate)
                rows, u_r, Ci = starts[i]
                l, u = b  # noqa: E741
                B = l.shape[0]
                cl, cu = self._alpha_rows(i, rows, u_r, Ci, alphas[i])
                lo = l.reshape(B, -1).clone()
                up = u.reshape(B, -1).clone()
                if Ci is None:  # (pairs not bounded are ∓inf: keep them finite for the straight-through sums)
                    cl = torch.where(u_r, cl, lo[:, rows])
                    cu = torch.where(u_r, cu, up[:, rows])
                # value: the tighter of the two valid bounds; gradient: the α-dependent one
                # (straight-through, as auto_LiRPA, else ties at the start block the gradient)
                tl = cl + (torch.max(lo[:, rows], cl) - cl).detach()
                tu = cu + (torch.min(up[:, rows], cu) - cu).detach()
                lo[:, rows] = torch.where(u_r, tl, lo[:, rows])
                up[:, rows] = torch.where(u_r, tu, up[:, rows])
                b = (lo.reshape(l.shape), up.reshape(u.shape))
            self.bounds[i] = b
        return True
