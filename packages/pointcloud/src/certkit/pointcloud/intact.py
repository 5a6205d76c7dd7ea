"""INTACT-style adversarial curriculum training on critical points, and the baselines.

Seed paper: "INTACT: Inducing Noise Tolerance through Adversarial Curriculum Training for
LiDAR-based Safety-Critical Perception and Autonomy" (Darabi et al., arXiv:2502.01896; the
abstract only, no code read). Its two phases, as implemented here:

1. **meta-learning phase**: the abstract says a meta-learning phase "equips a teacher network
   with task-agnostic priors, enabling it to generate robust saliency maps". It does not say
   which meta-learner or which tasks, so this is our reading (an assumption, not the paper's
   recipe): :func:`meta_teacher` runs first-order Reptile (Nichol, Achiam, Schulman,
   arXiv:1803.02999) from a plainly trained model over a family of corruption *tasks*
   (clean, Gaussian jitter of random strength, random point drop-out, local cluster
   drop-out, anisotropic scaling); each meta-iteration adapts a copy with a few Adam steps
   on one task and moves the teacher's weights a fraction of the way towards the adapted
   ones (BatchNorm statistics included). The teacher's per-point saliency is the
   gradient norm ``|d CE / d x_i|``; the top ``critical_frac`` of the points of each cloud
   are its critical points;
2. **adversarial curriculum** (ACT): a **student** is trained with a curriculum that
   perturbs *only* the critical points with noise and drop-out that grow linearly over
   training: at progress ``t`` in [0, 1) the critical points get Gaussian noise
   ``t * max_sigma`` and are dropped with probability ``t * max_drop`` (a dropped point is
   replaced by a copy of a random surviving point of the same cloud, which keeps N fixed
   and, for max-pooling models, equals removal). The critical points are recomputed per
   batch from the teacher, so the perturbation targets what the teacher relies on.

Baselines: plain training and PGD adversarial training (Madry et al., arXiv:1706.06083,
ℓ∞ on coordinates). :func:`corruption_accuracy` evaluates any model on the corruption
suites (shapes: X (B, N, 3), y (B,)). No guarantee is claimed: this is a training recipe,
compared empirically by :func:`compare_training`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core.validation import check_positive
from certkit.pointcloud.models import build_model, predict, train


def saliency(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient-norm point saliency (B, N) of ``model`` for clouds x (B, N, 3), labels y (B,)."""
    was = model.training
    model.eval()
    xr = x.detach().clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xr), y)
    (g,) = torch.autograd.grad(loss, xr)
    model.train(was)
    return g.norm(dim=-1)


def critical_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, frac: float) -> torch.Tensor:
    """Boolean (B, N): the top ``frac`` most salient points of each cloud."""
    s = saliency(model, x, y)
    k = max(1, round(frac * x.shape[1]))
    idx = s.topk(k, dim=1).indices
    m = torch.zeros_like(s, dtype=torch.bool)
    m.scatter_(1, idx, True)
    return m

#: Reptile task family of :func:`meta_teacher` (names; see :func:`task_perturb`).
META_TASKS: tuple[str, ...] = ("clean", "jitter", "dropout", "cluster_drop", "scale")


def task_perturb(
    xb: torch.Tensor, task: str, g: torch.Generator, strength: float = 1.0
) -> torch.Tensor:
    """One batch (B, N, 3) under a meta-learning task, at a random level up to ``strength``.

    ``jitter``: Gaussian noise σ ~ U(0, 0.04·strength); ``dropout``: each point dropped with
    p ~ U(0, 0.5·strength); ``cluster_drop``: the points nearest a random point (a fraction
    U(0, 0.3·strength)) dropped; ``scale``: per-axis scale U(1 ± 0.2·strength). A dropped point
    becomes a copy of a random kept point of the same cloud (N stays fixed).
    """
    B, N, _ = xb.shape
    u = float(torch.rand((), generator=g)) * strength
    if task == "clean":
        return xb
    if task == "jitter":
        return xb + 0.04 * u * torch.randn(xb.shape, generator=g)
    if task == "scale":
        s = 1 + 0.2 * u * (2 * torch.rand(B, 1, 3, generator=g) - 1)
        return xb * s
    if task == "dropout":
        drop = torch.rand(B, N, generator=g) < 0.5 * u
    elif task == "cluster_drop":
        c = xb[torch.arange(B), torch.randint(N, (B,), generator=g)]  # (B, 3)
        d = (xb - c[:, None]).norm(dim=-1)
        k = round(0.3 * u * N)
        drop = torch.zeros(B, N, dtype=torch.bool)
        if k > 0:
            drop.scatter_(1, d.topk(k, dim=1, largest=False).indices, True)
    else:
        raise ValueError(f"task: expected one of {META_TASKS}, got {task!r}")
    drop[:, 0] &= drop[:, 1:].all(1).logical_not()  # never drop every point
    return _replace_dropped(xb, drop, g)


def _replace_dropped(xb: torch.Tensor, drop: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each dropped point (mask (B, N)) becomes a copy of a random kept point of its cloud."""
    if not drop.any():
        return xb
    B, N, _ = xb.shape
    score = torch.rand(B, N, generator=g) + (~drop).float() * 2
    keep_idx = score.argsort(dim=1, descending=True)
    n_keep = (~drop).sum(1, keepdim=True).clamp_min(1)
    pick = (torch.rand(B, N, generator=g) * n_keep).long()
    src = torch.gather(keep_idx, 1, pick)
    rep = torch.gather(xb, 1, src[..., None].expand(B, N, 3))
    return torch.where(drop[..., None], rep, xb)


def meta_teacher(
    model: nn.Module,
    X: Any,
    y: Any,
    *,
    meta_steps: int = 40,
    inner_steps: int = 3,
    inner_lr: float = 1e-3,
    meta_lr: float = 0.5,
    batch_size: int = 32,
    tasks: Sequence[str] = META_TASKS,
    seed: int = 0,
) -> nn.Module:
    """INTACT's meta-learning phase (our reading, see the module docstring): Reptile.

    Returns a new teacher (``model`` is not modified). Per meta-step: sample a task of
    ``tasks`` and ``inner_steps`` batches of X (B, N, 3) / y (B,), adapt a copy with Adam
    (``inner_lr``) on the task-perturbed batches, then move every parameter and BatchNorm
    running statistic by ``meta_lr`` (linearly decayed to 0) towards the adapted copy:
    ``θ ← θ + ε (θ' − θ)``.
    """
    from certkit.core.validation import check_int

    meta_steps = check_int(meta_steps, "meta_steps", minimum=1)
    inner_steps = check_int(inner_steps, "inner_steps", minimum=1)
    check_positive(inner_lr, "inner_lr")
    check_positive(meta_lr, "meta_lr")
    for t in tasks:
        if t not in META_TASKS:
            raise ValueError(f"tasks: unknown task {t!r}; expected some of {META_TASKS}")
    if not tasks:
        raise ValueError("tasks: expected at least one task")
    g = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    teacher = copy.deepcopy(model)
    for it in range(meta_steps):
        task = tasks[int(torch.randint(len(tasks), (), generator=g))]
        fast = copy.deepcopy(teacher)
        fast.train()
        opt = torch.optim.Adam(fast.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            b = torch.randperm(len(Xt), generator=g)[:batch_size]
            if len(b) < 2:
                b = torch.arange(min(2, len(Xt)))
            xb = task_perturb(Xt[b], task, g)
            loss = nn.functional.cross_entropy(fast(xb), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        eps = meta_lr * (1 - it / meta_steps)
        with torch.no_grad():
            slow_state = teacher.state_dict()
            for name, v in fast.state_dict().items():
                w = slow_state[name]
                if w.is_floating_point():
                    w.add_(eps * (v - w))
                else:
                    w.copy_(v)
    return teacher.eval()


def curriculum_transform(
    teacher: nn.Module,
    *,
    critical_frac: float = 0.2,
    max_sigma: float = 0.04,
    max_drop: float = 0.6,
    seed: int = 0,
) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """The batch hook for :func:`certkit.pointcloud.models.train` (see module docstring)."""
    check_positive(critical_frac, "critical_frac")
    g = torch.Generator().manual_seed(seed)
    teacher.eval()

    def hook(xb: torch.Tensor, yb: torch.Tensor, t: float) -> torch.Tensor:
        crit = critical_mask(teacher, xb, yb, critical_frac)
        noise = torch.randn(xb.shape, generator=g) * (t * max_sigma)
        out = xb + noise * crit[..., None]
        drop = crit & (torch.rand(crit.shape, generator=g) < t * max_drop)
        out = _replace_dropped(out, drop, g)
        return out.detach()

    return hook


def pgd_transform(
    model: nn.Module, *, eps: float = 0.02, steps: int = 3
) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """The batch hook for PGD adversarial training (ℓ∞ eps on coordinates, random start)."""

    def hook(xb: torch.Tensor, yb: torch.Tensor, t: float) -> torch.Tensor:
        model.eval()
        d = (torch.rand_like(xb) * 2 - 1) * eps
        for _ in range(steps):
            d.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xb + d), yb)
            (gr,) = torch.autograd.grad(loss, d)
            d = (d.detach() + 2.5 * eps / steps * gr.sign()).clamp(-eps, eps)
        return (xb + d).detach()

    return hook


def train_variant(
    kind: str,
    X: Any,
    y: Any,
    num_classes: int,
    *,
    arch: str = "pointnet",
    teacher: nn.Module | None = None,
    epochs: int = 10,
    seed: int = 0,
    **kw: Any,
) -> nn.Module:
    """Train ``kind`` in {"plain", "adversarial", "intact"} (intact needs a ``teacher``)."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes)
    if kind == "plain":
        hook = None
    elif kind == "adversarial":
        hook = pgd_transform(model, **kw)
    elif kind == "intact":
        if teacher is None:
            raise ValueError("teacher: INTACT needs a trained teacher model")
        hook = curriculum_transform(teacher, seed=seed, **kw)
    else:
        raise ValueError(f"kind: expected 'plain', 'adversarial' or 'intact', got {kind!r}")
    return train(model, X, y, epochs=epochs, batch_size=32, lr=2e-3, seed=seed, transform=hook)


def predict_ragged(model: nn.Module, clouds: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Predictions for clouds of varying sizes (grouped by size for batching)."""
    out = np.empty(len(clouds), np.int64)
    sizes: dict[int, list[int]] = {}
    for i, c in enumerate(clouds):
        sizes.setdefault(len(c), []).append(i)
    for _, idx in sizes.items():
        out[idx] = predict(model, np.stack([np.asarray(clouds[i], np.float32) for i in idx]))
    return out


def corruption_accuracy(
    model: nn.Module | Sequence[nn.Module],
    X: Any,
    y: Any,
    corrupt_fn: Callable[..., Any],
    names: Sequence[str],
    severities: Sequence[int],
    *,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """Accuracy (len(names), len(severities)) under ``corrupt_fn(x, name, severity, seed=,
    index=)`` applied to every cloud of X; a list of models gives (M, names, severities),
    each corrupted cloud generated once and shared by every model."""
    models = [model] if isinstance(model, nn.Module) else list(model)
    ya = np.asarray(y)
    acc = np.zeros((len(models), len(names), len(severities)))
    for a, name in enumerate(names):
        for b, s in enumerate(severities):
            cl = [corrupt_fn(x, name, s, seed=seed, index=i) for i, x in enumerate(np.asarray(X))]
            for j, m in enumerate(models):
                acc[j, a, b] = float((predict_ragged(m, cl) == ya).mean())
    return acc[0] if isinstance(model, nn.Module) else acc


def compare_training(
    *,
    n_train: int = 400,
    n_points: int = 256,
    epochs: int = 10,
    n_eval: int = 100,
    severities: Sequence[int] = (1, 3, 5),
    pgd_eps: float = 0.05,
    seed: int = 0,
    meta_steps: int = 40,
    ablation: bool = False,
) -> dict[str, dict[str, float]]:
    """Plain vs PGD-adversarial vs INTACT training on the embedded dataset.

    The plain model is the CE baseline and the starting point of INTACT's meta-learned
    teacher (:func:`meta_teacher`, ``meta_steps`` Reptile steps; 0 uses the plain model as
    the teacher). ``ablation`` adds "intact_plain_teacher" (the curriculum with the plain
    model as teacher). Per variant: clean accuracy, mCE / mRR on ModelNet40-C
    (``severities``) and Robo3D (all 3, objects seen from 10 m), and accuracy under ℓ∞ PGD
    (``pgd_eps``, 10 steps).
    """
    from certkit.pointcloud import lidar_corruptions as lc
    from certkit.pointcloud.corruptions import CORRUPTIONS, corrupt
    from certkit.pointcloud.data import CLASSES, make_shapes
    from certkit.pointcloud.pgd import pgd_attack

    X, y = make_shapes(n_train, n_points, seed=seed, split="train")
    Xt, yt = make_shapes(n_eval, n_points, seed=seed, split="test")
    C = len(CLASSES)
    plain = train_variant("plain", X, y, C, epochs=epochs, seed=seed)
    teacher = meta_teacher(plain, X, y, meta_steps=meta_steps, seed=seed) if meta_steps else plain
    models = {
        "plain": plain,
        "adversarial": train_variant("adversarial", X, y, C, epochs=epochs, seed=seed),
        "intact": train_variant("intact", X, y, C, teacher=teacher, epochs=epochs, seed=seed),
    }
    if ablation and meta_steps:
        models["intact_plain_teacher"] = train_variant(
            "intact", X, y, C, teacher=plain, epochs=epochs, seed=seed
        )
    ms = list(models.values())
    a40 = corruption_accuracy(ms, Xt, yt, corrupt, list(CORRUPTIONS), severities, seed=seed)
    alid = corruption_accuracy(ms, Xt, yt, lc.corrupt_object, list(lc.LIDAR_CORRUPTIONS),
                               lc.LIDAR_SEVERITIES, seed=seed)
    out: dict[str, dict[str, float]] = {}
    for j, (name, m) in enumerate(models.items()):
        clean = float((predict(m, Xt) == yt).mean())
        adv = pgd_attack(m, Xt, yt, eps=pgd_eps, steps=10, seed=seed)
        out[name] = {
            "clean": clean,
            "mCE_modelnet40c": lc.mce(a40[j], a40[0]),
            "mRR_modelnet40c": lc.mrr(a40[j], max(clean, 1e-9)),
            "mean_acc_modelnet40c": float(a40[j].mean()),
            "mCE_robo3d": lc.mce(alid[j], alid[0]),
            "mRR_robo3d": lc.mrr(alid[j], max(clean, 1e-9)),
            "mean_acc_robo3d": float(alid[j].mean()),
            "pgd_accuracy": float(1 - adv.success.mean()),
        }
    return out


__all__ = [
    "META_TASKS",
    "compare_training",
    "corruption_accuracy",
    "critical_mask",
    "curriculum_transform",
    "meta_teacher",
    "pgd_transform",
    "predict_ragged",
    "saliency",
    "task_perturb",
    "train_variant",
]
