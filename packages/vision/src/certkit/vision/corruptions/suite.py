"""A common-corruption suite in the style of ImageNet-C / MedMNIST-C, in torch.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", arXiv:1903.12261 (the corruption families, five severities, corruption
error CE and mCE); Di Salvo et al., "MedMNIST-C" (2024) for the small-image setting.
Every corruption maps x (B, C, H, W) in [0, 1] to the same shape in [0, 1]. Severity
parameters follow ImageNet-C's shapes, rescaled by us for 8×8–64×64 images (blur radii
and fog scales are in pixels of *your* image, so they are milder than ImageNet-C's);
random ones take a ``seed`` and are deterministic given it.

Families: noise (gaussian, shot, impulse, speckle), blur (gaussian, defocus, motion),
weather-like (fog, brightness, snow), digital (contrast, jpeg, pixelate).

JPEG is the baseline codec's lossy part, exactly: 8×8 block DCT-II of (255·x − 128),
division by the standard luminance table scaled by quality (IJG formula), rounding, and the
inverse. Entropy coding is lossless and skipped. Every channel uses the luminance table
(no YCbCr conversion or chroma subsampling for RGB input — a simplification).

Metrics: for model f and corruption c, E_{s,c} is the top-1 error at severity s;
CE_c = Σ_s E_{s,c}(f) / Σ_s E_{s,c}(baseline); mCE = mean_c CE_c; relative
CE_c = Σ_s (E_{s,c}(f) − E_clean(f)) / Σ_s (E_{s,c}(base) − E_clean(base)). No certificate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from certkit.core.validation import check_int
from certkit.vision.attacks._common import check_inputs, check_labels, eval_mode, predict

Corruption = Callable[[torch.Tensor, int, int], torch.Tensor]


def _gen(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(int(seed))


def _sev(params: Sequence[float], severity: int) -> float:
    return float(params[severity - 1])


def _conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D convolution with replicate padding; kernel (kh, kw), sums to 1."""
    c = x.shape[1]
    kh, kw = kernel.shape
    k = kernel.to(x).expand(c, 1, kh, kw)
    ph, pw = kh // 2, kw // 2
    xp = F.pad(x, (pw, kw - 1 - pw, ph, kh - 1 - ph), mode="replicate")
    return F.conv2d(xp, k, groups=c)


# ---------------------------------------------------------------- noise

def gaussian_noise(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    s = _sev([0.08, 0.12, 0.18, 0.26, 0.38], severity)
    return (x + s * torch.randn(x.shape, generator=_gen(x, seed), device=x.device,
                                dtype=x.dtype)).clamp(0, 1)


def shot_noise(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    lam = _sev([60, 25, 12, 5, 3], severity)
    return (torch.poisson(x * lam, generator=_gen(x, seed)) / lam).clamp(0, 1)


def impulse_noise(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    amount = _sev([0.03, 0.06, 0.09, 0.17, 0.27], severity)
    g = _gen(x, seed)
    u = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
    salt = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) < 0.5
    out = torch.where(u < amount, salt.to(x.dtype), x)
    return out


def speckle_noise(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    s = _sev([0.15, 0.2, 0.35, 0.45, 0.6], severity)
    n = torch.randn(x.shape, generator=_gen(x, seed), device=x.device, dtype=x.dtype)
    return (x + x * s * n).clamp(0, 1)


# ---------------------------------------------------------------- blur

def _gauss_kernel(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    return (k[:, None] * k[None, :]).float()


def gaussian_blur(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    return _conv_same(x, _gauss_kernel(_sev([0.4, 0.6, 0.8, 1.0, 1.3], severity))).clamp(0, 1)


def defocus_blur(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    """Disk kernel (anti-aliased by 4×4 supersampling)."""
    radius = _sev([0.8, 1.0, 1.3, 1.6, 2.0], severity)
    r = math.ceil(radius)
    sub = (torch.arange(4, dtype=torch.float64) + 0.5) / 4 - 0.5
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    yy = (t[:, None, None, None] + sub[None, None, :, None])
    xx = (t[None, :, None, None] + sub[None, None, None, :])
    k = ((yy ** 2 + xx ** 2) <= radius ** 2).double().mean((2, 3))
    return _conv_same(x, (k / k.sum()).float()).clamp(0, 1)


def motion_blur(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    """A line kernel of the given length at a random angle (one angle per call): 64 points
    evenly spaced on the segment, each deposited on its nearest pixel."""
    length = _sev([2.0, 2.5, 3.0, 3.5, 4.5], severity)
    g = torch.Generator().manual_seed(int(seed))
    ang = float(torch.rand((), generator=g)) * math.pi
    r = math.ceil(length / 2)
    t = torch.linspace(-length / 2, length / 2, 64, dtype=torch.float64)
    rows = torch.round(t * math.sin(ang)).long() + r
    cols = torch.round(t * math.cos(ang)).long() + r
    k = torch.zeros(2 * r + 1, 2 * r + 1, dtype=torch.float64)
    k.index_put_((rows, cols), torch.ones_like(t), accumulate=True)
    return _conv_same(x, (k / k.sum()).float()).clamp(0, 1)


# ---------------------------------------------------------------- weather-like

def fog(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    """Adds a smooth random haze (bilinearly upsampled coarse noise) and lowers contrast."""
    a = _sev([0.15, 0.25, 0.35, 0.45, 0.6], severity)
    b, _, h, w = x.shape
    coarse = torch.rand((b, 1, max(2, h // 4), max(2, w // 4)), generator=_gen(x, seed),
                        device=x.device, dtype=x.dtype)
    haze = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    mx = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + a * haze) * mx / (mx + a)).clamp(0, 1)


def brightness(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    return (x + _sev([0.1, 0.2, 0.3, 0.4, 0.5], severity)).clamp(0, 1)


def snow(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    """Sparse bright flakes smeared by a short vertical blur, over a slightly whitened image."""
    density = _sev([0.04, 0.07, 0.1, 0.14, 0.2], severity)
    b, _, h, w = x.shape
    flakes = (torch.rand((b, 1, h, w), generator=_gen(x, seed), device=x.device,
                         dtype=x.dtype) < density).to(x.dtype)
    kern = torch.tensor([[0.25], [0.5], [0.25]])
    flakes = _conv_same(flakes, kern) * 2
    base = 0.85 * x + 0.15 * density * 3
    return torch.maximum(base, flakes.clamp(0, 1).expand_as(x)).clamp(0, 1)


# ---------------------------------------------------------------- digital

def contrast(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    c = _sev([0.75, 0.5, 0.4, 0.3, 0.15], severity)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * c + m).clamp(0, 1)


def pixelate(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    f = _sev([0.8, 0.7, 0.6, 0.5, 0.4], severity)
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest").clamp(0, 1)


_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=torch.float64)


def jpeg_table(quality: int) -> torch.Tensor:
    """The IJG-scaled luminance quantisation table (8, 8) for quality 1..100."""
    q = check_int(quality, "quality", minimum=1)
    if q > 100:
        raise ValueError(f"quality: expected 1..100, got {q}")
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return torch.floor((_JPEG_LUMA * scale + 50) / 100).clamp(1, 255)


def dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n, n): coefficients = D @ block @ Dᵀ."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def jpeg_quality(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip (lossy part) at the given quality. x: (B, C, H, W) in [0, 1]."""
    table = jpeg_table(quality)
    b, c, h, w = x.shape
    ph, pw = (-h) % 8, (-w) % 8
    xp = F.pad(x.double(), (0, pw, 0, ph), mode="replicate") if (ph or pw) else x.double()
    hh, ww = xp.shape[-2:]
    blocks = (xp * 255 - 128).view(b, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)
    d = dct_matrix().to(xp.device)
    coef = d @ blocks @ d.T
    tab = table.to(xp.device)
    coef = torch.round(coef / tab) * tab
    rec = (d.T @ coef @ d).transpose(3, 4).reshape(b, c, hh, ww)
    rec = torch.round(rec + 128).clamp(0, 255) / 255
    return rec[..., :h, :w].to(x.dtype)


def jpeg(x: torch.Tensor, severity: int = 1, seed: int = 0) -> torch.Tensor:
    return jpeg_quality(x, int(_sev([25, 18, 15, 10, 7], severity)))


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise,
    "impulse_noise": impulse_noise, "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur, "defocus_blur": defocus_blur, "motion_blur": motion_blur,
    "fog": fog, "brightness": brightness, "snow": snow,
    "contrast": contrast, "jpeg": jpeg, "pixelate": pixelate,
}
FAMILIES = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"],
    "blur": ["gaussian_blur", "defocus_blur", "motion_blur"],
    "weather": ["fog", "brightness", "snow"],
    "digital": ["contrast", "jpeg", "pixelate"],
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5). x: (B, C, H, W) in [0, 1]."""
    if name not in CORRUPTIONS:
        raise ValueError(f"name: unknown corruption {name!r}; expected one of {sorted(CORRUPTIONS)}")
    severity = check_int(severity, "severity", minimum=1)
    if severity > 5:
        raise ValueError(f"severity: expected 1..5, got {severity}")
    x = check_inputs(x, (0.0, 1.0))
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, C, H, W), got {tuple(x.shape)}")
    return CORRUPTIONS[name](x, severity, seed)


def corruption_errors(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor, names: Sequence[str] | None = None, seed: int = 0
                      ) -> dict[str, list[float]]:
    """Top-1 error per corruption and severity: {name: [E_1, ..., E_5]}, plus
    ``"clean": [E_clean]``. x: (N, C, H, W) in [0, 1]; y: (N,)."""
    x = check_inputs(x, (0.0, 1.0))
    y = check_labels(y, x.shape[0])
    names = list(CORRUPTIONS) if names is None else list(names)
    out: dict[str, list[float]] = {}
    with eval_mode(model):
        out["clean"] = [float((predict(model, x) != y).float().mean())]
        for i, name in enumerate(names):
            out[name] = [float((predict(model, corrupt(x, name, s, seed + 7919 * i + s)) != y)
                               .float().mean()) for s in range(1, 6)]
    return out


def mce(errors: dict[str, list[float]], baseline: dict[str, list[float]],
        relative: bool = False) -> tuple[float, dict[str, float]]:
    """(mCE, {name: CE_c}) of ``errors`` against ``baseline`` (both from
    :func:`corruption_errors`); ``relative`` subtracts each model's clean error."""
    ces: dict[str, float] = {}
    for name, e in errors.items():
        if name == "clean":
            continue
        if name not in baseline:
            raise ValueError(f"baseline: has no errors for corruption {name!r}")
        eb = baseline[name]
        if relative:
            num = sum(v - errors["clean"][0] for v in e)
            den = sum(v - baseline["clean"][0] for v in eb)
        else:
            num, den = sum(e), sum(eb)
        ces[name] = num / den if den > 0 else float("nan")
    vals = [v for v in ces.values() if not math.isnan(v)]
    return (sum(vals) / len(vals) if vals else float("nan")), ces


__all__ = ["CORRUPTIONS", "FAMILIES", "corrupt", "corruption_errors", "dct_matrix", "jpeg_quality",
           "jpeg_table", "mce"]
