"""Bound propagation on ``torch.export`` programs: map the ATen graph of
``torch.export.load(path).module()`` back onto ``torch.nn`` layers, so that
:func:`certkit.core.bounds.graph.capture` (which works on nn layers) can bound it.

Supported ATen ops (inference graphs of the layers in :mod:`certkit.core.bounds.graph`):
``linear``, ``conv1d``/``conv2d`` (zero padding), ``batch_norm`` /
``_native_batch_norm_legit_no_training`` (eval), ``relu``, ``flatten.using_ints``,
``view``/``reshape`` (batch kept), ``add.Tensor`` (residual), ``avg_pool2d``,
``max_pool2d`` (no padding), ``amax`` (global max), ``dropout`` (eval), ``clone``/
``contiguous`` (identity); and, as the torch functions of the same name (arguments checked
by the capture): ``sigmoid``, ``tanh``, ``neg``, ``add``/``sub``/``rsub`` (alpha,
constants, buffers), ``mul``/``div`` by constants, ``cat``, ``permute``, ``transpose``,
``mean``, ``matmul``, ``leaky_relu``, ``elu``, ``hardtanh``, ``softplus``, ``gelu``,
``adaptive_avg_pool2d``, ``constant_pad_nd``. Anything else raises :class:`UnsupportedLayerError` naming the
op. The rebuilt module shares the program's parameter tensors (no copy).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from certkit.core.bounds.graph import UnsupportedLayerError

aten = torch.ops.aten


def is_aten_graph(model: nn.Module) -> bool:
    """True for a GraphModule whose graph calls ATen ops (a torch.export program's module)."""
    if not isinstance(model, fx.GraphModule):
        return False
    return any(n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload) for n in model.graph.nodes)


def _attr(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    if node is None:
        return None
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        raise UnsupportedLayerError(f"exported graph: expected a parameter, got {node}")
    obj: Any = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _arg(args: tuple[Any, ...], i: int, default: Any) -> Any:
    return args[i] if len(args) > i else default


F = nn.functional

# ATen ops that map one-to-one onto a torch function the capture bounds (same argument
# order); the capture then checks every argument (certkit.core.bounds.graph.CALL_SIGNATURES)
_SAME_ARGS: dict[Any, Any] = {
    aten.sigmoid.default: torch.sigmoid, aten.tanh.default: torch.tanh, aten.neg.default: torch.neg,
    aten.sub.Tensor: torch.sub, aten.rsub.Scalar: torch.rsub, aten.rsub.Tensor: torch.rsub,
    aten.mul.Tensor: torch.mul, aten.div.Tensor: torch.div,
    aten.cat.default: torch.cat, aten.permute.default: torch.permute, aten.transpose.int: torch.transpose,
    aten.mean.dim: torch.mean, aten.matmul.default: torch.matmul,
    aten.leaky_relu.default: F.leaky_relu, aten.elu.default: F.elu, aten.hardtanh.default: F.hardtanh,
    aten.softplus.default: F.softplus, aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d, aten.pad.default: F.pad,
}


def _map(env: dict[fx.Node, fx.Node], v: Any) -> Any:
    if isinstance(v, fx.Node):
        if v not in env:
            raise UnsupportedLayerError(f"exported graph: operand '{v.name}' is not supported here")
        return env[v]
    if isinstance(v, (list, tuple)):
        return type(v)(_map(env, a) for a in v)
    if isinstance(v, dict):
        return {k: _map(env, a) for k, a in v.items()}
    return v


def from_exported(gm: fx.GraphModule) -> nn.Module:
    """An nn-level GraphModule equivalent to the ATen graph ``gm`` (eval semantics)."""
    root = nn.Module()
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    k = 0

    def add_module(m: nn.Module, x: fx.Node) -> fx.Node:
        nonlocal k
        name = f"m{k}"
        k += 1
        root.add_module(name, m)
        return g.call_module(name, (env[x],))

    def param(t: torch.Tensor | None) -> nn.Parameter | None:
        return None if t is None else nn.Parameter(t.detach(), requires_grad=False)

    for n in gm.graph.nodes:
        a = n.args
        if n.op == "placeholder":
            env[n] = g.placeholder(n.name)
        elif n.op == "get_attr":
            if any(u.op == "call_function" and u.target in _SAME_ARGS for u in n.users):
                # a constant read by arithmetic (a normalisation buffer): kept live on the new root
                name = f"c{len(env)}"
                root.register_buffer(name, _attr(gm, n))
                env[n] = g.get_attr(name)
            continue
        elif n.op == "call_module":
            if str(n.target).startswith("_guards"):
                continue
            raise UnsupportedLayerError(f"exported graph: module call '{n.target}' is not supported")
        elif n.op == "output":
            out = a[0]
            if isinstance(out, (tuple, list)):
                if len(out) != 1:
                    raise UnsupportedLayerError("exported graph: the output must be a single tensor")
                out = out[0]
            g.output(env[out])
        elif n.op == "call_function":
            t = n.target
            if t == aten.linear.default:
                w, b = _attr(gm, a[1]), _attr(gm, _arg(a, 2, None))
                assert w is not None
                lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
                lin.weight, lin.bias = param(w), param(b)  # type: ignore[assignment]
                env[n] = add_module(lin, a[0])
            elif t in (aten.conv2d.default, aten.conv1d.default):
                w, b = _attr(gm, a[1]), _attr(gm, _arg(a, 2, None))
                assert w is not None
                nd = 2 if t == aten.conv2d.default else 1
                stride, pad = _arg(a, 3, [1] * nd), _arg(a, 4, [0] * nd)
                dil, groups = _arg(a, 5, [1] * nd), _arg(a, 6, 1)
                if isinstance(pad, str):
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' string padding is not supported")
                cls = nn.Conv2d if nd == 2 else nn.Conv1d
                conv = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=tuple(stride),
                           padding=tuple(pad), dilation=tuple(dil), groups=groups, bias=b is not None)
                conv.weight, conv.bias = param(w), param(b)  # type: ignore[assignment]
                env[n] = add_module(conv, a[0])
            elif t in (aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default):
                w, b = _attr(gm, a[1]), _attr(gm, a[2])
                mean, var = _attr(gm, a[3]), _attr(gm, a[4])
                assert mean is not None and var is not None
                if t == aten.batch_norm.default:
                    training, eps = a[5], a[7]
                else:
                    training, eps = False, a[6]
                if training:
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' batch_norm in training mode")
                dims = n.meta.get("val").dim() if "val" in n.meta else 4
                cls = nn.BatchNorm2d if dims == 4 else nn.BatchNorm1d
                bn = cls(mean.shape[0], eps=eps, affine=w is not None)
                if w is not None:
                    bn.weight, bn.bias = param(w), param(b)  # type: ignore[assignment]
                bn.running_mean, bn.running_var = mean.detach(), var.detach()
                env[n] = add_module(bn.eval(), a[0])
            elif t in (aten.relu.default, aten.relu_.default):
                env[n] = g.call_function(torch.relu, (env[a[0]],))
            elif t == aten.flatten.using_ints:
                if _arg(a, 1, 0) != 1 or _arg(a, 2, -1) != -1:
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' flatten must be flatten(x, 1)")
                env[n] = g.call_function(torch.flatten, (env[a[0]], 1))
            elif t in (aten.view.default, aten.reshape.default, aten._unsafe_view.default):
                rest = list(a[1])[1:]
                if not all(isinstance(v, int) for v in rest):
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' reshape needs a static per-example shape")
                bsz = g.call_method("size", (env[a[0]], 0))  # keeps the batch dimension symbolic
                env[n] = g.call_method("reshape", (env[a[0]], bsz, *rest))
            elif t == aten.sym_size.int:
                continue  # shape arithmetic of the dynamic batch
            elif t == aten.add.Tensor and len(a) == 2 and all(isinstance(v, fx.Node) for v in a) \
                    and all(v in env for v in a) and not n.kwargs:
                env[n] = g.call_function(operator.add, (env[a[0]], env[a[1]]))
            elif t in _SAME_ARGS or t == aten.add.Tensor:
                f = torch.add if t == aten.add.Tensor else _SAME_ARGS[t]
                env[n] = g.call_function(f, _map(env, a), _map(env, dict(n.kwargs)))
            elif t == aten.gelu.default:
                env[n] = g.call_function(F.gelu, (env[a[0]],), {"approximate": n.kwargs.get("approximate", "none")})
            elif t == aten.constant_pad_nd.default:
                env[n] = g.call_function(F.pad, (env[a[0]], tuple(a[1])), {"value": float(_arg(a, 2, 0.0))})
            elif t == aten.avg_pool2d.default:
                ks = a[1]
                st = _arg(a, 2, []) or ks
                env[n] = add_module(nn.AvgPool2d(tuple(ks), tuple(st), tuple(_arg(a, 3, [0, 0])),
                                                 ceil_mode=_arg(a, 4, False),
                                                 count_include_pad=_arg(a, 5, True)), a[0])
            elif t in (aten.max_pool2d.default, aten.max_pool2d_with_indices.default):
                ks = a[1]
                st = _arg(a, 2, []) or ks
                env[n] = add_module(nn.MaxPool2d(tuple(ks), tuple(st), tuple(_arg(a, 3, [0, 0])),
                                                 dilation=tuple(_arg(a, 4, [1, 1])), ceil_mode=_arg(a, 5, False)),
                                    a[0])
            elif t == aten.amax.default:
                dims = list(_arg(a, 1, []))
                if len(dims) != 1:
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' amax over one dim only")
                env[n] = g.call_function(torch.amax, (env[a[0]], dims[0], bool(_arg(a, 2, False))))
            elif t in (aten.dropout.default, aten.clone.default, aten.contiguous.default,
                       aten.alias.default, aten.detach.default):
                if t == aten.dropout.default and _arg(a, 2, False):
                    raise UnsupportedLayerError(f"exported graph: '{n.name}' dropout in training mode")
                env[n] = env[a[0]]
            elif t is operator.getitem and isinstance(a[0], fx.Node) and a[0] in env and a[1] == 0 and \
                    a[0].target == aten.max_pool2d_with_indices.default:
                env[n] = env[a[0]]
            else:
                raise UnsupportedLayerError(f"exported graph: op '{n.name}' ({t}) is not supported by bound "
                                            "propagation")
        else:
            raise UnsupportedLayerError(f"exported graph: node kind {n.op!r} is not supported")
    return fx.GraphModule(root, g).eval()
