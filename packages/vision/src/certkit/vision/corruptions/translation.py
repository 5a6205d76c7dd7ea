"""One-pixel realistic translations and Robust Inference by Crop Selection.

Seed: "Lost in Translation: Modern Neural Networks Still Struggle With Small Realistic
Image Transformations" (Shifman & Weiss, 2024; implemented from its abstract). A
*realistic* (non-cyclic) shift moves the camera: the classifier sees a window of a larger
scene, and a one-pixel shift moves that window by one pixel, so new scene content enters
at one border and content leaves at the other (no wrap-around). For the embedded digits we
build the scene by zero-padding (their background is black, so this is the true
surrounding scene).

Robust Inference by Crop Selection. The camera view is V = s + 2r pixels wide for a model
taking s × s inputs; among the n × n = (2r + 1)² candidate s × s crops of the view we pick
the one maximising a score that depends *only on the crop's pixels*, score(c) = ⟨c, T⟩
for a fixed template T (default: a centred Gaussian window, so the selector centres the
object's mass, plus a tiny fixed random term that breaks ties), and classify that crop.

Consistency guarantee (derived here; the paper proves its own version). Index candidate
crops by their position q in the scene. Views a and b (b = a shifted by one pixel) have
candidate sets S_a, S_b, and the score of position q is the same in both views because it
depends only on the scene pixels under q. (i) Deterministic: if the maximiser q* of the
score over S_a ∪ S_b is unique and lies in S_a ∩ S_b, both views select q*, i.e. the very
same pixels, so their predictions are identical — :func:`consistency_certificate` checks
this per input. (ii) Probabilistic: if the scores on S_a ∪ S_b are exchangeable and
distinct, the maximiser lies in the intersection with probability |S_a ∩ S_b| / |S_a ∪ S_b|,
which for an axis-aligned one-pixel shift is n(n − 1) / (n(n + 1)) = (n − 1)/(n + 1)
(:func:`consistency_lower_bound`): any desired consistency level by taking r large enough,
at the cost of classifying off-centre crops (the accuracy trade-off the paper reports).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from certkit.core.validation import check_int
from certkit.vision.attacks._common import check_inputs, eval_mode

AXIS_SHIFTS: tuple[tuple[int, int], ...] = ((0, 1), (0, -1), (1, 0), (-1, 0))


def pad_scene(x: torch.Tensor, pad: int, value: float = 0.0) -> torch.Tensor:
    """A scene (B, C, H + 2p, W + 2p) around x (B, C, H, W), filled with ``value``."""
    pad = check_int(pad, "pad", minimum=0)
    return F.pad(x, (pad, pad, pad, pad), value=value)


def view(scene: torch.Tensor, top: int, left: int, size: int | tuple[int, int]) -> torch.Tensor:
    """The camera window scene[..., top:top+h, left:left+w] (B, C, h, w), no wrap-around."""
    h, w = (size, size) if isinstance(size, int) else size
    hs, ws = scene.shape[-2:]
    if top < 0 or left < 0 or top + h > hs or left + w > ws:
        raise ValueError(f"view: window ({top}, {left}, {h}, {w}) leaves the scene {hs}×{ws}")
    return scene[..., top:top + h, left:left + w]


def cyclic_shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The (unrealistic) cyclic shift, for comparison."""
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def default_template(size: int, seed: int = 0) -> torch.Tensor:
    """Centred Gaussian window (σ = size/4) plus a 1e-3 fixed random tie-breaker; (size, size)."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    win = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * (size / 4) ** 2))
    g = torch.Generator().manual_seed(seed)
    return (win + 1e-3 * torch.rand((size, size), generator=g, dtype=torch.float64)).float()


class CropSelection(nn.Module):
    """Robust Inference by Crop Selection around ``model``.

    forward(view (B, C, s + 2r, s + 2r)) → logits (B, K) of the selected s × s crop.
    """

    def __init__(self, model: nn.Module, crop_size: int,
                 template: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.crop_size = check_int(crop_size, "crop_size", minimum=1)
        t = default_template(crop_size) if template is None else template.float()
        if t.shape != (crop_size, crop_size):
            raise ValueError(f"template: expected shape ({crop_size}, {crop_size}), "
                             f"got {tuple(t.shape)}")
        self.register_buffer("template", t)

    def scores(self, v: torch.Tensor) -> torch.Tensor:
        """Score of every candidate crop: (B, n, n), n = V − s + 1 (channels summed)."""
        s = self.crop_size
        if v.shape[-1] < s or v.shape[-2] < s:
            raise ValueError(f"view: expected spatial size >= {s}, got {tuple(v.shape[-2:])}")
        k = self.template.to(v)[None, None]
        return F.conv2d(v.sum(1, keepdim=True).double(), k.double())[:, 0]

    def select(self, v: torch.Tensor) -> torch.Tensor:
        """Offsets (B, 2) = (top, left) of the selected crop within the view."""
        sc = self.scores(v)
        n_w = sc.shape[-1]
        flat = sc.flatten(1).argmax(1)
        return torch.stack([flat // n_w, flat % n_w], 1)

    def crops(self, v: torch.Tensor) -> torch.Tensor:
        off = self.select(v)
        s = self.crop_size
        return torch.stack([v[i, :, int(t):int(t) + s, int(lf):int(lf) + s]
                            for i, (t, lf) in enumerate(off.tolist())])

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.model(self.crops(v))  # type: ignore[no-any-return]


def consistency_lower_bound(n: int) -> float:
    """(n − 1)/(n + 1): consistency under an axis-aligned 1-pixel shift for n × n candidates
    with exchangeable, distinct scores (module docstring, derived)."""
    n = check_int(n, "n", minimum=1)
    return (n - 1) / (n + 1)


def consistency_certificate(selector: CropSelection, scene: torch.Tensor, top: int, left: int,
                            view_size: int, shift: tuple[int, int]) -> torch.Tensor:
    """(B,) bool: True where the deterministic argument of the module docstring proves that
    the views at (top, left) and (top + dy, left + dx) select the same scene crop (hence give
    the same prediction): the best score over both candidate sets is unique and its
    position belongs to both."""
    dy, dx = shift
    s = selector.crop_size
    lo_t, lo_l = min(top, top + dy), min(left, left + dx)
    hi_t, hi_l = max(top, top + dy), max(left, left + dx)
    union = view(scene, lo_t, lo_l, (view_size + hi_t - lo_t, view_size + hi_l - lo_l))
    sc = selector.scores(union)                      # scene positions of the union
    n = view_size - s + 1
    b = sc.shape[0]
    flat = sc.flatten(1)
    top2 = flat.topk(min(2, flat.shape[1]), dim=1).values
    best = top2[:, 0]
    # unique with a float margin, so the views' own (separately computed) scores agree
    unique = (top2[:, 0] - top2[:, -1] > 1e-9 * (1 + best.abs())) | (flat.shape[1] == 1)
    arg = flat.argmax(1)
    r, c = arg // sc.shape[-1], arg % sc.shape[-1]
    # candidate positions of view a and b inside the union's score map
    ra, ca = top - lo_t, left - lo_l
    rb, cb = top + dy - lo_t, left + dx - lo_l
    in_a = (r >= ra) & (r < ra + n) & (c >= ca) & (c < ca + n)
    in_b = (r >= rb) & (r < rb + n) & (c >= cb) & (c < cb + n)
    return (unique & in_a & in_b).reshape(b)


def flip_rate(predict: Callable[[torch.Tensor], torch.Tensor], scene: torch.Tensor,
              view_size: int, shifts: Sequence[tuple[int, int]] = AXIS_SHIFTS,
              top: int | None = None, left: int | None = None) -> tuple[float, torch.Tensor]:
    """Fraction of inputs whose prediction changes under at least one of ``shifts``
    (realistic, non-cyclic); returns (rate, changed (B,) bool). predict: view → labels (B,).
    The base window is centred in the scene unless top/left are given."""
    hs, ws = scene.shape[-2:]
    top = (hs - view_size) // 2 if top is None else top
    left = (ws - view_size) // 2 if left is None else left
    base = predict(view(scene, top, left, view_size))
    changed = torch.zeros_like(base, dtype=torch.bool)
    for dy, dx in shifts:
        changed |= predict(view(scene, top + dy, left + dx, view_size)) != base
    return float(changed.float().mean()), changed


def translation_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, radius: int = 2,
                       template: torch.Tensor | None = None) -> dict[str, float]:
    """Digits-style evaluation: accuracy and 1-pixel flip rate of plain inference (centre
    crop) and of crop selection with n = 2·radius + 1 candidates per axis, plus the share of
    inputs certified consistent for all four axis shifts. x: (B, C, s, s) in [0, 1]."""
    x = check_inputs(x, (0.0, 1.0))
    radius = check_int(radius, "radius", minimum=1)
    s = x.shape[-1]
    vsz = s + 2 * radius
    scene = pad_scene(x, radius + 1)
    sel = CropSelection(model, s, template)
    with eval_mode(model), torch.no_grad():
        def plain(v: torch.Tensor) -> torch.Tensor:
            return model(v[..., radius:radius + s, radius:radius + s]).argmax(1)

        def robust(v: torch.Tensor) -> torch.Tensor:
            return sel(v).argmax(1)

        fr_plain, _ = flip_rate(plain, scene, vsz)
        fr_sel, _ = flip_rate(robust, scene, vsz)
        c0 = (scene.shape[-1] - vsz) // 2
        base = view(scene, c0, c0, vsz)
        acc_plain = float((plain(base) == y).float().mean())
        acc_sel = float((robust(base) == y).float().mean())
        cert = torch.ones(x.shape[0], dtype=torch.bool)
        for sh in AXIS_SHIFTS:
            cert &= consistency_certificate(sel, scene, c0, c0, vsz, sh)
    return {"acc_plain": acc_plain, "flip_plain": fr_plain, "acc_crop_selection": acc_sel,
            "flip_crop_selection": fr_sel, "certified_consistent": float(cert.float().mean()),
            "bound_exchangeable": consistency_lower_bound(2 * radius + 1)}


def shift_augment(x: torch.Tensor, y: torch.Tensor, radius: int, copies: int = 4,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Training augmentation: ``copies`` random realistic shifts in [−r, r]² of each image
    (zero scene), concatenated with the originals. Returns (x', y')."""
    g = torch.Generator().manual_seed(seed)
    scene = pad_scene(x, radius)
    s = x.shape[-1]
    xs, ys = [x], [y]
    for _ in range(copies):
        off = torch.randint(0, 2 * radius + 1, (x.shape[0], 2), generator=g)
        xs.append(torch.stack([scene[i, :, int(t):int(t) + s, int(lf):int(lf) + s]
                               for i, (t, lf) in enumerate(off.tolist())]))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


__all__ = ["AXIS_SHIFTS", "CropSelection", "consistency_certificate", "consistency_lower_bound",
           "cyclic_shift", "default_template", "flip_rate", "pad_scene", "shift_augment",
           "translation_report", "view"]
