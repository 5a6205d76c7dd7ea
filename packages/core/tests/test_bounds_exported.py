"""torch.export programs are bounded through the ATen → nn mapping
(certkit.core.bounds.exported): bounds equal those of the original module, and an
unsupported ATen op gets an error that names it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from certkit.core.bounds import BoundedModel, UnsupportedLayerError  # noqa: E402


class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.c1(x)))
        h = torch.relu(self.c2(h) + h)
        return self.fc(self.pool(h).reshape(x.shape[0], -1))


def _export(net: nn.Module, shape: tuple[int, ...], tmp: object) -> nn.Module:
    ep = torch.export.export(net, (torch.zeros(2, *shape),), dynamic_shapes=({0: torch.export.Dim("b")},))
    path = f"{tmp}/m.pt2"
    torch.export.save(ep, path)
    return torch.export.load(path).module()


def _assert_same_bounds(net: nn.Module, shape: tuple[int, ...], tmp: object) -> None:
    """The exported program computes the module and gets the same IBP / CROWN bounds."""
    prog = _export(net, shape, tmp)
    a, b = BoundedModel(prog, shape), BoundedModel(net, shape)
    x = torch.rand(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(a(x), net(x))
        for method in ("IBP", "CROWN"):
            la, ua = a.compute_bounds(x, 0.05, method=method)
            lb, ub = b.compute_bounds(x, 0.05, method=method)
            torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ua, ub, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "res"])
def test_exported_bounds_equal_original(kind: str, tmp_path: object) -> None:
    torch.manual_seed(0)
    if kind == "mlp":
        net: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                       nn.Dropout(0.2), nn.Linear(16, 5))
    else:
        net = _Res()
    net.eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    shape = (1, 8, 8)
    _assert_same_bounds(net, shape, tmp_path)


class _Ops(nn.Module):
    """Normalisation buffers, Sigmoid / Tanh / GELU, sub with alpha, cat, permute, mean, pad."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.3]).view(1, 1, 1))
        self.c = nn.Conv1d(1, 3, 3)
        self.fc = nn.Linear(3 * 8 + 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c((x - self.mean) / 0.5)  # (B, 3, 6)
        h = torch.nn.functional.pad(torch.sigmoid(h), (1, 1), value=0.5)  # (B, 3, 8)
        a = torch.sub(torch.tanh(h), torch.nn.functional.gelu(h), alpha=2)
        m = a.permute(0, 2, 1).mean(1)  # (B, 3)
        return self.fc(torch.cat([a.flatten(1), m], 1))


def test_exported_new_operators_bounded(tmp_path: object) -> None:
    torch.manual_seed(0)
    net = _Ops().eval()
    _assert_same_bounds(net, (1, 8), tmp_path)


def test_exported_unsupported_op_named(tmp_path: object) -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.LogSigmoid()).eval()
    prog = _export(net, (4,), tmp_path)
    with pytest.raises(UnsupportedLayerError, match="log_sigmoid"):
        BoundedModel(prog, (4,))


def test_torchscript_rejected_with_hint() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.trace(nn.Linear(4, 2).eval(), torch.zeros(1, 4))
    with pytest.raises(UnsupportedLayerError, match=r"torch\.export"):
        BoundedModel(ts, (4,))
