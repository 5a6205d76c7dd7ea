"""Regression tests for the two unsound cases of issue 17 and the bad-input messages:

- keyword arguments of captured calls (``alpha=`` of add / sub / rsub) are modelled or
  refused, never dropped: the capture's signature table is walked against torch's own
  signatures, so a new keyword is refused until it is modelled;
- (stale parameters: test_bounds_stale.py);
- a wrong ``input_shape``, a float64 / integer ``x`` for a float32 model and a broadcast
  the capture cannot bound give one-line errors naming the argument."""

from __future__ import annotations

import operator
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
from torch import fx, nn  # noqa: E402

from certkit.core.bounds import BoundedModel, UnsupportedLayerError  # noqa: E402
from certkit.core.bounds import graph as G  # noqa: E402

METHODS = ["IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"]


def _sound(model: nn.Module, bm: BoundedModel, x: torch.Tensor, eps: float, method: str, n: int = 400) -> None:
    """Sampled points (vertices included) never escape the bounds on every output."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        lo, up = bm.compute_bounds(x, eps, method=method)
        u = torch.rand((x.shape[0], n, *x.shape[1:]), generator=gen, dtype=x.dtype) * 2 - 1
        u[:, : n // 4] = u[:, : n // 4].sign()
        pts = x.unsqueeze(1) + eps * u
        out = model(pts.reshape(-1, *x.shape[1:])).reshape(x.shape[0], n, -1)
    tol = 1e-5
    assert bool((out >= lo.unsqueeze(1) - tol).all()), f"{method}: a sample falls below the lower bound"
    assert bool((out <= up.unsqueeze(1) + tol).all()), f"{method}: a sample exceeds the upper bound"


class _Two(nn.Module):
    """Two branches of one input combined by ``fn`` (add / sub / rsub with alpha)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.a, self.b, self.fn = nn.Linear(3, 4), nn.Linear(3, 4), fn
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fn(self.a(x), self.b(x))))


ALPHA_CASES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "torch.add alpha=2": lambda a, b: torch.add(a, b, alpha=2),
    "a.add alpha=-1": lambda a, b: a.add(b, alpha=-1),
    "torch.sub alpha=2": lambda a, b: torch.sub(a, b, alpha=2),
    "a.sub alpha=0.5": lambda a, b: a.sub(b, alpha=0.5),
    "torch.rsub alpha=3": lambda a, b: torch.rsub(a, b, alpha=3),
    "a - b": lambda a, b: a - b,
    "torch.add": lambda a, b: torch.add(a, b),
}


@pytest.mark.parametrize("case", list(ALPHA_CASES))
def test_add_sub_alpha_modelled(case: str) -> None:
    torch.manual_seed(3)
    model = _Two(ALPHA_CASES[case]).double().eval()
    bm = BoundedModel(model, (3,))
    x = torch.randn(3, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(bm(x), model(x), atol=1e-12)  # the captured graph computes the model
    for method in METHODS:
        _sound(model, bm, x, 0.5, method)


def _schema_names(target: object) -> set[str]:
    """Argument names of torch's own signatures of a captured call: every ATen schema of the
    same name (methods, torch.* and F.* builtins) and the Python signature when there is one."""
    import inspect

    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    names: set[str] = set()
    for s in torch._C._jit_get_schemas_for_operator(f"aten::{name}"):
        names |= {a.name for a in s.arguments}
    if not isinstance(target, str):
        try:
            names |= set(inspect.signature(target).parameters)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    return names - {"self", "input", "out", "args", "kwargs"}


def _graph_with_call(target: object, kwargs: dict[str, object]) -> fx.GraphModule:
    g = fx.Graph()
    x = g.placeholder("x")
    op = "call_method" if isinstance(target, str) else "call_function"
    two = G.CALL_SIGNATURES[target][1] >= 2  # the call takes two tensors
    y = g.create_node(op, target, (x, x) if two else (x,), kwargs)
    g.output(y)
    return fx.GraphModule(nn.Module(), g)


def test_signature_table_refuses_every_unmodelled_keyword() -> None:
    """Walk the capture's table of accepted call signatures: every keyword of torch's own
    signature that the table does not model, and any made-up keyword, is refused with an
    UnsupportedLayerError naming the node and the keyword."""
    checked = 0
    for target, (params, _) in G.CALL_SIGNATURES.items():
        names = _schema_names(target)
        for kw in sorted((names - set(params)) | {"made_up_kw"}):
            with pytest.raises(UnsupportedLayerError, match=rf"'{kw}'"):
                BoundedModel(_graph_with_call(target, {kw: 2}), (4,))
            checked += 1
    assert checked - len(G.CALL_SIGNATURES) >= 50  # real keywords were walked, not only made-up ones
    # the table lists add / sub / rsub with alpha modelled (the keyword once dropped)
    for t in (torch.add, "add", torch.sub, "sub", torch.rsub):
        assert "alpha" in G.CALL_SIGNATURES[t][0]
    assert operator.add in G.CALL_SIGNATURES


# ---------------------------------------------------------------- bad input
def test_bad_input_one_line_errors() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    # a wrong input_shape: named, not a matmul shape error from inside torch
    with pytest.raises(ValueError, match=r"input_shape.*\(1, 4, 5\)") as ei:
        BoundedModel(net, (1, 4, 5))
    assert "\n" not in str(ei.value)
    bm = BoundedModel(net, (1, 4, 4))
    for bad in (torch.rand(2, 1, 4, 4, dtype=torch.float64), torch.ones(2, 1, 4, 4, dtype=torch.int64)):
        with pytest.raises(ValueError, match=r"x: .*float32") as ei:
            bm.compute_bounds(bad, 0.1)
        assert "\n" not in str(ei.value)

    class Bcast(nn.Module):  # (B, 4) + (B, 1): a broadcast of two computed tensors
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    with pytest.raises(UnsupportedLayerError, match=r"'add'.*broadcast") as ei:
        BoundedModel(Bcast(), (3,))
    assert "\n" not in str(ei.value)
