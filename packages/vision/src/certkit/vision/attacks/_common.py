"""Shared plumbing of the attacks: argument checks, the eval-mode guard, losses and the
ℓ∞ / ℓ2 geometry (steps, projections, random starts).

Conventions (every attack in :mod:`certkit.vision.attacks`):

- ``model``: any ``torch.nn.Module`` (or callable) mapping x of shape (B, C, H, W) (any
  shape (B, ...) works) to logits (B, K).
- ``x``: float tensor (B, ...) inside the declared box ``bounds=(lo, hi)`` (default [0, 1]).
- ``y``: int64 labels (B,) in [0, K); with ``targeted=True`` they are the *target* labels
  (torchattacks' convention); ``target=t`` instead keeps y as the true labels and attacks
  towards t. Either way a targeted attack succeeds when the prediction equals the target.
- ``norm``: 'linf' / 'l2', also spelled 'Linf' / 'L2' (torchattacks), 'inf', ``math.inf``
  or 2; ``eps``: a number, a 0-d tensor or a per-example (B,) tensor of radii.
- ``restarts`` (alias ``n_restarts``); ``mean`` / ``std``: per-channel normalisation the
  model expects (torchattacks' ``set_normalization_used``): the attack works in the
  unnormalised box and feeds the model (x - mean) / std.
- Attacks never touch parameter gradients (they differentiate with respect to the input
  only, through ``torch.autograd.grad``), run on whatever device ``x`` lives on, and
  return adversarial inputs of the same shape, dtype and device as ``x``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.validation import check_finite_scalar, check_int, check_positive

Model = Callable[[torch.Tensor], torch.Tensor]
NORMS = ("linf", "l2")


class TrainModeWarning(UserWarning):
    """The model was in train mode; the attack switched it to eval and restored it after."""


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run the body with ``model`` in eval mode; warn if it was in train mode and restore
    the original mode afterwards (also on error)."""
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:
        warnings.warn("model: was in train mode (dropout/batch-norm would make the attack "
                      "see a different function); switched to eval for the attack and "
                      "restored after", TrainModeWarning, stacklevel=3)
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train(True)


def check_bounds(bounds: Any) -> tuple[float, float]:
    if not isinstance(bounds, tuple | list) or len(bounds) != 2:
        raise TypeError(f"bounds: expected a (low, high) pair, got {bounds!r}")
    lo = check_finite_scalar(bounds[0], "bounds[0]")
    hi = check_finite_scalar(bounds[1], "bounds[1]")
    if not lo < hi:
        raise ValueError(f"bounds: expected low < high, got {bounds!r}")
    return lo, hi


def check_inputs(x: Any, bounds: tuple[float, float], name: str = "x") -> torch.Tensor:
    """A floating tensor (B, ...) with B >= 1, finite, inside ``bounds`` (tolerance 1e-6)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating tensor, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (B, ...) with B >= 1, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    lo, hi = bounds
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < lo - 1e-6 or xmax > hi + 1e-6:
        raise ValueError(f"{name}: values in [{xmin:.4g}, {xmax:.4g}] lie outside the declared "
                         f"bounds [{lo:g}, {hi:g}] (pass bounds=(low, high) if your model "
                         "takes another range)")
    return x.detach()


def check_labels(y: Any, batch: int, num_classes: int | None = None,
                 name: str = "y") -> torch.Tensor:
    """Integer labels (B,) in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(y).__name__}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name}: expected an integer tensor, got dtype {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},), got {tuple(y.shape)}")
    if num_classes is not None and batch:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got values in "
                             f"[{lo}, {hi}]")
    return y.long()


_NORM_SPELLINGS = {"linf": "linf", "inf": "linf", "l_inf": "linf", "l2": "l2", "2": "l2"}


def check_norm(norm: Any) -> str:
    """The canonical norm name 'linf' or 'l2' from any common spelling (case-insensitive
    'linf' / 'Linf' / 'inf' / 'l2' / 'L2', or math.inf / 2)."""
    key: str | None = None
    if isinstance(norm, str):
        key = _NORM_SPELLINGS.get(norm.strip().lower())
    elif isinstance(norm, int | float) and not isinstance(norm, bool):
        key = "linf" if norm == math.inf else "l2" if norm == 2 else None
    if key is None:
        raise ValueError(f"norm: expected 'linf' or 'l2' (also 'Linf', 'L2', inf, 2), got {norm!r}")
    return key


def check_eps(eps: Any, norm: str, bounds: tuple[float, float], dim: int,
              name: str = "eps", batch: int | None = None) -> Any:
    """ε > 0 and no larger than the diameter of the box in that norm (beyond it the ball
    contains the whole box and ε means nothing). A number or 0-d tensor gives a float; with
    ``batch`` given, a (batch,) tensor of per-example radii is accepted and returned as is
    (:func:`eps_like` moves it to x's device and dtype)."""
    width = bounds[1] - bounds[0]
    cap = width if norm == "linf" else width * math.sqrt(dim)
    if isinstance(eps, torch.Tensor) and eps.ndim > 0:
        if batch is None or eps.shape != (batch,):
            want = f"a number or a ({batch},) tensor" if batch is not None else "a number or a 0-d tensor"
            raise ValueError(f"{name}: expected {want}, got a tensor of shape {tuple(eps.shape)}")
        if eps.is_complex() or not bool(torch.isfinite(eps).all()) or not bool((eps > 0).all()):
            raise ValueError(f"{name}: expected finite values > 0")
        if float(eps.max()) > cap + 1e-12:
            raise ValueError(f"{name}: {float(eps.max()):g} is out of range for norm {norm!r} on the box "
                             f"[{bounds[0]:g}, {bounds[1]:g}]^{dim} (at most {cap:g})")
        return eps.detach()
    e = check_positive(float(eps) if isinstance(eps, torch.Tensor) else eps, name)
    if e > cap + 1e-12:
        raise ValueError(f"{name}: {e:g} is out of range for norm {norm!r} on the box "
                         f"[{bounds[0]:g}, {bounds[1]:g}]^{dim} (at most {cap:g})")
    return e


def eps_like(eps: Any, x: torch.Tensor) -> Any:
    """A per-example ε tensor on x's device and dtype, shaped (B, 1, ..., 1); floats pass through."""
    if isinstance(eps, torch.Tensor):
        return eps.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return eps


def eps_rows(eps: Any, idx: torch.Tensor) -> Any:
    """The radii of the examples ``idx`` (a float passes through)."""
    return eps[idx.to(eps.device)] if isinstance(eps, torch.Tensor) else eps


def check_restarts(restarts: Any, n_restarts: Any) -> int:
    """``restarts`` and its torchattacks spelling ``n_restarts`` (give one, or equal values)."""
    if n_restarts is None:
        return check_int(restarts, "restarts", minimum=1)
    n = check_int(n_restarts, "n_restarts", minimum=1)
    if restarts not in (1, n):
        raise ValueError(f"restarts: given as restarts={restarts!r} and n_restarts={n_restarts!r}; pass one")
    return n


def check_targeting(targeted: Any, target: Any) -> None:
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted: expected a bool, got {type(targeted).__name__}")
    if targeted and target is not None:
        raise ValueError("targeted, target: targeted=True means y holds the targets; to keep y as the "
                         "true labels pass target=... alone")


def normalized(model: Model, mean: Any, std: Any, x: torch.Tensor) -> Model:
    """``model`` fed (x - mean) / std per channel (dim 1 of x), or ``model`` itself when both
    are None. mean, std: sequences or tensors of length C = x.shape[1]; std > 0."""
    if mean is None and std is None:
        return model
    if x.ndim < 2:
        raise ValueError("mean, std: per-channel normalisation needs x of shape (B, C, ...)")
    c = x.shape[1]

    def vec(v: Any, name: str, default: float) -> torch.Tensor:
        t = torch.as_tensor(default if v is None else v, dtype=x.dtype, device=x.device).flatten()
        if t.numel() == 1:
            t = t.expand(c)
        if t.numel() != c or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: expected {c} finite per-channel values, got {v!r}")
        return t.reshape(1, c, *([1] * (x.ndim - 2)))

    m, sd = vec(mean, "mean", 0.0), vec(std, "std", 1.0)
    if not bool((sd > 0).all()):
        raise ValueError(f"std: expected values > 0, got {std!r}")

    def f(v: torch.Tensor) -> torch.Tensor:
        return model((v - m) / sd)

    return f


def check_steps(steps: Any, name: str = "steps") -> int:
    return check_int(steps, name, minimum=1)


def first_logits(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Clean logits (B, K), checked for shape."""
    with torch.no_grad():
        z = model(x)
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != x.shape[0]:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"model: expected logits of shape ({x.shape[0]}, K), got {shape}")
    return z


# ---------------------------------------------------------------- losses (per example)

def margin_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{i≠y} z_i − z_y, shape (B,): > 0 iff misclassified (the CW f₆ objective)."""
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    return other - zy


def dlr_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, arXiv:2003.01690), shape (B,):
    −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12), π the logits sorted descending.
    Invariant to shifting and rescaling the logits (so defensive distillation's
    temperature does not blunt it). Needs K >= 3."""
    zs = z.sort(dim=1, descending=True).values
    return margin_loss(z, y) / (zs[:, 0] - zs[:, 2] + 1e-12)


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example loss (B,) to *maximise* for an untargeted attack."""
    if name == "ce":
        return lambda z, y: F.cross_entropy(z, y, reduction="none")
    if name in ("cw", "margin"):
        return margin_loss
    if name == "dlr":
        return dlr_loss
    raise ValueError(f"loss: expected 'ce', 'cw' or 'dlr', got {name!r}")


# ---------------------------------------------------------------- geometry

def _flat_norm(v: torch.Tensor) -> torch.Tensor:
    """ℓ2 norm per example, shaped (B, 1, ..., 1) for broadcasting."""
    n = v.flatten(1).norm(dim=1)
    return n.view(-1, *([1] * (v.ndim - 1)))


def ascent_direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step for the norm: sign(g) (ℓ∞) or g/‖g‖₂ (ℓ2)."""
    if norm == "linf":
        return g.sign()
    return g / _flat_norm(g).clamp_min(1e-12)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor, norm: str,
            lo: float, hi: float) -> torch.Tensor:
    """Project onto the ε-ball around x intersected with the box [lo, hi].

    For ℓ∞ this is the exact Euclidean projection; for ℓ2 we scale into the ball, then clip
    to the box: the result lies in both sets (clipping only moves coordinates towards x,
    whose coordinates are in the box, so the ℓ2 distance cannot grow)."""
    d = x_adv - x
    e = eps_like(eps, x)
    if norm == "linf":
        d = torch.maximum(torch.minimum(d, e), -e) if isinstance(e, torch.Tensor) else d.clamp(-e, e)
    else:
        d = d * torch.clamp(e / _flat_norm(d).clamp_min(1e-12), max=1.0)
    return (x + d).clamp(lo, hi)


def random_start(x: torch.Tensor, eps: float | torch.Tensor, norm: str, lo: float, hi: float,
                 gen: torch.Generator) -> torch.Tensor:
    """A uniform draw from the ε-ball (ℓ∞: uniform cube; ℓ2: uniform ball), clipped to the box.
    eps: a float or per-example radii (B,)."""
    e = eps_like(eps, x)
    if norm == "linf":
        d = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * e
    else:
        g = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        dim = x[0].numel()
        u = torch.rand((x.shape[0],), generator=gen, device=x.device, dtype=x.dtype)
        r = e * u.pow(1.0 / dim).view(-1, *([1] * (x.ndim - 1)))
        d = g / _flat_norm(g).clamp_min(1e-12) * r
    return (x + d).clamp(lo, hi)


def make_generator(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(int(seed))


def distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example distance (B,) in the given norm."""
    d = (x_adv - x).flatten(1)
    return d.abs().amax(1) if check_norm(norm) == "linf" else d.norm(dim=1)


@torch.no_grad()
def predict(model: Model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """argmax predictions (B,), batched."""
    out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out)


def robust_accuracy(model: Model, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of adversarial inputs (B, ...) still classified as y (B,)."""
    with eval_mode(model):
        return float((predict(model, x_adv) == y).float().mean())
