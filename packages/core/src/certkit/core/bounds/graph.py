"""Graph capture for bound propagation: a torch.fx trace mapped onto an explicit registry
of bounded operators (:mod:`certkit.core.bounds.ops`).

Supported (anything else raises :class:`UnsupportedLayerError` naming the module):

- modules: ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` (zero padding), ``nn.ReLU``,
  ``nn.BatchNorm1d/2d`` (eval: running statistics; train: batch statistics of the clean
  input, as in certified training), ``nn.Flatten`` (``start_dim=1``), ``nn.AvgPool2d``,
  ``nn.AdaptiveAvgPool2d(1)``, ``nn.MaxPool2d`` (no padding), ``nn.AdaptiveMaxPool1d(1)``
  (global max-pool, PointNet), ``nn.Identity``, ``nn.Dropout`` (eval), ``nn.Sequential``
  (traced through);
- functions/methods: ``+`` / ``torch.add`` of two tensors (residual), ``torch.relu`` /
  ``F.relu`` / ``.relu()``, ``torch.flatten(x, 1)``, ``.flatten(1)``, ``.view``/``.reshape``
  to ``(B, -1)``, ``torch.max(x, dim)[0]`` / ``torch.amax(x, dim)`` / ``.max(dim)[0]``
  (global max over one non-batch dim).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from certkit.core.bounds import ops


class UnsupportedLayerError(ValueError):
    """A module or function that bound propagation does not support."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.Sequential):
            return False
        return not list(m.children()) or type(m).__module__.startswith("torch.nn")


def _check_finite(name: str, t: torch.Tensor | None) -> None:
    if t is not None and not bool(torch.isfinite(t).all()):
        raise ValueError(f"model: parameter or buffer of '{name}' contains NaN or inf")


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
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ops.BatchNorm(name, m)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedLayerError(f"module '{name}' (Flatten): only start_dim=1, end_dim=-1 is supported")
        return ops.Flatten(name)
    if isinstance(m, nn.AvgPool2d):
        return ops.AvgPool2d.from_module(name, m)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        out = m.output_size
        if out not in (1, (1, 1)):
            raise UnsupportedLayerError(f"module '{name}' (AdaptiveAvgPool2d): only output_size=1 is supported")
        return ops.GlobalAvgPool2d(name)
    if isinstance(m, nn.MaxPool2d):
        return ops.MaxPool2d.from_module(name, m)
    if isinstance(m, nn.AdaptiveMaxPool1d):
        if m.output_size not in (1, (1,)) or m.return_indices:
            raise UnsupportedLayerError(f"module '{name}' (AdaptiveMaxPool1d): only output_size=1 is supported")
        return ops.GlobalMax(name, dim=2, keepdim=True)
    if isinstance(m, nn.Identity):
        return ops.Identity(name)
    if isinstance(m, nn.Dropout):
        if m.training and m.p > 0:
            raise UnsupportedLayerError(f"module '{name}' (Dropout): call model.eval() before bounding")
        return ops.Identity(name)
    raise UnsupportedLayerError(
        f"module '{name}' ({type(m).__module__}.{type(m).__name__}) is not supported by bound propagation; "
        "supported: Linear, Conv1d, Conv2d, ReLU, BatchNorm1d/2d, Flatten, AvgPool2d, MaxPool2d, "
        "AdaptiveAvgPool2d(1), AdaptiveMaxPool1d(1), Identity, Dropout, Sequential, residual add")


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


def _dim_arg(args: tuple[Any, ...], kwargs: dict[str, Any], pos: int) -> Any:
    if len(args) > pos:
        return args[pos]
    return kwargs.get("dim")


def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """Trace ``model`` and map every node to a bounded op. ``input_shape`` excludes the
    batch dimension. Raises :class:`UnsupportedLayerError` naming the first unsupported
    module or function."""
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
    except Exception as exc:
        raise UnsupportedLayerError(
            f"model ({type(model).__name__}) cannot be traced by torch.fx: {exc}") from exc
    mods = dict(gm.named_modules())
    g = Graph()
    idx: dict[fx.Node, int] = {}
    pending_max: dict[fx.Node, int] = {}  # torch.max(x, dim) nodes awaiting [0]
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if g.nodes:
                raise UnsupportedLayerError("model: only single-input models are supported")
            idx[n] = g.add(ops.Input("input"), [])
        elif n.op == "get_attr":
            raise UnsupportedLayerError(f"model: direct use of attribute '{n.target}' in forward is not supported")
        elif n.op == "call_module":
            op = _module_op(str(n.target), mods[str(n.target)])
            idx[n] = g.add(op, [idx[a] for a in n.args if isinstance(a, fx.Node)])
        elif n.op in ("call_function", "call_method"):
            t = n.target
            tensor_args = [a for a in n.args if isinstance(a, fx.Node) and (a in idx or a in pending_max)]
            name = n.name
            if not tensor_args:
                continue  # shape arithmetic (x.size(0), x.shape[0]): not a tensor
            if t in (operator.add, torch.add, "add") and len(tensor_args) == 2 and len(n.args) == 2:
                idx[n] = g.add(ops.Add(name), [idx[a] for a in tensor_args])
            elif t in (torch.relu, nn.functional.relu, "relu"):
                idx[n] = g.add(ops.ReLU(name), [idx[tensor_args[0]]])
            elif t in (torch.flatten, "flatten"):
                start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
                if start != 1:
                    raise UnsupportedLayerError(f"function '{name}' (flatten): only start_dim=1 is supported")
                idx[n] = g.add(ops.Flatten(name), [idx[tensor_args[0]]])
            elif t in ("view", "reshape", torch.reshape):
                idx[n] = g.add(ops.Reshape(name, n.args[1:]), [idx[tensor_args[0]]])
            elif t in ("size", "dim") or t is getattr:
                continue  # shape queries: not tensors
            elif t in (torch.max, "max") and _dim_arg(n.args, n.kwargs, 1) is not None:
                pending_max[n] = idx[tensor_args[0]]
            elif t in (torch.amax, "amax"):
                d = _dim_arg(n.args, n.kwargs, 1)
                keep = bool(n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False))
                idx[n] = g.add(ops.GlobalMax(name, dim=int(d), keepdim=keep), [idx[tensor_args[0]]])
            elif t is operator.getitem and n.args[0] in pending_max and n.args[1] == 0:
                src = n.args[0]
                d = _dim_arg(src.args, src.kwargs, 1)
                keep = bool(src.kwargs.get("keepdim", src.args[2] if len(src.args) > 2 else False))
                idx[n] = g.add(ops.GlobalMax(name, dim=int(d), keepdim=keep), [pending_max[src]])
            else:
                tname = getattr(t, "__name__", str(t))
                raise UnsupportedLayerError(
                    f"function '{name}' ({tname}) is not supported by bound propagation")
        elif n.op == "output":
            a = n.args[0]
            if not isinstance(a, fx.Node) or a not in idx:
                raise UnsupportedLayerError("model: the output must be a single tensor")
            g.output = idx[a]
    # shapes by a forward pass on a zero example (eval semantics for BN here)
    with torch.no_grad():
        p = next(iter(model.parameters()), None)
        dtype = p.dtype if p is not None else torch.float32
        x0 = torch.zeros((2, *input_shape), dtype=dtype, device=p.device if p is not None else "cpu")
        for op in g.nodes:
            op.prepare_shapes = True
        vals = g.forward(x0)
        g.shapes = [tuple(v.shape[1:]) for v in vals]
        for i, op in enumerate(g.nodes):
            op.in_shapes = [g.shapes[j] for j in g.inputs[i]]
            op.out_shape = g.shapes[i]
            op.prepare_shapes = False
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
