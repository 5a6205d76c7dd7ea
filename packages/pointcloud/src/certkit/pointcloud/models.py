"""Small point-cloud classifiers and their trainer.

- :class:`PointNet` (Qi et al. 2017, arXiv:1612.00593) without the T-nets: a shared
  per-point MLP, a symmetric max-pool and an MLP head.
- :class:`DGCNN` (Wang et al. 2019, arXiv:1801.07829), small: EdgeConv layers on a
  dynamic kNN graph in feature space, then max-pool.

Input (B, N, 3) float32, output logits (B, C). Checkpoints are plain state_dicts saved
with :func:`certkit.core.cache.save_state` and read with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class PointNet(nn.Module):
    """PointNet (vanilla, no T-net). widths: the shared MLP; head: 2 hidden layers."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for w in widths:
            layers += [nn.Conv1d(c, w, 1), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, 3)
        f = self.features(x.transpose(1, 2))  # (B, C, N)
        return self.head(f.max(dim=2).values)  # type: ignore[no-any-return]


def _knn_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """Edge features [x_j - x_i, x_i] for the k nearest neighbours. x: (B, C, N) -> (B, 2C, N, k)."""
    B, C, N = x.shape
    d = torch.cdist(x.transpose(1, 2), x.transpose(1, 2))  # (B, N, N)
    idx = d.topk(k, dim=-1, largest=False).indices  # (B, N, k), includes self
    xt = x.transpose(1, 2)  # (B, N, C)
    nb = torch.gather(xt.unsqueeze(1).expand(B, N, N, C), 2, idx.unsqueeze(-1).expand(B, N, k, C))
    ctr = xt.unsqueeze(2).expand(B, N, k, C)
    return torch.cat([nb - ctr, ctr], dim=-1).permute(0, 3, 1, 2)


class DGCNN(nn.Module):
    """DGCNN with small EdgeConv widths (default 32, 32, 64) and a 128-wide embedding."""

    def __init__(
        self, num_classes: int, k: int = 10, widths: tuple[int, ...] = (32, 32, 64), emb: int = 128
    ) -> None:
        super().__init__()
        self.k = k
        self.convs = nn.ModuleList()
        c = 3
        for w in widths:
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(2 * c, w, 1, bias=False), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)
                )
            )
            c = w
        self.embed = nn.Sequential(
            nn.Conv1d(sum(widths), emb, 1, bias=False), nn.BatchNorm1d(emb), nn.LeakyReLU(0.2)
        )
        self.head = nn.Sequential(
            nn.Linear(emb, 64), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, 3)
        h = x.transpose(1, 2)
        outs = []
        for conv in self.convs:
            h = conv(_knn_features(h, self.k)).max(dim=-1).values
            outs.append(h)
        f = self.embed(torch.cat(outs, dim=1))
        return self.head(f.max(dim=2).values)  # type: ignore[no-any-return]


def build_model(arch: str, num_classes: int) -> nn.Module:
    """``arch`` in {"pointnet", "dgcnn"}."""
    if arch == "pointnet":
        return PointNet(num_classes)
    if arch == "dgcnn":
        return DGCNN(num_classes)
    raise ValueError(f"arch: expected 'pointnet' or 'dgcnn', got {arch!r}")


def train(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    noise_sigma: float = 0.0,
    augment: bool = True,
    transform: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None,
) -> nn.Module:
    """Adam + cosine schedule; ``noise_sigma > 0`` adds Gaussian coordinate noise (for smoothing).

    Augmentation: random rotation about z and a small jitter. X (B, N, 3), y (B,).
    ``transform(xb, yb, progress)`` (progress in [0, 1) through training) replaces each
    batch after augmentation: the hook used by curriculum and adversarial training.
    """
    g = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * max(1, (len(Xt) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    step_i = 0
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=g)
        for s in range(0, len(Xt), batch_size):
            b = perm[s : s + batch_size]
            if len(b) < 2:
                continue
            xb = Xt[b]
            if augment:
                th = torch.rand(len(b), generator=g) * 2 * torch.pi
                c, si = torch.cos(th), torch.sin(th)
                R = torch.zeros(len(b), 3, 3)
                R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -si, si, c, 1
                xb = xb @ R.transpose(1, 2) + 0.01 * torch.randn(xb.shape, generator=g)
            if noise_sigma > 0:
                xb = xb + noise_sigma * torch.randn(xb.shape, generator=g)
            if transform is not None:
                xb = transform(xb, yt[b], (step_i / steps))
                model.train()
            step_i += 1
            loss = nn.functional.cross_entropy(model(xb), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, X: Any, batch_size: int = 256) -> np.ndarray:
    """Predicted labels (B,) for clouds X (B, N, 3)."""
    model.eval()
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    out = [model(Xt[s : s + batch_size]).argmax(1) for s in range(0, len(Xt), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def accuracy(model: nn.Module, X: Any, y: Any) -> float:
    """Clean accuracy in [0, 1]."""
    return float((predict(model, X) == np.asarray(y)).mean())


def load_model(spec: str, num_classes: int | None = None) -> nn.Module:
    """A TorchScript file, ``arch:path/state.pt`` (arch in pointnet|dgcnn), or ``module:factory``.

    State dicts are read with ``weights_only=True``.
    """
    from certkit.core.cache import load_state

    if ":" in spec:
        head, tail = spec.split(":", 1)
        if head in ("pointnet", "dgcnn"):
            state = load_state(Path(tail))
            nc = num_classes or int(state["head.3.weight"].shape[0])
            m = build_model(head, nc)
            m.load_state_dict(state)
            return m.eval()
        import importlib

        mod = importlib.import_module(head)
        return getattr(mod, tail)().eval()  # type: ignore[no-any-return]
    p = Path(spec)
    if not p.is_file():
        raise ValueError(f"model: {spec} is neither a file nor arch:path / module:factory")
    return torch.jit.load(str(p)).eval()  # type: ignore[no-any-return]


class _Threads:
    """Pin torch's intra-op threads for a block (training is reproducible per thread count)."""

    def __init__(self, n: int) -> None:
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


#: The reference recipe: 8 embedded classes, 256 points, 50 clouds per class, 10 epochs.
REFERENCE: dict[str, int] = {"n_train": 400, "n_test": 400, "n_points": 256, "epochs": 10}

#: DGCNN's recipe: 128 points (its kNN graphs cost O(N^2) per layer) and 20 epochs (10 give
#: 86 %; 20 give 93.5 % on 400 test clouds at 77 s CPU, one thread; see the README).
REFERENCE_DGCNN: dict[str, int] = {"n_train": 400, "n_test": 400, "n_points": 128, "epochs": 20}


def reference_model(
    arch: str = "pointnet",
    cache: str | Path | None = None,
    *,
    n_train: int | None = None,
    n_points: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    threads: int = 1,
    noise_sigma: float = 0.0,
) -> nn.Module:
    """A model trained on the embedded dataset (``make_shapes``), cached under ``cache``.

    ``n_train``, ``n_points`` and ``epochs`` default to :data:`REFERENCE` (PointNet) or
    :data:`REFERENCE_DGCNN`. Trained once with ``threads`` torch threads and reloaded with
    ``weights_only=True``. ``cache=None`` uses :func:`certkit.core.cache.cache_dir`
    ``("pointcloud")``.
    """
    from certkit.core.cache import cache_dir, load_state, save_state
    from certkit.pointcloud.data import CLASSES, make_shapes

    recipe = REFERENCE_DGCNN if arch == "dgcnn" else REFERENCE
    n_train = recipe["n_train"] if n_train is None else n_train
    n_points = recipe["n_points"] if n_points is None else n_points
    epochs = recipe["epochs"] if epochs is None else epochs
    root = Path(cache) if cache is not None else cache_dir("pointcloud")
    tag = f"{arch}_shapes{n_train}x{n_points}_e{epochs}_s{seed}"
    if noise_sigma > 0:
        tag += f"_noise{noise_sigma:g}"
    path = root / f"{tag}.pt"
    model = build_model(arch, len(CLASSES))
    if path.exists():
        model.load_state_dict(load_state(path))
        return model.eval()
    X, y = make_shapes(n_train, n_points, seed=seed, split="train")
    with _Threads(threads):
        torch.manual_seed(seed)
        model = build_model(arch, len(CLASSES))
        train(model, X, y, epochs=epochs, batch_size=32, lr=2e-3, seed=seed, noise_sigma=noise_sigma)
    save_state(model.state_dict(), path)
    return model.eval()


__all__ = [
    "DGCNN",
    "REFERENCE",
    "REFERENCE_DGCNN",
    "PointNet",
    "accuracy",
    "build_model",
    "load_model",
    "predict",
    "reference_model",
    "train",
]
