"""Read an ONNX model into a torch ``fx.GraphModule`` that
:class:`~certkit.core.bounds.BoundedModel` can bound (needs the ``onnx`` extra:
``certkit-core[onnx]``; ``.onnx.gz`` files are read too).

The converter is ours, a registry with one small function per ONNX op (:data:`OPS`). It
walks any DAG (residual ``Add`` of two branches, ``Concat``) from the single graph input to
the single graph output; every other operand must be a constant (initializer, ``Constant``
node, or a subgraph of constants, which is folded with ``onnx.reference``). Each node
becomes an fx node named after the ONNX node, so a refusal by the bound layer names the
ONNX node:

- ``Gemm`` (transA = 0) and ``MatMul`` with a constant on either side → ``nn.Linear``
  (vector per example) or ``torch.matmul`` with a constant; a following ``Add`` / ``Sub``
  of a constant is folded into the bias;
- ``Conv`` (1-D/2-D; asymmetric or ``auto_pad`` padding as an explicit ``Pad``),
  ``BatchNormalization``, ``MaxPool`` (no padding), ``AveragePool``, ``GlobalAveragePool``,
  ``Pad`` (constant mode), ``Flatten``, ``Reshape``, ``Transpose``, ``Concat``,
  ``ReduceMean``, ``Identity`` / ``Dropout``;
- ``Relu``, ``Sigmoid``, ``Tanh``, ``LeakyRelu``, ``Elu``, ``Softplus``;
- ``Add`` / ``Sub`` of two computed tensors of the same shape, and ``Add`` / ``Sub`` /
  ``Mul`` / ``Div`` with a constant (input normalisation).

Batch convention: an input of rank >= 2 has its batch in dimension 0 (size 1 or
symbolic); a rank-1 input (e.g. VNN-COMP's ``nn4sys`` and ``test`` nets) is one example
and gets a batch dimension in front (ONNX axis a is torch axis a + 1). Anything else
raises :class:`~certkit.core.bounds.UnsupportedLayerError` naming the ONNX node and its op
type. Conversion is exact up to float rounding (tests compare with onnxruntime).
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from certkit.core.bounds.graph import UnsupportedLayerError


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("reading ONNX models needs the 'onnx' package: pip install 'certkit-core[onnx]'") from exc
    return onnx


@dataclass
class OnnxModel:
    """A converted ONNX model: ``module`` (eval mode, ``dtype``; (B, *input_shape) → (B, K)),
    the per-example ``input_shape`` (batch dimension dropped) and the number of outputs K."""

    module: nn.Module
    input_shape: tuple[int, ...]
    num_outputs: int
    input_name: str
    output_name: str


def _tensor_dims(value_info: Any) -> list[int | None]:
    dims: list[int | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else None)
    return dims


def load_onnx(path: str | Path | bytes, dtype: torch.dtype | None = None) -> OnnxModel:
    """Read and convert an ONNX file (``.onnx`` or gzipped ``.onnx.gz``) or its serialized
    bytes. ``dtype``: the module's dtype; default the graph input's element type (float64
    for a double-precision graph: VNN-COMP's ``nn4sys`` nets give 0 instead of 16.5 in
    float32). Raises ``ValueError`` for a missing / truncated / invalid file and
    :class:`UnsupportedLayerError` naming the first unsupported node."""
    onnx = _onnx()
    if isinstance(path, (bytes, bytearray)):
        data = bytes(path)
        where = "model bytes"
    else:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"onnx: no such file: {p}")
        data = p.read_bytes()
        where = str(p)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"onnx: {where} is a truncated or invalid gzip file ({exc})") from exc
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError (one line: the checker's text spans several)
        msg = " ".join(str(exc).split())
        raise ValueError(f"onnx: {where} is not a valid ONNX model ({type(exc).__name__}: {msg})") from None
    if dtype is None:
        inits = {t.name for t in model.graph.initializer}
        ins = [i for i in model.graph.input if i.name not in inits]
        double = bool(ins) and ins[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        dtype = torch.float64 if double else torch.float32
    return _Builder(model, dtype).build()


@dataclass
class _Dyn:
    """A computed tensor: its fx node, its per-example shape, and whether ONNX has a batch
    dimension in front (``batched``; else ONNX axis a is torch axis a + 1)."""

    node: fx.Node
    shape: tuple[int, ...]
    batched: bool

    def onnx_shape(self) -> tuple[int, ...]:
        return (1, *self.shape) if self.batched else self.shape

    def axis(self, a: int) -> int:
        """The torch axis of ONNX axis ``a`` (negative allowed)."""
        r = len(self.onnx_shape())
        a = a + r if a < 0 else a
        return a if self.batched else a + 1


OpFn = Callable[["_Builder", Any, dict[str, Any]], None]
OPS: dict[str, OpFn] = {}


def _op(*names: str) -> Callable[[OpFn], OpFn]:
    def deco(fn: OpFn) -> OpFn:
        for n in names:
            OPS[n] = fn
        return fn
    return deco


class _Builder:
    def __init__(self, model: Any, dtype: torch.dtype) -> None:
        from onnx import numpy_helper

        self.model, self.graph, self.dtype = model, model.graph, dtype
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.vals: dict[str, _Dyn] = {}
        self.root = nn.Module()
        self.g = fx.Graph()
        self.k = 0
        self.uses: dict[str, int] = {}
        for n in self.graph.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in self.graph.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1
        self.biasable: dict[str, nn.Module] = {}  # tensor → the Linear/Conv producing it (bias folding)

    # ---- helpers
    @staticmethod
    def label(node: Any) -> str:
        return f"onnx node '{node.name or node.op_type}' ({node.op_type})"

    def err(self, node: Any, msg: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{self.label(node)}: {msg}")

    def _name(self, node: Any) -> str:
        self.k += 1
        base = re.sub(r"\W", "_", node.name or node.op_type) or "node"
        return f"{base if base[0].isalpha() else 'n' + base}_{self.k}"

    def t(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float64)).to(self.dtype)  # a writable copy

    def module(self, node: Any, m: nn.Module, x: _Dyn, shape: tuple[int, ...] | None = None) -> _Dyn:
        name = self._name(node)
        self.root.add_module(name, m.to(self.dtype))
        out = self.g.create_node("call_module", name, (x.node,), {}, name=name)
        return self.emit_shape(out, x, shape, lambda v: m(v))

    def call(self, node: Any, target: Any, args: tuple[Any, ...], x: _Dyn, kwargs: dict[str, Any] | None = None,
             method: bool = False) -> fx.Node:
        return self.g.create_node("call_method" if method else "call_function", target, args, kwargs or {},
                                  name=self._name(node))

    def buffer(self, node: Any, a: np.ndarray) -> fx.Node:
        name = "c_" + self._name(node)
        self.root.register_buffer(name, self.t(a))
        return self.g.create_node("get_attr", name, (), {}, name=name)

    def emit_shape(self, out: fx.Node, x: _Dyn, shape: tuple[int, ...] | None,
                   fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> _Dyn:
        if shape is None:
            assert fn is not None
            with torch.no_grad():
                shape = tuple(fn(torch.zeros((1, *x.shape), dtype=self.dtype)).shape[1:])
        return _Dyn(out, shape, x.batched)

    def const(self, name: str, node: Any) -> np.ndarray:
        if name not in self.consts:
            raise self.err(node, f"operand '{name}' must be a constant")
        return self.consts[name]

    def dyn(self, node: Any) -> tuple[int, _Dyn]:
        """The index and value of the node's single computed operand."""
        ks = [k for k, n in enumerate(node.input) if n and n not in self.consts]
        if len(ks) != 1:
            raise self.err(node, f"expected one computed operand, got {len(ks)}")
        return ks[0], self.vals[node.input[ks[0]]]

    def fold(self, node: Any) -> None:
        """A node whose operands are all constants: evaluated once with onnx.reference."""
        from onnx.reference import ReferenceEvaluator

        try:
            ev = ReferenceEvaluator(node)
            feeds = {n: self.consts[n] for n in node.input if n}
            outs = ev.run(None, feeds)
        except Exception as exc:
            raise self.err(node, f"cannot fold this constant subgraph ({type(exc).__name__}: {exc})") from None
        for name, v in zip(node.output, outs):
            self.consts[name] = np.asarray(v)

    # ---- the walk
    def build(self) -> OnnxModel:
        g = self.graph
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UnsupportedLayerError(f"onnx: expected one (non-constant) graph input, got {len(inputs)}")
        if len(g.output) != 1:
            raise UnsupportedLayerError(f"onnx: expected one graph output, got {len(g.output)}")
        inp = inputs[0]
        dims = _tensor_dims(inp)
        if not dims:
            raise UnsupportedLayerError(f"onnx: input '{inp.name}' has no shape")
        if any(d is None or d <= 0 for d in dims[1:]) or (len(dims) == 1 and not dims[0]):
            raise UnsupportedLayerError(f"onnx: input '{inp.name}' needs a static per-example shape, got {dims}")
        if len(dims) >= 2 and dims[0] not in (None, 1):
            raise UnsupportedLayerError(f"onnx: input '{inp.name}' has batch size {dims[0]}; expected 1 or symbolic")
        batched = len(dims) >= 2
        in_shape = tuple(int(d) for d in (dims[1:] if batched else dims))  # type: ignore[arg-type]
        x = self.g.placeholder("x")
        self.vals[inp.name] = _Dyn(x, in_shape, batched)
        for node in g.node:
            if node.op_type == "Constant":
                OPS["Constant"](self, node, _attrs(node))
                continue
            if all((not n) or n in self.consts for n in node.input):
                self.fold(node)
                continue
            fn = OPS.get(node.op_type)
            if fn is None:
                raise self.err(node, "is not supported; supported ONNX ops: " + ", ".join(sorted(OPS)))
            for n in node.input:
                if n and n not in self.consts and n not in self.vals:
                    raise self.err(node, f"operand '{n}' is not computed before this node (graph not in order?)")
            try:
                fn(self, node, _attrs(node))
            except (UnsupportedLayerError, ValueError):
                raise
            except Exception as exc:  # a shape error from torch or an attribute out of range
                msg = " ".join(str(exc).split()) or type(exc).__name__
                raise ValueError(f"{self.label(node)}: does not fit its operands or attributes ({msg})") from None
        out_name = g.output[0].name
        if out_name not in self.vals:
            raise UnsupportedLayerError(f"onnx: the graph output '{out_name}' does not depend on the input")
        y = self.vals[out_name]
        node = y.node
        if len(y.shape) != 1:
            node = self.g.call_function(torch.flatten, (node, 1))
        self.g.output(node)
        module = fx.GraphModule(self.root, self.g).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return OnnxModel(module, in_shape, int(math.prod(y.shape)), inp.name, out_name)

    def set(self, node: Any, v: _Dyn) -> None:
        self.vals[node.output[0]] = v


def _attrs(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


# ---------------------------------------------------------------------- constants
@_op("Constant")
def _constant(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    from onnx import numpy_helper

    if "value" in a:
        b.consts[node.output[0]] = numpy_helper.to_array(a["value"])
    elif "value_float" in a or "value_int" in a:
        b.consts[node.output[0]] = np.array(a.get("value_float", a.get("value_int")))
    elif "value_floats" in a or "value_ints" in a:
        b.consts[node.output[0]] = np.array(a.get("value_floats", a.get("value_ints")))
    else:
        raise b.err(node, "only tensor / float / int 'value' constants are supported")


@_op("Shape")
def _shape(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    """Static shapes (the batch as 1) are constants: Reshape targets computed in the graph fold."""
    _, x = b.dyn(node)
    s = np.array(x.onnx_shape(), dtype=np.int64)
    b.consts[node.output[0]] = s[a.get("start", 0):a.get("end", len(s))]


# ---------------------------------------------------------------------- linear layers
def _linear(b: _Builder, node: Any, x: _Dyn, W: np.ndarray, bias: np.ndarray | None) -> None:
    """y = x @ W + bias for a vector per example (W: (in, out))."""
    if len(x.shape) != 1 or W.shape[0] != x.shape[0]:
        raise b.err(node, f"input of per-example shape {x.shape} does not match weight {W.shape}")
    # (built in the model's dtype: a float32 module would round float64 weights before the cast)
    lin = nn.utils.skip_init(nn.Linear, W.shape[0], W.shape[1], bias=True, dtype=b.dtype)  # no random init
    with torch.no_grad():
        lin.weight.copy_(b.t(W.T))
        lin.bias.copy_(b.t(np.zeros(W.shape[1]) if bias is None else np.broadcast_to(bias, (W.shape[1],))))
    _set_affine(b, node, lin, b.module(node, lin, x, (W.shape[1],)))


def _set_affine(b: _Builder, node: Any, m: nn.Module, y: _Dyn) -> None:
    """The output of a Linear / Conv; a constant added to it later may go into its bias."""
    b.set(node, y)
    if b.uses.get(node.output[0], 0) == 1:
        b.biasable[node.output[0]] = m


@_op("Gemm")
def _gemm(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    k, x = b.dyn(node)
    if k != 0 or int(a.get("transA", 0)) != 0:
        raise b.err(node, "only Gemm(x, W[, b]) with transA=0 and a constant W is supported")
    W = b.const(node.input[1], node).astype(np.float64) * float(a.get("alpha", 1.0))
    if int(a.get("transB", 0)):
        W = W.T
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = b.const(node.input[2], node).astype(np.float64).reshape(-1) * float(a.get("beta", 1.0))
        if bias.size == 1:
            bias = np.full(W.shape[1], bias[0])
    _linear(b, node, x, W, bias)


@_op("MatMul")
def _matmul(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    k, x = b.dyn(node)
    W = b.const(node.input[1 - k], node).astype(np.float64)
    if W.ndim != 2:
        raise b.err(node, f"only a 2-D constant matrix is supported, got shape {W.shape}")
    xs = x.onnx_shape()
    if k == 0 and len(xs) <= 2 and len(x.shape) == 1:  # (1, n) @ (n, m), or a vector (n,) @ (n, m)
        return _linear(b, node, x, W, None)
    if k == 1 and len(xs) == 1:  # W (m, n) @ x (n,): one example's vector → Linear with weight W
        return _linear(b, node, x, W.T, None)
    c = b.buffer(node, W)
    args = (x.node, c) if k == 0 else (c, x.node)
    if len(xs) < 2 or (k == 0 and xs[-1] != W.shape[0]) or (k == 1 and xs[-2] != W.shape[1]):
        raise b.err(node, f"shapes {xs if k == 0 else W.shape} and {W.shape if k == 0 else xs} do not multiply")
    out = b.call(node, torch.matmul, args, x)
    shape = (*x.shape[:-1], W.shape[1]) if k == 0 else (*x.shape[:-2], W.shape[0], x.shape[-1])
    b.set(node, _Dyn(out, shape, x.batched))


# ---------------------------------------------------------------------- arithmetic
def _per_example_const(b: _Builder, node: Any, c: np.ndarray, x: _Dyn) -> np.ndarray:
    """An ONNX constant operand as a torch constant broadcasting against (B, *x.shape)."""
    xs = x.onnx_shape()
    try:
        full = np.broadcast_shapes(xs, c.shape)
    except ValueError:
        full = None
    if full != tuple(xs):
        raise b.err(node, f"a constant of shape {c.shape} does not broadcast against {xs} without changing it")
    if not x.batched:
        return c
    return c.reshape(c.shape[1:]) if c.ndim == len(xs) else c  # drop a size-1 batch dim


def _fold_bias(b: _Builder, node: Any, x_name: str, shift: np.ndarray) -> bool:
    """Add a constant into the bias of the Linear/Conv producing ``x_name`` when it is
    per output feature / channel (keeps Linear/Conv chains for the compiled kernels)."""
    m = b.biasable.get(x_name)
    x = b.vals[x_name]
    if m is None:
        return False
    n = m.weight.shape[0]
    per = np.broadcast_to(shift, x.shape)
    flat = per.reshape(n, -1)
    if not np.all(flat == flat[:, :1]):
        return False
    with torch.no_grad():
        m.bias.add_(b.t(flat[:, 0]))  # type: ignore[union-attr, operator]
    return True


@_op("Add", "Sub", "Mul", "Div")
def _arith(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    op = node.op_type
    ins = list(node.input)
    dyn = [k for k in (0, 1) if ins[k] not in b.consts]
    if len(dyn) == 2:
        x0, x1 = b.vals[ins[0]], b.vals[ins[1]]
        if op not in ("Add", "Sub"):
            raise b.err(node, "the product / quotient of two computed tensors is not supported")
        if x0.onnx_shape() != x1.onnx_shape():
            raise b.err(node, f"broadcast of computed tensors of shapes {x0.onnx_shape()} and {x1.onnx_shape()}")
        import operator

        out = b.call(node, operator.add if op == "Add" else operator.sub, (x0.node, x1.node), x0)
        b.set(node, _Dyn(out, x0.shape, x0.batched))
        return
    k = dyn[0]
    x = b.vals[ins[k]]
    c = _per_example_const(b, node, b.const(ins[1 - k], node).astype(np.float64), x)
    if op in ("Add", "Sub") and k == 0 and b.uses.get(ins[0], 0) == 1:
        if _fold_bias(b, node, ins[0], c if op == "Add" else -c):
            b.biasable[node.output[0]] = b.biasable.pop(ins[0])
            b.set(node, x)
            return
    if op == "Div":
        if k == 1:
            raise b.err(node, "constant / x is not supported")
        if np.any(c == 0):
            raise b.err(node, "division by a constant that contains 0")
    import operator

    fn = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv}[op]
    cn = b.buffer(node, c)
    out = b.call(node, fn, (x.node, cn) if k == 0 else (cn, x.node), x)
    b.set(node, _Dyn(out, x.shape, x.batched))


# ---------------------------------------------------------------------- activations
_ACTS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "Relu": lambda a: nn.ReLU(),
    "Sigmoid": lambda a: nn.Sigmoid(),
    "Tanh": lambda a: nn.Tanh(),
    "LeakyRelu": lambda a: nn.LeakyReLU(float(a.get("alpha", 0.01))),
    "Elu": lambda a: nn.ELU(float(a.get("alpha", 1.0))),
    "Softplus": lambda a: nn.Softplus(),
}


@_op(*_ACTS)
def _activation(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    b.set(node, b.module(node, _ACTS[node.op_type](a), x, x.shape))


@_op("Identity", "Dropout")
def _identity(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    b.set(node, x)


# ---------------------------------------------------------------------- shape ops
def _reshape_to(b: _Builder, node: Any, x: _Dyn, target: tuple[int, ...]) -> None:
    """Reshape to the full ONNX shape ``target`` (numbers, batch included if batched)."""
    n = math.prod(x.shape)
    if x.batched and target and target[0] == 1:
        per, batched = tuple(target[1:]), True
    elif math.prod(target) == n:
        per, batched = tuple(target), False  # the batch of 1 dropped (e.g. to a flat vector)
    else:
        raise b.err(node, f"reshape of {x.onnx_shape()} to {target} mixes the batch")
    if per == x.shape:
        b.set(node, _Dyn(x.node, per, batched))
        return
    bsz = b.g.call_method("size", (x.node, 0))
    out = b.call(node, "reshape", (x.node, bsz, *per), x, method=True)
    b.set(node, _Dyn(out, per, batched))


@_op("Reshape")
def _reshape(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    k, x = b.dyn(node)
    if k != 0:
        raise b.err(node, "the shape operand must be a constant")
    tgt = [int(v) for v in b.const(node.input[1], node).reshape(-1)]
    src = x.onnx_shape()
    tgt = [src[i] if (v == 0 and not a.get("allowzero", 0)) else v for i, v in enumerate(tgt)]
    if tgt.count(-1) > 1:
        raise b.err(node, f"invalid target shape {tgt}")
    if -1 in tgt:
        known = math.prod(v for v in tgt if v != -1)
        tgt[tgt.index(-1)] = math.prod(src) // known if known else 0
    if math.prod(tgt) != math.prod(src):
        raise b.err(node, f"cannot reshape {src} to {tgt}")
    _reshape_to(b, node, x, tuple(tgt))


@_op("Flatten")
def _flatten(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    src = x.onnx_shape()
    ax = int(a.get("axis", 1))
    ax = ax + len(src) if ax < 0 else ax
    _reshape_to(b, node, x, (math.prod(src[:ax]), math.prod(src[ax:])))


@_op("Transpose")
def _transpose(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    r = len(x.onnx_shape())
    perm = [int(p) for p in a.get("perm", list(range(r - 1, -1, -1)))]
    if x.batched:
        if perm[0] != 0:
            raise b.err(node, f"perm={perm} moves the batch dimension")
        tperm = perm
    else:
        tperm = [0] + [p + 1 for p in perm]
    out = b.call(node, "permute", (x.node, *tperm), x, method=True)
    src = x.onnx_shape()
    new = tuple(src[p] for p in perm)
    b.set(node, _Dyn(out, new[1:] if x.batched else new, x.batched))


@_op("Concat")
def _concat(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    xs = []
    for n in node.input:
        if n in b.consts:
            raise b.err(node, "concatenating a constant is not supported")
        xs.append(b.vals[n])
    if len({x.batched for x in xs}) != 1:
        raise b.err(node, "operands with and without a batch dimension")
    ax = xs[0].axis(int(a["axis"]))
    if ax == 0:
        raise b.err(node, "concatenation along the batch dimension is not supported")
    out = b.call(node, torch.cat, ([x.node for x in xs], ax), xs[0])
    shape = list(xs[0].shape)
    shape[ax - 1] = sum(x.shape[ax - 1] for x in xs)
    b.set(node, _Dyn(out, tuple(shape), xs[0].batched))


@_op("ReduceMean")
def _reduce_mean(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(v) for v in b.const(node.input[1], node).reshape(-1)]
    if not axes:
        raise b.err(node, "a mean over all axes (the batch included) is not supported")
    tax = tuple(x.axis(int(v)) for v in axes)
    if 0 in tax:
        raise b.err(node, "a mean over the batch dimension is not supported")
    keep = bool(a.get("keepdims", 1))
    out = b.call(node, torch.mean, (x.node, tax, keep), x)
    b.set(node, b.emit_shape(out, x, None, lambda v: v.mean(tax, keepdim=keep)))


# ---------------------------------------------------------------------- conv, pooling, padding
def _onnx_pads(b: _Builder, node: Any, pads: list[int], nd: int) -> list[int]:
    """ONNX spatial pads [b1..bn, e1..en] → F.pad order (last dim first)."""
    out: list[int] = []
    for i in reversed(range(nd)):
        out += [int(pads[i]), int(pads[i + nd])]
    return out


def _auto_pads(node: Any, a: dict[str, Any], x: _Dyn, ks: list[int], st: list[int], dil: list[int]) -> list[int]:
    nd = len(ks)
    mode = a.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", "VALID"):
        return [int(p) for p in a.get("pads", [0] * 2 * nd)] if mode == "NOTSET" else [0] * 2 * nd
    sp = x.shape[-nd:]
    begin, end = [], []
    for i in range(nd):
        out = -(-sp[i] // st[i])
        tot = max(0, (out - 1) * st[i] + (ks[i] - 1) * dil[i] + 1 - sp[i])
        lo = tot // 2 if mode == "SAME_UPPER" else tot - tot // 2
        begin.append(lo)
        end.append(tot - lo)
    return begin + end


def _pad_then(b: _Builder, node: Any, x: _Dyn, pads: list[int], nd: int, value: float = 0.0) -> tuple[_Dyn, tuple[int, ...]]:
    """Symmetric pads stay in the layer; asymmetric ones become an explicit Pad node first."""
    if pads[:nd] == pads[nd:]:
        return x, tuple(pads[:nd])
    fp = _onnx_pads(b, node, pads, nd)
    out = b.call(node, F.pad, (x.node, tuple(fp)), x, {"value": value})
    return b.emit_shape(out, x, None, lambda v: F.pad(v, tuple(fp), value=value)), (0,) * nd


@_op("Conv")
def _conv(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    k, x = b.dyn(node)
    if k != 0:
        raise b.err(node, "the weight must be a constant")
    W = b.const(node.input[1], node).astype(np.float64)
    nd = W.ndim - 2
    if nd not in (1, 2) or len(x.shape) != nd + 1 or not x.batched:
        raise b.err(node, "only 1-D and 2-D convolutions on (N, C, ...) inputs are supported")
    st = [int(v) for v in a.get("strides", [1] * nd)]
    dil = [int(v) for v in a.get("dilations", [1] * nd)]
    x, pad = _pad_then(b, node, x, _auto_pads(node, a, x, list(W.shape[2:]), st, dil), nd)
    group = int(a.get("group", 1))
    co, cig = W.shape[:2]
    if cig * group != x.shape[0]:
        raise b.err(node, f"weight {W.shape} does not match input channels {x.shape[0]}")
    conv = (nn.Conv1d if nd == 1 else nn.Conv2d)(x.shape[0], co, tuple(W.shape[2:]), stride=tuple(st), padding=pad,
                                                  dilation=tuple(dil), groups=group, bias=True, dtype=b.dtype)
    with torch.no_grad():
        conv.weight.copy_(b.t(W))
        has_b = len(node.input) > 2 and node.input[2]
        conv.bias.copy_(b.t(b.const(node.input[2], node)) if has_b else torch.zeros(co))  # type: ignore[union-attr]
    _set_affine(b, node, conv, b.module(node, conv, x))


@_op("BatchNormalization")
def _batchnorm(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    sc, bb, mean, var = (b.const(node.input[j], node).astype(np.float64) for j in (1, 2, 3, 4))
    n = x.shape[0]
    bn: nn.Module = nn.BatchNorm1d(n, eps=float(a.get("epsilon", 1e-5)), dtype=b.dtype) if len(x.shape) in (1, 2) \
        else nn.BatchNorm2d(n, eps=float(a.get("epsilon", 1e-5)), dtype=b.dtype)
    with torch.no_grad():
        bn.weight.copy_(b.t(sc))  # type: ignore[operator]
        bn.bias.copy_(b.t(bb))  # type: ignore[operator]
        bn.running_mean.copy_(b.t(mean))  # type: ignore[operator]
        bn.running_var.copy_(b.t(var))  # type: ignore[operator]
    b.set(node, b.module(node, bn.eval(), x, x.shape))


@_op("MaxPool", "AveragePool")
def _pool(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    ks = [int(v) for v in a.get("kernel_shape", [])]
    if len(ks) != 2 or len(x.shape) != 3 or not x.batched:
        raise b.err(node, "only 2-D pooling on (N, C, H, W) inputs is supported")
    if int(a.get("ceil_mode", 0)):
        raise b.err(node, "ceil_mode=1 is not supported")
    st = [int(v) for v in a.get("strides", [1, 1])]
    dil = [int(v) for v in a.get("dilations", [1, 1])]
    if dil != [1, 1]:
        raise b.err(node, "dilation is not supported")
    pads = _auto_pads(node, a, x, ks, st, dil)
    if node.op_type == "MaxPool":
        if any(pads):
            raise b.err(node, "padded max pooling is not supported")
        m: nn.Module = nn.MaxPool2d(tuple(ks), tuple(st))
    else:
        if any(pads) and not int(a.get("count_include_pad", 0)):
            raise b.err(node, "padded average pooling with count_include_pad=0 is not supported")
        x, pad = _pad_then(b, node, x, pads, 2)
        m = nn.AvgPool2d(tuple(ks), tuple(st), pad)
    b.set(node, b.module(node, m, x))


@_op("GlobalAveragePool")
def _gap(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    if len(x.shape) != 3 or not x.batched:
        raise b.err(node, "only (N, C, H, W) inputs are supported")
    b.set(node, b.module(node, nn.AdaptiveAvgPool2d(1), x, (x.shape[0], 1, 1)))


@_op("Pad")
def _pad(b: _Builder, node: Any, a: dict[str, Any]) -> None:
    _, x = b.dyn(node)
    if a.get("mode", "constant") != "constant":
        raise b.err(node, f"mode={a['mode']!r} is not supported (only 'constant')")
    if "pads" in a:
        pads = [int(v) for v in a["pads"]]
        value = float(a.get("value", 0.0))
    else:
        pads = [int(v) for v in b.const(node.input[1], node).reshape(-1)]
        value = float(b.const(node.input[2], node).reshape(-1)[0]) if len(node.input) > 2 and node.input[2] else 0.0
        if len(node.input) > 3 and node.input[3]:
            raise b.err(node, "the axes operand is not supported")
    r = len(x.onnx_shape())
    if len(pads) != 2 * r:
        raise b.err(node, f"pads={pads} does not match rank {r}")
    if x.batched and (pads[0] or pads[r]):
        raise b.err(node, "padding the batch dimension is not supported")
    if not any(pads):
        b.set(node, x)
        return
    nd = r - 1 if x.batched else r
    sp = pads[r - nd:r] + pads[2 * r - nd:]
    fp = _onnx_pads(b, node, sp, nd)
    out = b.call(node, F.pad, (x.node, tuple(fp)), x, {"value": value})
    b.set(node, b.emit_shape(out, x, None, lambda v: F.pad(v, tuple(fp), value=value)))
