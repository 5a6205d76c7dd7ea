"""Read an ONNX model into a torch ``nn.Sequential`` that :class:`~certkit.core.bounds.BoundedModel`
can bound (needs the ``onnx`` extra: ``certkit-core[onnx]``).

The converter is ours (no onnx2torch): it walks the ONNX graph as a chain (one tensor
flowing from the graph input to the graph output, every other operand a constant
initializer or ``Constant`` node) and maps each node to a supported layer:

- ``Gemm`` (transA = 0; alpha, beta, transB honoured) and ``MatMul`` with a constant
  right operand → ``nn.Linear``; a following ``Add``/``Sub`` of a constant is folded into
  the bias;
- ``Conv`` (1-D/2-D, symmetric explicit padding or ``auto_pad=NOTSET``) → ``nn.Conv1d/2d``,
  a following constant ``Add`` with a per-channel constant folded into its bias;
- ``Relu``, ``Flatten`` (axis 1), ``Reshape`` to ``(batch, -1)`` (or an unchanged
  per-example shape), ``Identity``, ``Dropout``, ``BatchNormalization``, ``MaxPool`` /
  ``AveragePool`` (2-D, no padding);
- elementwise ``Add``/``Sub``/``Mul``/``Div`` by a constant that is the same across the
  spatial positions of a channel (input normalisation) → an eval-mode ``BatchNorm`` with
  ε = 0 holding the affine map.

Anything else raises :class:`~certkit.core.bounds.UnsupportedLayerError` naming the ONNX
node and its op type. Conversion is exact up to float rounding (tests compare the torch
module's outputs with a naive numpy evaluation of the same ONNX graph).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from certkit.core.bounds.graph import UnsupportedLayerError


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("reading ONNX models needs the 'onnx' package: pip install 'certkit-core[onnx]'") from exc
    return onnx


@dataclass
class OnnxModel:
    """A converted ONNX model: ``module`` (eval mode, ``dtype``), the per-example
    ``input_shape`` (batch dimension dropped) and the number of outputs per example."""

    module: nn.Sequential
    input_shape: tuple[int, ...]
    num_outputs: int
    input_name: str
    output_name: str


def _attrs(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _tensor_dims(value_info: Any) -> list[int | None]:
    dims: list[int | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else None)
    return dims


def load_onnx(path: str | Path | bytes, dtype: torch.dtype = torch.float32) -> OnnxModel:
    """Read and convert an ONNX file (or its serialized bytes). Raises ``ValueError`` for
    a missing / truncated / invalid file and :class:`UnsupportedLayerError` naming the
    first unsupported node."""
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
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError
        raise ValueError(f"onnx: {where} is not a valid ONNX model ({type(exc).__name__}: {exc})") from exc
    return _convert(model.graph, dtype)


def _convert(graph: Any, dtype: torch.dtype) -> OnnxModel:
    _onnx()
    from onnx import numpy_helper

    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"onnx: expected one (non-constant) graph input, got {len(inputs)}")
    if len(graph.output) != 1:
        raise UnsupportedLayerError(f"onnx: expected one graph output, got {len(graph.output)}")
    inp = inputs[0]
    dims = _tensor_dims(inp)
    if not dims:
        raise UnsupportedLayerError(f"onnx: input '{inp.name}' has no shape")
    if any(d is None or d <= 0 for d in dims[1:]):
        raise UnsupportedLayerError(f"onnx: input '{inp.name}' needs a static per-example shape, got {dims}")
    if len(dims) == 1:  # a single example without a batch dimension
        in_shape: tuple[int, ...] = (int(dims[0]),)  # type: ignore[arg-type]
    else:
        in_shape = tuple(int(d) for d in dims[1:])  # type: ignore[arg-type]
    cur = inp.name
    shape = in_shape  # per-example shape of the tensor `cur`
    layers: list[nn.Module] = []

    def const(name: str, node: Any) -> np.ndarray:
        if name not in consts:
            raise UnsupportedLayerError(
                f"onnx node '{node.name or node.op_type}' ({node.op_type}): operand '{name}' must be a constant")
        return consts[name]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a, dtype=np.float64), dtype=dtype)

    def dynamic_operand(node: Any) -> tuple[int, list[str]]:
        dyn = [k for k, n in enumerate(node.input) if n and n not in consts]
        if len(dyn) != 1 or node.input[dyn[0]] != cur:
            raise UnsupportedLayerError(
                f"onnx node '{node.name or node.op_type}' ({node.op_type}): only chain graphs are supported "
                "(one non-constant operand, the previous node's output)")
        return dyn[0], list(node.input)

    def channel_const(node: Any, c: np.ndarray) -> np.ndarray:
        """A constant broadcast against the per-example shape → one value per feature of
        dim 1 (or raise when it varies along other dims)."""
        full = np.broadcast_to(c.astype(np.float64), (1, *shape)) if c.ndim <= len(shape) + 1 else None
        if full is None:
            raise UnsupportedLayerError(f"onnx node '{node.name or node.op_type}' ({node.op_type}): constant rank too high")
        full = full.reshape(shape)
        if len(shape) == 1:
            return full.copy()
        per = full.reshape(shape[0], -1)
        if not np.all(per == per[:, :1]):
            raise UnsupportedLayerError(
                f"onnx node '{node.name or node.op_type}' ({node.op_type}): an elementwise constant that varies "
                "within a channel is not supported")
        return per[:, 0].copy()

    def affine(scale: np.ndarray, shift: np.ndarray) -> nn.Module:
        n = int(shape[0])
        bn: nn.Module = nn.BatchNorm1d(n, eps=0.0) if len(shape) in (1, 2) else nn.BatchNorm2d(n, eps=0.0)
        with torch.no_grad():
            bn.weight.copy_(t(scale))  # type: ignore[operator]
            bn.bias.copy_(t(shift))  # type: ignore[operator]
            bn.running_mean.zero_()  # type: ignore[operator]
            bn.running_var.fill_(1.0)  # type: ignore[operator]
        return bn.to(dtype).eval()

    for node in graph.node:
        op = node.op_type
        label = f"onnx node '{node.name or op}' ({op})"
        a = _attrs(node)
        if op == "Constant":
            v = a.get("value")
            if v is None:
                raise UnsupportedLayerError(f"{label}: only tensor 'value' constants are supported")
            consts[node.output[0]] = numpy_helper.to_array(v)
            continue
        if all((not n) or n in consts for n in node.input):
            raise UnsupportedLayerError(f"{label}: constant folding is not supported (all operands are constants)")
        k, ins = dynamic_operand(node)
        out = node.output[0]
        if op == "Gemm":
            if k != 0 or int(a.get("transA", 0)) != 0:
                raise UnsupportedLayerError(f"{label}: only Gemm(x, W[, b]) with transA=0 is supported")
            W = const(ins[1], node).astype(np.float64)
            if int(a.get("transB", 0)) == 0:
                W = W.T
            W = W * float(a.get("alpha", 1.0))
            b = None
            if len(ins) > 2 and ins[2]:
                b = np.broadcast_to(const(ins[2], node).astype(np.float64) * float(a.get("beta", 1.0)), (W.shape[0],))
            if len(shape) != 1 or W.shape[1] != shape[0]:
                raise UnsupportedLayerError(f"{label}: input of shape {shape} does not match weight {W.shape}")
            lin = nn.Linear(W.shape[1], W.shape[0], bias=True)
            with torch.no_grad():
                lin.weight.copy_(t(W))
                lin.bias.copy_(t(b if b is not None else np.zeros(W.shape[0])))
            layers.append(lin.to(dtype))
            shape = (W.shape[0],)
        elif op == "MatMul":
            if k != 0:
                raise UnsupportedLayerError(f"{label}: only MatMul(x, W) with a constant W is supported")
            W = const(ins[1], node).astype(np.float64)
            if W.ndim != 2 or len(shape) != 1 or W.shape[0] != shape[0]:
                raise UnsupportedLayerError(f"{label}: x of per-example shape {shape} times W {W.shape} is not supported")
            lin = nn.Linear(W.shape[0], W.shape[1], bias=True)
            with torch.no_grad():
                lin.weight.copy_(t(W.T))
                lin.bias.zero_()
            layers.append(lin.to(dtype))
            shape = (W.shape[1],)
        elif op in ("Add", "Sub", "Mul", "Div"):
            c = const(ins[1 - k], node).astype(np.float64)
            per = channel_const(node, c)
            if op == "Sub" and k == 1:  # c - x
                scale, shift = -np.ones_like(per), per
            elif op == "Div" and k == 1:
                raise UnsupportedLayerError(f"{label}: constant / x is not supported")
            elif op in ("Add", "Sub"):
                scale, shift = np.ones_like(per), (per if op == "Add" else -per)
            elif op == "Mul":
                scale, shift = per, np.zeros_like(per)
            else:
                if np.any(per == 0):
                    raise UnsupportedLayerError(f"{label}: division by zero")
                scale, shift = 1.0 / per, np.zeros_like(per)
            last = layers[-1] if layers else None
            if isinstance(last, (nn.Linear, nn.Conv1d, nn.Conv2d)) and np.all(scale == 1.0):
                with torch.no_grad():
                    if last.bias is None:
                        last.bias = nn.Parameter(torch.zeros(last.weight.shape[0], dtype=dtype))
                    last.bias.add_(t(shift))
            else:
                layers.append(affine(scale, shift))
        elif op == "Relu":
            layers.append(nn.ReLU())
        elif op in ("Identity", "Dropout"):
            pass
        elif op == "Flatten":
            if int(a.get("axis", 1)) != 1:
                raise UnsupportedLayerError(f"{label}: only axis=1 is supported")
            if len(shape) > 1:
                layers.append(nn.Flatten())
            shape = (math.prod(shape),)
        elif op == "Reshape":
            target = [int(v) for v in const(ins[1], node).reshape(-1)]
            n = math.prod(shape)
            rest = target[1:]
            if len(target) >= 2 and target[0] in (-1, 0, 1) and (rest == [-1] or rest == [n]):
                if len(shape) > 1:
                    layers.append(nn.Flatten())
                shape = (n,)
            elif target[0] in (-1, 0, 1) and tuple(rest) == tuple(shape):
                pass
            else:
                raise UnsupportedLayerError(
                    f"{label}: only reshapes to (batch, -1) or to the same per-example shape are supported, got {target}")
        elif op == "Conv":
            W = const(ins[1], node).astype(np.float64)
            nd = W.ndim - 2
            if nd not in (1, 2) or len(shape) != nd + 1:
                raise UnsupportedLayerError(f"{label}: only 1-D and 2-D convolutions are supported")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedLayerError(f"{label}: auto_pad is not supported (use explicit pads)")
            pads = list(a.get("pads", [0] * (2 * nd)))
            if pads[:nd] != pads[nd:]:
                raise UnsupportedLayerError(f"{label}: asymmetric padding {pads} is not supported")
            strides = list(a.get("strides", [1] * nd))
            dil = list(a.get("dilations", [1] * nd))
            group = int(a.get("group", 1))
            co, cig = W.shape[:2]
            if cig * group != shape[0]:
                raise UnsupportedLayerError(f"{label}: weight {W.shape} does not match input channels {shape[0]}")
            conv_t = nn.Conv1d if nd == 1 else nn.Conv2d
            conv = conv_t(shape[0], co, tuple(W.shape[2:]), stride=tuple(strides), padding=tuple(pads[:nd]),
                          dilation=tuple(dil), groups=group, bias=True)
            with torch.no_grad():
                conv.weight.copy_(t(W))
                assert conv.bias is not None
                conv.bias.copy_(t(const(ins[2], node)) if len(ins) > 2 and ins[2] else torch.zeros(co))
            conv = conv.to(dtype)
            layers.append(conv)
            with torch.no_grad():
                shape = tuple(conv(torch.zeros((1, *shape), dtype=dtype)).shape[1:])
        elif op == "BatchNormalization":
            sc, bb, mean, var = (const(ins[j], node).astype(np.float64) for j in (1, 2, 3, 4))
            eps = float(a.get("epsilon", 1e-5))
            s = sc / np.sqrt(var + eps)
            layers.append(affine(s * np.ones(shape[0]), (bb - mean * s) * np.ones(shape[0])))
        elif op in ("MaxPool", "AveragePool"):
            ks = list(a.get("kernel_shape", []))
            pads = list(a.get("pads", [0] * 4))
            if len(ks) != 2 or any(pads) or int(a.get("ceil_mode", 0)) or len(shape) != 3:
                raise UnsupportedLayerError(f"{label}: only 2-D pooling without padding or ceil_mode is supported")
            if op == "MaxPool" and any(d != 1 for d in a.get("dilations", [1, 1])):
                raise UnsupportedLayerError(f"{label}: dilation is not supported")
            st = tuple(a.get("strides", ks))
            pool: nn.Module = (nn.MaxPool2d(tuple(ks), st) if op == "MaxPool" else nn.AvgPool2d(tuple(ks), st))
            layers.append(pool)
            with torch.no_grad():
                shape = tuple(pool(torch.zeros((1, *shape), dtype=dtype)).shape[1:])
        else:
            raise UnsupportedLayerError(
                f"{label} is not supported; supported ONNX ops: Gemm, MatMul, Add, Sub, Mul, Div, Relu, Conv, "
                "Flatten, Reshape, Identity, Dropout, BatchNormalization, MaxPool, AveragePool, Constant")
        cur = out
    if cur != graph.output[0].name:
        raise UnsupportedLayerError(f"onnx: the graph output '{graph.output[0].name}' is not the end of the chain")
    if len(shape) != 1:
        layers.append(nn.Flatten())
        shape = (math.prod(shape),)
    if not layers:
        raise UnsupportedLayerError("onnx: the graph has no layers")
    module = nn.Sequential(*layers).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return OnnxModel(module, in_shape, int(shape[0]), inp.name, graph.output[0].name)
