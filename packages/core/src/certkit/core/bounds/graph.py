"""Graph capture for bound propagation: a torch.fx trace mapped onto an explicit registry
of bounded operators (:mod:`certkit.core.bounds.ops`, :mod:`certkit.core.bounds.activations`).

Supported (anything else raises :class:`UnsupportedLayerError` naming the node and the
operator):

- modules: ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` (zero padding), ``nn.ReLU``,
  ``nn.Sigmoid``, ``nn.Tanh``, ``nn.LeakyReLU``, ``nn.GELU``, ``nn.ELU``, ``nn.Softplus``,
  ``nn.Hardtanh`` / ``nn.ReLU6``, ``nn.BatchNorm1d/2d`` (eval: running statistics; train:
  batch statistics of the clean input, as in certified training), ``nn.Flatten``,
  ``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d`` (any output size), ``nn.MaxPool2d`` (no
  padding), ``nn.AdaptiveMaxPool1d(1)`` (global max-pool, PointNet), ``nn.ZeroPad2d`` /
  ``nn.ConstantPad1d/2d``, ``nn.Identity``, ``nn.Dropout`` (eval), containers (traced
  through);
- functions and methods, listed with the argument names each one models in
  :data:`CALL_SIGNATURES` (a keyword outside that table is refused, never dropped):
  ``+ - *  /`` and ``torch.add/sub/rsub`` (with ``alpha``) / ``mul`` / ``div`` / ``neg``
  between two computed tensors of the same shape (sums) or a computed tensor and a
  constant (a Python number, a buffer or parameter read in ``forward``, or a constant
  expression of them) broadcasting against it: input normalisation ``(x - mean) / std``;
  activations (``torch.relu``, ``torch.sigmoid``, ``F.gelu``, ...); ``flatten``,
  ``view`` / ``reshape`` keeping the batch (``x.view(x.size(0), -1)``, ``x.view(-1, N)``),
  ``permute`` / ``transpose`` / ``unsqueeze`` / ``squeeze(dim)`` of per-example
  dimensions, ``torch.cat``, ``F.max_pool2d``,
  ``F.avg_pool2d``, ``F.adaptive_avg_pool2d``, ``x.mean(dims)``, ``F.pad`` (constant),
  ``matmul`` with a constant 2-D matrix on either side, ``torch.max(x, dim)[0]`` /
  ``amax`` (global max over one dimension), ``contiguous`` / ``clone``.

Constants are read through getters at every call (never copied at capture), so a buffer
updated in place, through ``.data`` or by ``load_state_dict`` is seen by the next call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from certkit.core.bounds import activations, ops
from certkit.core.bounds.ops import UnsupportedLayerError

__all__ = ["CALL_SIGNATURES", "Graph", "UnsupportedLayerError", "capture"]

F = nn.functional


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # torch.nn layers are leaves (mapped by _module_op); user modules are traced through,
        # so a normalisation module with buffers read in forward becomes constant arithmetic
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return type(m).__module__.startswith("torch.nn")


def _check_finite(name: str, t: torch.Tensor | None) -> None:
    if t is not None and not bool(torch.isfinite(t).all()):
        raise ValueError(f"model: parameter or buffer of '{name}' contains NaN or inf")


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _module_op(name: str, m: nn.Module) -> ops.Op:
    for p in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
        if p.is_floating_point():
            _check_finite(name, p)
    if isinstance(m, nn.Linear):
        return ops.Linear(name, m)
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.padding_mode != "zeros":
            raise UnsupportedLayerError(
                f"module '{name}' ({type(m).__name__}): padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
        if isinstance(m.padding, str):
            raise UnsupportedLayerError(f"module '{name}' ({type(m).__name__}): string padding is not supported")
        return ops.Conv(name, m)
    if isinstance(m, nn.ReLU):
        return ops.ReLU(name)
    act = activations.from_module(name, m)
    if act is not None:
        return act
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ops.BatchNorm(name, m)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            return ops.Reshape(name, ("flatten", m.start_dim, m.end_dim))
        return ops.Flatten(name)
    if isinstance(m, nn.AvgPool2d):
        return ops.AvgPool2d.from_module(name, m)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _adaptive_avg(name, m.output_size)
    if isinstance(m, nn.MaxPool2d):
        return ops.MaxPool2d.from_module(name, m)
    if isinstance(m, nn.AdaptiveMaxPool1d):
        if m.output_size not in (1, (1,)) or m.return_indices:
            raise UnsupportedLayerError(f"module '{name}' (AdaptiveMaxPool1d): only output_size=1 is supported")
        return ops.GlobalMax(name, dim=2, keepdim=True)
    if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)):
        return ops.Pad(name, tuple(m.padding), float(m.value))
    if isinstance(m, nn.Identity):
        return ops.Identity(name)
    if isinstance(m, nn.Dropout):
        if m.training and m.p > 0:
            raise UnsupportedLayerError(f"module '{name}' (Dropout): call model.eval() before bounding")
        return ops.Identity(name)
    raise UnsupportedLayerError(
        f"module '{name}' ({type(m).__module__}.{type(m).__name__}) is not supported by bound propagation; "
        "supported: Linear, Conv1d, Conv2d, ReLU, Sigmoid, Tanh, LeakyReLU, GELU, ELU, Softplus, Hardtanh, ReLU6, "
        "BatchNorm1d/2d, Flatten, AvgPool2d, MaxPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool1d(1), ZeroPad2d, "
        "ConstantPad1d/2d, Identity, Dropout, Sequential, residual add")


def _adaptive_avg(name: str, size: Any) -> ops.Op:
    if size in (1, (1, 1)):
        return ops.GlobalAvgPool2d(name)
    if size is None or (isinstance(size, tuple) and None in size):
        raise UnsupportedLayerError(f"node '{name}' (adaptive_avg_pool2d): output_size with None is not supported")
    return ops.AdaptiveAvgPool2d(name, size)


class Graph:
    """A DAG of bounded ops in topological order. ``nodes[0]`` is the input; ``inputs[i]``
    lists the indices of node i's operands; ``shapes[i]`` is node i's per-example shape."""

    def __init__(self) -> None:
        self.nodes: list[ops.Op] = []
        self.inputs: list[list[int]] = []
        self.shapes: list[tuple[int, ...]] = []
        self.output: int = -1

    def add(self, op: ops.Op, inputs: list[int]) -> int:
        self.nodes.append(op)
        self.inputs.append(inputs)
        return len(self.nodes) - 1

    def consumers(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for i, ins in enumerate(self.inputs):
            for j in ins:
                out[j].append(i)
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        vals: list[torch.Tensor] = []
        for i, op in enumerate(self.nodes):
            if i == 0:
                vals.append(x)
            else:
                vals.append(op.forward(*[vals[j] for j in self.inputs[i]]))
        return vals

    def is_chain(self) -> bool:
        return all(ins == [i - 1] for i, ins in enumerate(self.inputs) if i > 0) and self.output == len(self.nodes) - 1


# ---------------------------------------------------------------------------------------
# the table of accepted calls: target -> (argument names, in call order, that the handler
# models; number of leading tensor operands). A name starting with "*" takes the remaining
# positional arguments. Any other keyword, or one more positional argument, is refused.
CALL_SIGNATURES: dict[Any, tuple[tuple[str, ...], int]] = {}
_HANDLERS: dict[Any, Callable[[_Capture, fx.Node, str, dict[str, Any]], None]] = {}


def _register(targets: tuple[Any, ...], params: tuple[str, ...], n_tensors: int = 1
              ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        for t in targets:
            CALL_SIGNATURES[t] = (params, n_tensors)
            _HANDLERS[t] = fn
        return fn
    return deco


def _tname(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _bind(n: fx.Node, name: str) -> dict[str, Any]:
    params, _ = CALL_SIGNATURES[n.target]
    out: dict[str, Any] = {}
    args = list(n.args)
    for p in params:
        if p.startswith("*"):
            out[p[1:]] = tuple(args)
            args = []
            break
        if args:
            out[p] = args.pop(0)
    if args:
        raise ops.unsupported(name, _tname(n.target), f"{len(n.args)} positional arguments are not supported "
                              f"(modelled: {', '.join(params)})")
    for k, v in n.kwargs.items():
        if k not in params or k in out:
            raise ops.unsupported(name, _tname(n.target), f"argument '{k}'={v!r} is not supported by bound "
                                  f"propagation (modelled: {', '.join(params)})")
        out[k] = v
    return out


class _Capture:
    """State of one capture: graph indices of computed tensors, getters of constants, and
    the values of every graph node on a zero example (shapes, broadcast checks)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.model = model
        self.g = Graph()
        self.idx: dict[fx.Node, int] = {}
        self.const: dict[fx.Node, Callable[[], Any]] = {}
        self.pending_max: dict[fx.Node, tuple[int, Any, bool]] = {}
        p = next(iter(model.parameters()), None)
        self.dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        self.device = p.device if p is not None else torch.device("cpu")
        self.input_shape = input_shape
        self.vals: list[torch.Tensor] = []

    # ---- values
    def add(self, op: ops.Op, inputs: list[int], n: fx.Node | None = None) -> int:
        i = self.g.add(op, inputs)
        if i == 0:
            v = torch.zeros((2, *self.input_shape), dtype=self.dtype, device=self.device)
        else:
            op.prepare_shapes = True
            try:
                with torch.no_grad():
                    v = op.forward(*[self.vals[j] for j in inputs])
            except (UnsupportedLayerError, ValueError):
                raise
            except Exception as exc:  # a shape error from inside torch: the input shape does not fit
                shapes = [tuple(self.vals[j].shape[1:]) for j in inputs]
                raise ValueError(
                    f"input_shape: {self.input_shape} does not fit the model: node '{op.name}' "
                    f"({type(op).__name__}) fails on per-example input shape(s) {shapes}: "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            finally:
                op.prepare_shapes = False
        self.vals.append(v)
        op.in_shapes = [tuple(self.vals[j].shape[1:]) for j in inputs]
        op.out_shape = tuple(v.shape[1:])
        if n is not None:
            self.idx[n] = i
        return i

    def shape(self, v: fx.Node) -> tuple[int, ...]:
        return tuple(self.vals[self.idx[v]].shape[1:])

    def is_dyn(self, v: Any) -> bool:
        return isinstance(v, fx.Node) and v in self.idx

    def is_const(self, v: Any) -> bool:
        if isinstance(v, fx.Node):
            return v in self.const
        if isinstance(v, (list, tuple)):
            return all(self.is_const(a) for a in v)
        return isinstance(v, (int, float, bool, torch.Tensor, str, type(None), torch.dtype, slice))

    def resolve(self, v: Any) -> Any:
        if isinstance(v, fx.Node):
            return self.const[v]()
        if isinstance(v, (list, tuple)):
            return type(v)(self.resolve(a) for a in v)
        if isinstance(v, dict):
            return {k: self.resolve(a) for k, a in v.items()}
        return v

    def getter(self, v: Any) -> Callable[[], Any]:
        if isinstance(v, fx.Node):
            return self.const[v]
        return lambda: v

    def attr_getter(self, target: str) -> Callable[[], Any]:
        model = self.model

        def get() -> Any:
            obj: Any = model
            for part in target.split("."):
                obj = getattr(obj, part)
            return obj
        return get

    def fold(self, n: fx.Node) -> None:
        """A call on constants only: a constant evaluated at every use (stays live)."""
        args, kwargs, t = n.args, n.kwargs, n.target

        def get() -> Any:
            a, k = self.resolve(args), self.resolve(dict(kwargs))
            return getattr(a[0], t)(*a[1:], **k) if n.op == "call_method" else t(*a, **k)  # type: ignore[operator]
        try:
            get()
        except Exception as exc:
            raise ops.unsupported(n.name, _tname(t), f"cannot evaluate the constant expression: {exc}") from None
        self.const[n] = get

    def const_operand(self, name: str, what: str, c: Any, shape: tuple[int, ...]) -> None:
        """Checks that the constant ``c`` broadcasts against (B, *shape) without changing it."""
        v = c() if callable(c) else c
        if isinstance(v, bool) or not isinstance(v, (int, float, torch.Tensor)):
            raise ops.unsupported(name, what, f"operand of type {type(v).__name__} is not supported")
        t = torch.as_tensor(v)
        full = (2, *shape)
        try:
            ok = torch.broadcast_shapes(full, tuple(t.shape)) == full
        except RuntimeError:
            ok = False
        if not ok or (t.dim() == len(full) and t.shape[0] != 1):
            raise ops.unsupported(name, what, f"a constant of shape {tuple(t.shape)} does not broadcast against one "
                                  f"example of shape {shape} without changing it (unsupported broadcast)")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model: constant operand of '{name}' ({what}) contains NaN or inf")


# ---- arithmetic
def _lin(cap: _Capture, n: fx.Node, name: str, a: Any, b: Any, ca: float, cb: float) -> None:
    what = _tname(n.target)
    if cap.is_dyn(a) and cap.is_dyn(b):
        sa, sb = cap.shape(a), cap.shape(b)
        if sa != sb:
            raise ops.unsupported(name, what, f"broadcast of two computed tensors of shapes {sa} and {sb} is not "
                                  "supported (only equal shapes)")
        cap.add(ops.Add(name, ca, cb), [cap.idx[a], cap.idx[b]], n)
        return
    x, c, cx, cc = (a, b, ca, cb) if cap.is_dyn(a) else (b, a, cb, ca)
    if not cap.is_const(c):
        raise ops.unsupported(name, what, "operand is neither a computed tensor nor a constant")
    get = cap.getter(c)
    cap.const_operand(name, what, get, cap.shape(x))
    cap.add(ops.Affine(name, None if cx == 1.0 else cx, lambda: cc * get()), [cap.idx[x]], n)


def _number(name: str, what: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ops.unsupported(name, what, f"{key}={v!r} must be a Python number")
    return float(v)


@_register((operator.add, operator.iadd), ("input", "other"), 2)
def _add_op(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _lin(cap, n, name, a["input"], a["other"], 1.0, 1.0)


@_register((torch.add, "add", "add_"), ("input", "other", "alpha"), 2)
def _add(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _lin(cap, n, name, a["input"], a["other"], 1.0, _number(name, _tname(n.target), "alpha", a.get("alpha", 1)))


@_register((operator.sub, operator.isub), ("input", "other"), 2)
def _sub_op(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _lin(cap, n, name, a["input"], a["other"], 1.0, -1.0)


@_register((torch.sub, "sub", "sub_"), ("input", "other", "alpha"), 2)
def _sub(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _lin(cap, n, name, a["input"], a["other"], 1.0, -_number(name, _tname(n.target), "alpha", a.get("alpha", 1)))


@_register((torch.rsub,), ("input", "other", "alpha"), 2)
def _rsub(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _lin(cap, n, name, a["input"], a["other"], -_number(name, "rsub", "alpha", a.get("alpha", 1)), 1.0)


@_register((operator.mul, operator.imul, torch.mul, "mul", "mul_"), ("input", "other"), 2)
def _mul(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x, c = (a["input"], a["other"]) if cap.is_dyn(a["input"]) else (a["other"], a["input"])
    what = _tname(n.target)
    if cap.is_dyn(c):
        raise ops.unsupported(name, what, "the product of two computed tensors is not supported")
    if not cap.is_const(c):
        raise ops.unsupported(name, what, "operand is neither a computed tensor nor a constant")
    get = cap.getter(c)
    cap.const_operand(name, what, get, cap.shape(x))
    cap.add(ops.Affine(name, get, None), [cap.idx[x]], n)


@_register((operator.truediv, operator.itruediv, torch.div, torch.true_divide, "div", "div_", "true_divide"),
           ("input", "other"), 2)
def _div(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x, c = a["input"], a["other"]
    what = _tname(n.target)
    if not cap.is_dyn(x) or cap.is_dyn(c):
        raise ops.unsupported(name, what, "only a computed tensor divided by a constant is supported")
    if not cap.is_const(c):
        raise ops.unsupported(name, what, "the divisor is not a constant")
    get = cap.getter(c)
    cap.const_operand(name, what, get, cap.shape(x))
    if bool((torch.as_tensor(get()) == 0).any()):
        raise ops.unsupported(name, what, "division by a constant that contains 0")
    cap.add(ops.Affine(name, lambda: 1.0 / torch.as_tensor(get()), None), [cap.idx[x]], n)


@_register((operator.neg, torch.neg, "neg"), ("input",))
def _neg(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    cap.add(ops.Affine(name, -1.0, None), [cap.idx[a["input"]]], n)


@_register((operator.pos, "contiguous", "clone", torch.clone, "detach"), ("input",))
def _identity(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    cap.add(ops.Identity(name), [cap.idx[a["input"]]], n)


# ---- activations
def _inplace_ok(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    if a.get("inplace", False) and len(x.users) > 1:
        raise ops.unsupported(name, _tname(n.target), "inplace=True on a tensor that is also used elsewhere")


@_register((torch.relu, F.relu, "relu", "relu_"), ("input", "inplace"))
def _relu(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _inplace_ok(cap, n, name, a)
    cap.add(ops.ReLU(name), [cap.idx[a["input"]]], n)


def _act(fname: str) -> Callable[..., None]:
    def handler(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
        _inplace_ok(cap, n, name, a)
        kw = {k: v for k, v in a.items() if k not in ("input", "inplace")}
        for k, v in kw.items():
            if k != "approximate":
                _number(name, fname, k, v)
        cap.add(activations.from_call(name, fname, kw), [cap.idx[a["input"]]], n)
    return handler


for _fn, _targets, _params in (
        ("sigmoid", (torch.sigmoid, F.sigmoid, "sigmoid"), ("input",)),
        ("tanh", (torch.tanh, F.tanh, "tanh"), ("input",)),
        ("leaky_relu", (F.leaky_relu,), ("input", "negative_slope", "inplace")),
        ("gelu", (F.gelu,), ("input", "approximate")),
        ("elu", (F.elu,), ("input", "alpha", "inplace")),
        ("softplus", (F.softplus,), ("input", "beta", "threshold")),
        ("hardtanh", (F.hardtanh,), ("input", "min_val", "max_val", "inplace")),
        ("relu6", (F.relu6,), ("input", "inplace"))):
    _register(_targets, _params)(_act(_fn))


# ---- shape
def _dim(name: str, what: str, d: Any, nd: int) -> int:
    """A dimension of (B, *shape) (nd = 1 + len(shape)) as a non-negative index >= 1."""
    if isinstance(d, bool) or not isinstance(d, int) or not -nd <= d < nd:
        raise ops.unsupported(name, what, f"dim={d!r} is not a dimension of a rank-{nd} tensor")
    d %= nd
    if d == 0:
        raise ops.unsupported(name, what, "operating on the batch dimension is not supported")
    return d


@_register((torch.flatten, "flatten"), ("input", "start_dim", "end_dim"))
def _flatten(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    nd = len(cap.shape(x)) + 1
    s, e = a.get("start_dim", 0), a.get("end_dim", -1)
    s = _dim(name, "flatten", s, nd) if s not in (0, -nd) else 0
    if s == 0:
        raise ops.unsupported(name, "flatten", "flattening the batch dimension (start_dim=0) is not supported; "
                              "use flatten(1)")
    e = _dim(name, "flatten", e, nd)
    op = ops.Flatten(name) if (s == 1 and e == nd - 1) else ops.Reshape(name, ("flatten", s, e))
    cap.add(op, [cap.idx[x]], n)


@_register(("view", "reshape"), ("input", "*shape"))
def _view(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    cap.add(ops.Reshape(name, a["shape"]), [cap.idx[a["input"]]], n)


@_register((torch.reshape,), ("input", "shape"))
def _reshape(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    cap.add(ops.Reshape(name, tuple(a["shape"])), [cap.idx[a["input"]]], n)


@_register(("unsqueeze", torch.unsqueeze), ("input", "dim"))
def _unsqueeze(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    s = cap.shape(x)
    d = a.get("dim")
    if isinstance(d, bool) or not isinstance(d, int) or not -(len(s) + 2) <= d <= len(s) + 1:
        raise ops.unsupported(name, "unsqueeze", f"dim={d!r} is not valid for a rank-{len(s) + 1} tensor")
    d = d + len(s) + 2 if d < 0 else d
    if d == 0:
        raise ops.unsupported(name, "unsqueeze", "a new dimension before the batch is not supported")
    cap.add(ops.Reshape(name, (None, *s[:d - 1], 1, *s[d - 1:])), [cap.idx[x]], n)


@_register(("squeeze", torch.squeeze), ("input", "dim"))
def _squeeze(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    s = cap.shape(x)
    if a.get("dim") is None:
        raise ops.unsupported(name, "squeeze", "squeeze without dim (it would drop a batch of 1) is not supported")
    dims = a["dim"] if isinstance(a["dim"], (tuple, list)) else (a["dim"],)
    drop = {_dim(name, "squeeze", d, len(s) + 1) - 1 for d in dims}
    cap.add(ops.Reshape(name, (None, *(v for i, v in enumerate(s) if not (i in drop and v == 1)))),
            [cap.idx[x]], n)


@_register(("permute",), ("input", "*dims"))
def _permute_m(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    dims = a["dims"][0] if len(a["dims"]) == 1 and isinstance(a["dims"][0], (tuple, list)) else a["dims"]
    _permute(cap, n, name, a["input"], dims)


@_register((torch.permute,), ("input", "dims"))
def _permute_f(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    _permute(cap, n, name, a["input"], a["dims"])


def _permute(cap: _Capture, n: fx.Node, name: str, x: Any, dims: Any) -> None:
    nd = len(cap.shape(x)) + 1
    if len(dims) != nd or not isinstance(dims[0], int) or dims[0] % nd != 0:
        raise ops.unsupported(name, "permute", f"dims={tuple(dims)} must keep the batch dimension first")
    perm = tuple(_dim(name, "permute", d, nd) - 1 for d in dims[1:])
    cap.add(ops.Permute(name, perm), [cap.idx[x]], n)


@_register((torch.transpose, "transpose"), ("input", "dim0", "dim1"))
def _transpose(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    nd = len(cap.shape(x)) + 1
    i, j = (_dim(name, "transpose", a.get(k), nd) - 1 for k in ("dim0", "dim1"))
    perm = list(range(nd - 1))
    perm[i], perm[j] = perm[j], perm[i]
    cap.add(ops.Permute(name, tuple(perm)), [cap.idx[x]], n)


@_register((torch.cat, torch.concat, torch.concatenate), ("tensors", "dim"))
def _cat(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    xs = a["tensors"]
    if not isinstance(xs, (list, tuple)) or not xs or not all(cap.is_dyn(v) for v in xs):
        raise ops.unsupported(name, "cat", "only computed tensors can be concatenated (no constants)")
    d = _dim(name, "cat", a.get("dim", 0), len(cap.shape(xs[0])) + 1)
    cap.add(ops.Cat(name, d), [cap.idx[v] for v in xs], n)


@_register(("mean", torch.mean), ("input", "dim", "keepdim"))
def _mean(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x = a["input"]
    nd = len(cap.shape(x)) + 1
    dims = a.get("dim")
    if dims is None:
        raise ops.unsupported(name, "mean", "a mean over all dimensions (the batch included) is not supported")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    cap.add(ops.Mean(name, tuple(_dim(name, "mean", d, nd) for d in dims), bool(a.get("keepdim", False))),
            [cap.idx[x]], n)


# ---- pooling, padding, matmul
@_register((F.max_pool2d,), ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"))
def _max_pool2d(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    m = nn.MaxPool2d(a["kernel_size"], a.get("stride"), a.get("padding", 0), a.get("dilation", 1),
                     bool(a.get("return_indices", False)), bool(a.get("ceil_mode", False)))
    cap.add(ops.MaxPool2d.from_module(name, m), [cap.idx[a["input"]]], n)


@_register((F.avg_pool2d,), ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                             "divisor_override"))
def _avg_pool2d(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    m = nn.AvgPool2d(a["kernel_size"], a.get("stride"), a.get("padding", 0), bool(a.get("ceil_mode", False)),
                     bool(a.get("count_include_pad", True)), a.get("divisor_override"))
    cap.add(ops.AvgPool2d.from_module(name, m), [cap.idx[a["input"]]], n)


@_register((F.adaptive_avg_pool2d,), ("input", "output_size"))
def _adaptive_avg_pool2d(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    cap.add(_adaptive_avg(name, a["output_size"]), [cap.idx[a["input"]]], n)


@_register((F.pad,), ("input", "pad", "mode", "value"))
def _pad(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    if a.get("mode", "constant") != "constant":
        raise ops.unsupported(name, "pad", f"mode={a['mode']!r} is not supported (only 'constant')")
    pad = a["pad"]
    if not all(isinstance(p, int) for p in pad) or len(pad) > 2 * len(cap.shape(a["input"])):
        raise ops.unsupported(name, "pad", f"pad={pad!r} must be integers on per-example dimensions")
    v = a.get("value")
    cap.add(ops.Pad(name, tuple(pad), 0.0 if v is None else _number(name, "pad", "value", v)),
            [cap.idx[a["input"]]], n)


@_register((torch.matmul, operator.matmul, "matmul"), ("input", "other"), 2)
def _matmul(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    x, w = a["input"], a["other"]
    side = "right"
    if not cap.is_dyn(x):
        x, w, side = w, x, "left"
    if cap.is_dyn(w) or not cap.is_dyn(x) or not cap.is_const(w):
        raise ops.unsupported(name, "matmul", "only a product of a computed tensor and a constant matrix is supported")
    get = cap.getter(w)
    W = torch.as_tensor(get())
    s = cap.shape(x)
    ok = W.dim() == 2 and (s[-1] == W.shape[0] if side == "right" else len(s) >= 2 and s[-2] == W.shape[1])
    if not ok:
        raise ops.unsupported(name, "matmul", f"a {side} constant of shape {tuple(W.shape)} against one example of "
                              f"shape {s} (a 2-D matrix matching the {'last' if side == 'right' else 'second-last'} "
                              "dimension is supported)")
    cap.add(ops.MatMulConst(name, get, side), [cap.idx[x]], n)


# ---- global max
@_register((torch.max, "max"), ("input", "dim", "keepdim"))
def _max(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    if a.get("dim") is None:
        raise ops.unsupported(name, "max", "a max without dim (over everything) is not supported")
    cap.pending_max[n] = (cap.idx[a["input"]], a["dim"], bool(a.get("keepdim", False)))


@_register((torch.amax, "amax"), ("input", "dim", "keepdim"))
def _amax(cap: _Capture, n: fx.Node, name: str, a: dict[str, Any]) -> None:
    d = a.get("dim")
    if isinstance(d, (tuple, list)):
        if len(d) != 1:
            raise ops.unsupported(name, "amax", "only a max over one dimension is supported")
        d = d[0]
    cap.add(ops.GlobalMax(name, dim=int(d), keepdim=bool(a.get("keepdim", False))), [cap.idx[a["input"]]], n)


def _is_shape_query(n: fx.Node) -> bool:
    return n.target in ("size", "dim") or n.target is getattr


def _plain(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str, type(None))) or (isinstance(v, tuple) and all(map(_plain, v)))


def structure_key(model: nn.Module) -> tuple[Any, ...]:
    """What a capture depends on besides the values of parameters and buffers (which ops
    read at every call): every submodule (name, identity, class) and its plain attributes
    (numbers, strings, tuples of them, the train / eval flag): LeakyReLU's slope, Softplus's
    β, a conv's stride, a flag read in ``forward``. ``BoundedModel`` captures the model
    again when it changes (and refuses a forward hook registered since: :func:`_refuse_hooks`)."""
    return tuple((name, id(m), type(m), tuple(sorted((k, v) for k, v in vars(m).items()
                                                       if not k.startswith("_") and _plain(v))),
                  tuple(m._forward_hooks), tuple(m._forward_pre_hooks))
                 for name, m in model.named_modules())


def _refuse_hooks(model: nn.Module) -> None:
    """torch.fx does not trace forward hooks / pre-hooks (nor torch's global ones), which may
    change a module's input or output: bounding the model without them bounded another
    function (red team s6: sampled outputs 0.2-1.0 outside the CROWN bounds), so refuse."""
    from torch.nn.modules import module as _m

    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        raise UnsupportedLayerError("model: global forward hooks are registered (torch.nn.modules.module."
                                    "register_module_forward_hook); they are not modelled: remove them to bound")
    for name, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            raise UnsupportedLayerError(f"module '{name or type(m).__name__}': forward hooks / pre-hooks are not "
                                        "modelled (they may change its input or output): remove them to bound")


def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """Trace ``model`` and map every node to a bounded op. ``input_shape`` excludes the
    batch dimension. Raises :class:`UnsupportedLayerError` naming the first unsupported
    node (module, function or argument) and ``ValueError`` when ``input_shape`` does not
    fit the model."""
    _refuse_hooks(model)
    try:  # an fx GraphModule (the ONNX importer's, a user's) is taken as it is, not re-traced
        gm = model if isinstance(model, fx.GraphModule) else fx.GraphModule(model, _Tracer().trace(model))
    except Exception as exc:
        raise UnsupportedLayerError(
            f"model ({type(model).__name__}) cannot be traced by torch.fx: {str(exc).splitlines()[0]}") from exc
    mods = dict(gm.named_modules())
    cap = _Capture(model, input_shape)
    g = cap.g
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if g.nodes:
                raise UnsupportedLayerError("model: only single-input models are supported")
            cap.add(ops.Input("input"), [], n)
        elif n.op == "get_attr":
            cap.const[n] = cap.attr_getter(str(n.target))
        elif n.op == "call_module":
            ins = [a for a in n.args if isinstance(a, fx.Node)]
            if len(ins) != 1 or len(n.args) != 1 or n.kwargs or not cap.is_dyn(ins[0]):
                raise UnsupportedLayerError(f"module '{n.target}': only a call on one computed tensor is supported")
            cap.add(_module_op(str(n.target), mods[str(n.target)]), [cap.idx[ins[0]]], n)
        elif n.op in ("call_function", "call_method"):
            t = n.target
            inputs = n.all_input_nodes
            if not any(cap.is_dyn(v) or v in cap.pending_max for v in inputs):
                if all(v in cap.const for v in inputs):
                    cap.fold(n)
                continue  # shape arithmetic (x.size(0), x.shape[0]): not a tensor
            if _is_shape_query(n) and cap.is_dyn(n.args[0]):
                continue
            if t is operator.getitem and n.args[0] in cap.pending_max:
                if n.args[1] != 0:
                    raise ops.unsupported(n.name, "max", "only the values of torch.max(x, dim) ([0]) are supported")
                src, d, keep = cap.pending_max[n.args[0]]
                cap.add(ops.GlobalMax(n.name, dim=int(d), keepdim=keep), [src], n)
                continue
            if t not in _HANDLERS:
                raise UnsupportedLayerError(
                    f"function '{n.name}' ({_tname(t)}) is not supported by bound propagation")
            _HANDLERS[t](cap, n, n.name, _bind(n, n.name))
        elif n.op == "output":
            a = n.args[0]
            if not cap.is_dyn(a):
                raise UnsupportedLayerError("model: the output must be a single computed tensor")
            g.output = cap.idx[a]
    g.shapes = [tuple(v.shape[1:]) for v in cap.vals]
    # drop nodes that do not feed the output
    keep = {g.output}
    for i in range(len(g.nodes) - 1, -1, -1):
        if i in keep:
            keep.update(g.inputs[i])
    if len(keep) != len(g.nodes):
        remap = {old: new for new, old in enumerate(sorted(keep))}
        g2 = Graph()
        for old in sorted(keep):
            g2.add(g.nodes[old], [remap[j] for j in g.inputs[old]])
            g2.shapes.append(g.shapes[old])
        g2.output = remap[g.output]
        g = g2
    return g
