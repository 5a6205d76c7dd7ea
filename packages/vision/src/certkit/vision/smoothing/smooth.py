"""Randomized smoothing: certified ℓ2 robustness of a Gaussian-smoothed classifier.

Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019, arXiv 1902.02918.

The smoothed classifier is g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ² I), with f any
``torch.nn.Module`` mapping (B, C, H, W) images to (B, K) logits. **Guarantee**
(Theorem 1 there): if p̲_A is a lower bound on P(f(x + ε) = c_A) with p̲_A > ½, then
g(x + δ) = c_A for every ‖δ‖₂ < R = σ Φ⁻¹(p̲_A). :meth:`Smooth.certify` returns such an
R that holds with probability ≥ 1 - α over the sampling noise (Clopper-Pearson bound on n
fresh samples after n0 selection samples, exactly as CERTIFY in the paper), and abstains
(-1) when p̲_A < ½. ``mode="sequential"`` replaces the fixed n with an anytime-valid
lower bound (Clopper-Pearson at fixed looks with α spent across them,
:mod:`certkit.vision.smoothing.looks`, or the mixture confidence sequence of
:mod:`certkit.vision.smoothing.sequential`) and stops as soon as the certificate is decided; the
1-α guarantee is unchanged.

**Pixel convention.** Noise is added in *input space*, in the units of ``x``: for
certkit's data sets pixels are in [0, 1] (no normalisation layer before the noise), so
σ = 0.25 and a radius of 0.5 are in [0, 1]-pixel ℓ2 units. If your model normalises
internally, keep that inside the module. Noisy images are not clipped (as in Cohen et al.).
Inputs outside [0, 1] give a :class:`~certkit.vision.data.checks.PixelRangeWarning` naming
the range found; before any sampling, one dry forward pass on one input checks that the
model accepts the inputs' shape and returns (1, num_classes) logits (else a one-line
``ValueError`` naming both).

**Noise keying.** Sample j of input i is row ``gaussian_rows`` of stream (seed, i) at
offset j·M (M = C·H·W pixels). Selection uses samples [0, n0), estimation samples
[n0, n0 + n). So a certificate depends only on (model, x, seed, idx, n0, n, α), never on
the batch size, on which inputs share a forward batch, on their order, or on how a run is
sharded across processes or resumed. (Bit-identical *predictions* additionally need a
forward pass whose per-row result does not depend on the batch composition, which holds
for the usual conv/linear/ReLU models in float64 and in practice in float32.)

**Counting** stays on the model's device: predictions become flat keys
(input, phase, class) accumulated with ``bincount`` (CPU) / ``index_add_`` (CUDA; CUDA's
bincount would synchronise to size its output). The host reads the counts once per group
of inputs (once per round in sequential mode).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from certkit.core import gaussian_rows, stats
from certkit.core.results import ResultLog
from certkit.core.validation import check_alpha, check_int, check_positive, check_seed, check_sigma
from certkit.vision.data.checks import PixelRangeWarning, check_model_input, check_pixel_range
from certkit.vision.smoothing.looks import grid_schedule
from certkit.vision.smoothing.sequential import (
    BetaBinomialCS,
    forecast_lower,
    next_total,
    stop_rule,
)

ABSTAIN = -1

__all__ = ["ABSTAIN", "Certificate", "Smooth", "certify_batch"]


@dataclass
class Certificate:
    """One input's certificate (also one JSON line of a :class:`~certkit.core.results.ResultLog`).

    prediction: the certified class or -1 (abstain). radius: ℓ2 radius (0 on abstain).
    p_lower: the lower confidence bound on p_A. count: estimation samples voting for the
    prediction candidate. n: estimation samples used; n0: selection samples; seconds: wall
    time (a group's time shared equally among its inputs). label/correct: when labels given.
    seed: the noise seed. p_lower_right/count_right: the right half's bound and count of a
    Dual RS certificate (:class:`~certkit.vision.smoothing.dual.DualSmooth`; omitted from
    rows otherwise).
    """

    idx: int
    prediction: int
    radius: float
    p_lower: float
    count: int
    n: int
    n0: int
    seconds: float
    sigma: float
    alpha: float
    mode: str = "cohen"
    p_upper: float | None = None
    label: int | None = None
    correct: bool | None = None
    seed: int | None = None
    p_lower_right: float | None = None
    count_right: int | None = None

    @property
    def forward_passes(self) -> int:
        return self.n + self.n0

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        for k in _DUAL_ONLY:
            if row[k] is None:
                del row[k]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Certificate:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in row.items() if k in names})


_DUAL_ONLY = ("p_lower_right", "count_right")


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class Smooth:
    """A Gaussian-smoothed classifier g around a base classifier f (Cohen et al. 2019).

    model: ``nn.Module`` (B, C, H, W) → (B, num_classes) logits; put in eval mode here.
    num_classes: K; the model's output width must match (checked on the first batch).
    sigma: the noise level σ > 0, in the units of x (see module docstring).
    device: where to run; default the model's device. Inputs on another device are moved.
    optimize: ``"auto"`` (default), True or False. Run the forward pass through
    ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference`` (frozen weights, fused
    conv/ReLU kernels; about 1.5-2× faster for small CNNs on CPU). The traced graph
    computes the same function up to float rounding, so the certificate is, strictly, for
    the smoothed *traced* model. ``"auto"`` uses it only when it is safe: on a CPU device,
    float32 parameters, no forward hooks, a forward that leaves every module's plain
    Python attributes unchanged (no side effects a trace would drop), a trace that raised
    no ``TracerWarning`` (a tensor turned into a Python value, i.e. data-dependent control
    flow that a trace would freeze), and outputs on the first real batch that match the
    eager model (same argmax on every row, logits within 1e-4 relative); otherwise it
    silently keeps the eager model (see :attr:`optimized`). ``True`` skips the device/dtype conditions and warns on fallback.
    """

    def __init__(self, model: nn.Module, num_classes: int, sigma: float, *,
                 device: str | torch.device | None = None, optimize: bool | str = "auto") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.sigma = check_sigma(sigma)
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.model = model.to(self.device).eval()
        self._checked = False
        self._range_warned = False
        self._input_shape: tuple[int, ...] | None = None
        self.forward_calls = 0
        if optimize not in (True, False, "auto"):
            raise ValueError(f"optimize: expected True, False or 'auto', got {optimize!r}")
        self.optimize: bool | str = optimize
        self._fast: Any = None
        #: whether the forward pass runs through the traced, optimised graph (set on the
        #: first forward batch; None before it)
        self.optimized: bool | None = None if optimize else False

    # ------------------------------------------------------------------ input checks
    def _inputs(self, xs: Any, *, single: bool) -> torch.Tensor:
        if isinstance(xs, np.ndarray):
            xs = torch.from_numpy(xs)
        if not isinstance(xs, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(xs).__name__}")
        if not xs.is_floating_point():
            raise TypeError(f"x: expected a floating-point tensor, got dtype {xs.dtype}")
        want = 3 if single else 4
        if xs.dim() != want:
            shape = "(C, H, W)" if single else "(B, C, H, W)"
            raise ValueError(f"x: expected shape {shape}, got {tuple(xs.shape)}")
        if not bool(torch.isfinite(xs).all()):
            raise ValueError("x: contains NaN or inf")
        want_dtype = next((q.dtype for q in self.model.parameters() if q.is_floating_point()), None)
        if want_dtype in (torch.float32, torch.float64):
            xs = xs.to(want_dtype)
        elif xs.dtype not in (torch.float32, torch.float64):
            xs = xs.float()
        xs = xs.unsqueeze(0) if single else xs
        return xs.to(self.device).contiguous()

    def _check_inputs(self, xs: torch.Tensor, name: str = "x") -> None:
        """Before any sampling: a range warning (at most once per Smooth; units are the
        user's) and one dry forward pass per input shape (see :mod:`certkit.vision.data.checks`)."""
        if not self._range_warned:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PixelRangeWarning)
                check_pixel_range(xs, name)
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=4)
            self._range_warned = bool(caught)
        if tuple(xs.shape[1:]) != self._input_shape:
            check_model_input(self.model, xs, self.num_classes, name=name)
            self._input_shape = tuple(xs.shape[1:])

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.optimize:
            return self.model(batch)
        if self._fast is None:
            self._fast, out = self._try_trace(batch)
            self.optimized = self._fast is not self.model
            return out
        return self._fast(batch)

    def _try_trace(self, batch: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """(forward callable, eager output on ``batch``): the optimised trace when the
        safety conditions of ``optimize`` hold, else the eager model."""
        auto = self.optimize == "auto"
        before = _python_state(self.model)
        eager = self.model(batch)
        if auto:
            dtypes = {p.dtype for p in self.model.parameters()}
            hooks = any(m._forward_hooks or m._forward_pre_hooks for m in self.model.modules())
            if self.device.type != "cpu" or dtypes - {torch.float32} or batch.dtype != torch.float32 \
                    or hooks or _python_state(self.model) != before:
                return self.model, eager
        reason = ""
        try:
            with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                traced = torch.jit.trace(self.model, batch, check_trace=False)
                fast = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                got = fast(batch)
                # a second batch, of another size and row order: a trace that baked in
                # values computed outside torch (numpy, .item()) or the batch size fails here
                other = torch.flip(batch[: max(1, batch.shape[0] // 2 + 1)], [0]) * 0.5
                got2, eager2 = fast(other), self.model(other)
            tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
            if tracer:
                reason = f"the trace is input-dependent ({tracer[0].message})"
            elif got.shape != eager.shape or not bool((got.argmax(-1) == eager.argmax(-1)).all()) or \
                    not bool(torch.allclose(got, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()) + 1e-6)):
                reason = "the traced model's outputs differ from the eager model's"
            elif got2.shape != eager2.shape or not bool((got2.argmax(-1) == eager2.argmax(-1)).all()) or \
                    not bool(torch.allclose(got2, eager2, rtol=1e-4, atol=1e-5 * float(eager2.abs().max()) + 1e-6)):
                reason = "the traced model's outputs differ from the eager model's on a second batch"
        except Exception as exc:  # any tracing failure means: run eagerly
            reason = f"could not trace the model ({type(exc).__name__}: {exc})"
        if reason:
            if not auto:
                warnings.warn(f"optimize: {reason}; using the model as is", UserWarning, stacklevel=6)
            return self.model, eager
        return fast, eager

    def _labels(self, batch: torch.Tensor) -> torch.Tensor:
        out = self._forward(batch)
        self.forward_calls += 1
        if not self._checked:
            if out.dim() != 2 or out.shape[0] != batch.shape[0]:
                raise ValueError(f"model: expected (B, num_classes) logits, got shape {tuple(out.shape)}")
            if out.shape[1] != self.num_classes:
                raise ValueError(f"num_classes: model outputs {out.shape[1]} classes, "
                                 f"but num_classes={self.num_classes}")
            o = out.detach().double()
            if bool((o >= 0).all()) and bool(torch.allclose(o.sum(1), torch.ones_like(o[:, 0]), atol=1e-4)):
                warnings.warn("model: outputs look like probabilities (non-negative rows summing to 1); "
                              "certkit expects logits. Counting uses argmax, so certificates are "
                              "unaffected, but score-based tools (conformal, attacks) will be wrong.",
                              UserWarning, stacklevel=4)
            self._checked = True
        return out.argmax(1)

    # ------------------------------------------------------------------ sampling core
    def _sample_counts(self, xs: torch.Tensor, streams: npt.NDArray[np.int64],
                       requests: Sequence[tuple[int, int, int, int]], phases: int,
                       batch_size: int, seed: int) -> torch.Tensor:
        """Counts of f's predictions under noise.

        xs: (G, C, H, W) on the device; streams: (G,) stream ids (input indices).
        requests: (g, first_sample, stop_sample, phase) ranges. Rows of all requests are
        packed back to back into forward batches of ``batch_size``.
        Returns (G, phases, K) int64 counts on the device (no host sync here).
        """
        g_count = xs.shape[0]
        k = self.num_classes
        shape = tuple(xs.shape[1:])
        m = int(np.prod(shape))
        counts = torch.zeros(g_count * phases * k, dtype=torch.int64, device=self.device)
        req = [r for r in requests if r[2] > r[1]]
        if not req:
            return counts.view(g_count, phases, k)
        lens = np.array([r[2] - r[1] for r in req], dtype=np.int64)
        ends = np.cumsum(lens)
        starts = ends - lens
        r_g = np.array([r[0] for r in req], dtype=np.int64)
        r_first = np.array([r[1] for r in req], dtype=np.int64)
        r_phase = np.array([r[3] for r in req], dtype=np.int64)
        total = int(ends[-1])
        ndt = np.float64 if xs.dtype == torch.float64 else np.float32
        buf = np.empty((min(batch_size, total), *shape), dtype=ndt)
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            for a in range(0, total, batch_size):
                b = min(total, a + batch_size)
                rows = np.arange(a, b, dtype=np.int64)
                which = np.searchsorted(ends, rows, side="right")
                g_rows = r_g[which]
                sample = r_first[which] + (rows - starts[which])
                noise = gaussian_rows((b - a, *shape), self.sigma, seed, streams[g_rows], sample * m,
                                      dtype=ndt, out=buf[: b - a])
                noise_t = torch.from_numpy(noise).to(self.device, non_blocking=True)
                if which[0] == which[-1]:  # one request (so one input) in this batch: broadcast
                    batch = noise_t.add_(xs[int(g_rows[0])]) if not cuda else noise_t + xs[int(g_rows[0])]
                else:
                    g_t = torch.from_numpy(g_rows).to(self.device, non_blocking=True)
                    batch = noise_t.add_(xs.index_select(0, g_t)) if not cuda else noise_t + xs.index_select(0, g_t)
                labels = self._labels(batch)
                key_base = torch.from_numpy(g_rows * phases + r_phase[which]).to(self.device, non_blocking=True)
                keys = key_base * k + labels
                if cuda:
                    counts.index_add_(0, keys, torch.ones_like(keys))
                else:
                    counts += torch.bincount(keys, minlength=counts.numel())
        return counts.view(g_count, phases, k)

    # ------------------------------------------------------------------ public API
    def predict(self, x: torch.Tensor, n: int = 10_000, alpha: float = 0.001,
                batch_size: int = 1000, *, seed: int = 0, idx: int = 0) -> int:
        """PREDICT of Cohen et al.: the top class, or -1 when the two-sided binomial test of
        the top count against the runner-up (n_A vs n_A + n_B, p = ½) has p-value > α.
        The probability of returning a class other than g(x) is ≤ α. x: (C, H, W)."""
        return int(self.predict_batch(_one_input(x, "predict"), n, alpha, batch_size, seed=seed,
                                      indices=[idx])[0])

    def predict_batch(self, xs: torch.Tensor, n: int = 10_000, alpha: float = 0.001,
                      batch_size: int = 1000, *, seed: int = 0,
                      indices: Sequence[int] | None = None) -> npt.NDArray[np.int64]:
        """:meth:`predict` for xs (B, C, H, W), packed into shared forward batches. (B,) int64."""
        n = check_int(n, "n", minimum=1)
        alpha = check_alpha(alpha)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        seed = check_seed(seed)
        xs_t = self._inputs(xs, single=False)
        self._check_inputs(xs_t)
        streams = _indices(indices, xs_t.shape[0])
        counts = self._sample_counts(xs_t, streams, [(g, 0, n, 0) for g in range(xs_t.shape[0])],
                                     1, batch_size, seed)[:, 0].cpu().numpy()
        top = np.argsort(-counts, axis=1, kind="stable")[:, :2]
        na = np.take_along_axis(counts, top[:, :1], 1)[:, 0]
        nb = np.take_along_axis(counts, top[:, 1:2], 1)[:, 0]
        pval = stats.binom_test_two_sided(na, na + nb, 0.5)
        return np.where(pval > alpha, ABSTAIN, top[:, 0]).astype(np.int64)

    def certify(self, x: torch.Tensor, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                batch_size: int = 1000, *, seed: int = 0, idx: int = 0, mode: str = "cohen",
                radius_target: float | Sequence[float] | None = None, max_n: int | None = None,
                tol: float | None = None, radius_grid: Sequence[float] | None = None,
                bound: str = "looks") -> tuple[int, float]:
        """CERTIFY of Cohen et al. for one input x (C, H, W): ``(class | -1, radius)``.

        n0 selection samples pick the candidate c_A; n fresh samples give the
        Clopper-Pearson lower bound p̲_A at level α; R = σΦ⁻¹(p̲_A); abstain if p̲_A < ½.
        ``mode="sequential"``: see :func:`certify_batch` (``max_n`` defaults to ``n``).
        """
        cert = self.certify_batch(_one_input(x, "certify"), n0=n0, n=n, alpha=alpha, batch_size=batch_size, seed=seed,
                                  indices=[idx], mode=mode, radius_target=radius_target,
                                  max_n=max_n, tol=tol, radius_grid=radius_grid, bound=bound)[0]
        return cert.prediction, cert.radius

    def certify_batch(self, xs: torch.Tensor, n0: int = 100, n: int = 100_000,
                      alpha: float = 0.001, batch_size: int = 1000, *, seed: int = 0,
                      indices: Sequence[int] | None = None, labels: Any = None,
                      log: str | os.PathLike[str] | ResultLog | None = None,
                      mode: str = "cohen", radius_target: float | Sequence[float] | None = None,
                      max_n: int | None = None, tol: float | None = None,
                      group_size: int | None = None, first: int = 128, growth: float | None = None,
                      futility: bool = True, progress: bool = False,
                      radius_grid: Sequence[float] | None = None, bound: str = "looks",
                      new: bool = False) -> list[Certificate]:
        """Certify many inputs, packing their samples into shared forward batches.

        xs: (B, C, H, W). indices: (B,) global input ids that key the noise (default
        0..B-1); labels: optional (B,) true classes (fills ``label``/``correct``).
        log: a JSON-lines path or ResultLog — each input's row is written as soon as its
        group finishes; inputs already in the log are not recomputed (resume). A path is
        opened with the run's settings (model fingerprint, σ, n0, n, α, seed, mode, bound,
        grid; see :func:`open_log`): resuming it with other settings raises
        :class:`~certkit.core.results.SettingsMismatchError`; ``new=True`` moves an old
        file aside. Pass a ResultLog to record other settings (the command adds the data's
        fingerprint).

        mode="cohen": n0 + n samples per input, Clopper-Pearson bound (the paper's CERTIFY).
        mode="sequential": n0 selection samples, then estimation in rounds until
        :func:`~certkit.vision.smoothing.sequential.stop_rule` says the certificate is decided or
        ``max_n`` (default n) samples are used. p̲_A is an anytime-valid lower bound, valid
        at the data-dependent stopping time; ``bound`` picks it:

        - ``"looks"`` (default): exact Clopper-Pearson bounds at a fixed schedule of looks
          with α spent across them (:mod:`certkit.vision.smoothing.looks`): geometric looks from
          ``first`` (×``growth``, default 1.1), one look per grid radius at its
          all-success floor, and half of α on the final look at ``max_n`` (so an input that
          runs to the end gets nearly Cohen's fixed-n bound);
        - ``"mixture"``: the beta-binomial mixture confidence sequence
          (:class:`~certkit.vision.smoothing.sequential.BetaBinomialCS`), rounds ×``growth``
          (default 1.25).

        ``radius_grid`` (or its older name ``radius_target``): one radius or a grid (e.g.
        the radii of a certified-accuracy curve) — stop as soon as the certified radius
        and the reachable radius fall in the same grid cell [r_k, r_{k+1}) (then, w.h.p.,
        a fixed-n run cannot reach r_{k+1} either). ``futility``: also stop when an
        optimistic forecast says r_{k+1} is out of reach even at ``max_n``. ``tol``:
        without a grid, stop once the radius can grow by at most ``tol`` (default 0.05σ).
        """
        n0 = check_int(n0, "n0", minimum=1)
        n = check_int(n, "n", minimum=1)
        if n < n0:
            raise ValueError(f"n: expected n >= n0 (n={n}, n0={n0})")
        alpha = check_alpha(alpha)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        seed = check_seed(seed)
        if mode not in ("cohen", "sequential"):
            raise ValueError(f"mode: expected 'cohen' or 'sequential', got {mode!r}")
        if max_n is None:
            max_n = n
        max_n = check_int(max_n, "max_n", minimum=1)
        if radius_grid is not None:
            if radius_target is not None:
                raise ValueError("radius_grid: give radius_grid or radius_target, not both")
            radius_target = radius_grid
        if bound not in ("looks", "mixture"):
            raise ValueError(f"bound: expected 'looks' or 'mixture', got {bound!r}")
        grid: list[float] | None = None
        if radius_target is not None:
            grid = [float(r) for r in (radius_target if isinstance(radius_target, Iterable)
                                       else [radius_target])]
            if not grid or any(not math.isfinite(r) or r < 0 for r in grid):
                raise ValueError(f"radius_target: expected finite radii >= 0, got {radius_target!r}")
        if growth is None:
            growth = 1.1 if bound == "looks" else 1.25
        growth = check_positive(growth, "growth")
        if growth <= 1.0:
            raise ValueError(f"growth: expected > 1, got {growth}")
        first = check_int(first, "first", minimum=1)
        xs_t = self._inputs(xs, single=False)
        self._check_inputs(xs_t)
        b_total = xs_t.shape[0]
        ids = _indices(indices, b_total)
        if len(set(ids.tolist())) != b_total:
            raise ValueError("indices: expected distinct input indices")
        lab = _labels(labels, b_total, self.num_classes)

        rlog, own_log = open_log(log, self, new=new, n0=n0, n=n, alpha=alpha, seed=seed, mode=mode,
                                 bound=bound if mode == "sequential" else None, radius_grid=grid,
                                 tol=tol if mode == "sequential" and grid is None else None,
                                 max_n=max_n if mode == "sequential" else None)
        results: dict[int, Certificate] = {}
        todo_pos = list(range(b_total))
        if rlog is not None:
            done_rows = {int(r["idx"]): r for r in rlog.rows()}
            for q in range(b_total):
                if int(ids[q]) in done_rows:
                    results[q] = Certificate.from_row(done_rows[int(ids[q])])
            todo_pos = [p for p in range(b_total) if p not in results]
        if group_size is None:
            per = n0 + (n if mode == "cohen" else first)
            group_size = max(1, min(256, (4 * batch_size) // per))
        group_size = check_int(group_size, "group_size", minimum=1)

        from certkit.core.progress import Counter

        try:
            with Counter(len(todo_pos), desc=f"certify σ={self.sigma:g}", unit="input",
                         quiet=None if progress else True) as bar:
                for a in range(0, len(todo_pos), group_size):
                    pos = todo_pos[a:a + group_size]
                    t0 = time.perf_counter()
                    if mode == "cohen":
                        certs = self._certify_group_cohen(xs_t[pos], ids[pos], n0, n, alpha, batch_size, seed)
                    else:
                        certs = self._certify_group_sequential(xs_t[pos], ids[pos], n0, max_n, alpha,
                                                               batch_size, seed, grid, tol, first, growth,
                                                               futility, bound)
                    dt = (time.perf_counter() - t0) / len(pos)
                    for p, c in zip(pos, certs, strict=True):
                        c.seconds = dt
                        if lab is not None:
                            c.label = int(lab[p])
                            c.correct = bool(c.prediction == c.label)
                        results[p] = c
                        if rlog is not None:
                            rlog.write(c.as_row())
                    bar.update(len(pos))
        finally:
            if own_log and rlog is not None:
                rlog.close()
        return [results[p] for p in range(b_total)]

    def _certify_group_cohen(self, xs: torch.Tensor, ids: npt.NDArray[np.int64], n0: int, n: int,
                             alpha: float, batch_size: int, seed: int) -> list[Certificate]:
        req = [(g, 0, n0, 0) for g in range(xs.shape[0])] + \
              [(g, n0, n0 + n, 1) for g in range(xs.shape[0])]
        counts = self._sample_counts(xs, ids, req, 2, batch_size, seed).cpu().numpy()
        c_a = counts[:, 0].argmax(1)  # first maximum: ties go to the smaller class
        n_a = counts[np.arange(len(ids)), 1, c_a]
        p_low = stats.clopper_pearson(n_a, np.full_like(n_a, n), alpha, side="lower")
        radii = stats.certified_radius(p_low, self.sigma)
        out = []
        for g in range(len(ids)):
            ok = p_low[g] >= 0.5
            out.append(Certificate(idx=int(ids[g]), prediction=int(c_a[g]) if ok else ABSTAIN,
                                   radius=float(radii[g]) if ok else 0.0,
                                   p_lower=float(p_low[g]), count=int(n_a[g]), n=n, n0=n0,
                                   seconds=0.0, sigma=self.sigma, alpha=alpha, mode="cohen", seed=seed))
        return out

    def _certify_group_sequential(self, xs: torch.Tensor, ids: npt.NDArray[np.int64], n0: int,
                                  max_n: int, alpha: float, batch_size: int, seed: int,
                                  grid: list[float] | None, tol: float | None, first: int,
                                  growth: float, futility: bool, bound: str) -> list[Certificate]:
        g_count = xs.shape[0]
        cs: Any
        if bound == "looks":
            cs = grid_schedule(alpha, max_n, first=first, growth=growth, sigma=self.sigma, radius_grid=grid)

            def schedule(u: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
                return cs.next_total(u)
        else:
            cs = BetaBinomialCS(alpha)

            def schedule(u: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
                return next_total(u, first=first, growth=growth, max_n=max_n)
        p_cap = cs.lower_if_all_succeed(max_n)
        sel = self._sample_counts(xs, ids, [(g, 0, n0, 0) for g in range(g_count)], 1,
                                  batch_size, seed)[:, 0].cpu().numpy()
        c_a = sel.argmax(1)
        used = np.zeros(g_count, dtype=np.int64)
        succ = np.zeros(g_count, dtype=np.int64)
        active = np.ones(g_count, dtype=bool)
        lower = np.zeros(g_count)
        upper = np.ones(g_count)
        while active.any():
            act = np.flatnonzero(active)
            target = schedule(used[act])
            req = [(int(g), n0 + int(used[g]), n0 + int(t), 0) for g, t in zip(act, target, strict=True)]
            counts = self._sample_counts(xs, ids, req, 1, batch_size, seed)[:, 0].cpu().numpy()
            succ[act] += counts[act, c_a[act]]
            used[act] = target
            lo, hi = cs.bounds(succ[act], used[act])
            lower[act], upper[act] = lo, hi
            fc = forecast_lower(cs, succ[act], used[act], max_n) if grid is not None and futility else None
            stop = stop_rule(lo, hi, used[act], max_n=max_n, sigma=self.sigma, p_cap=p_cap,
                             radius_grid=grid, tol=tol, reach_at_max=fc)
            active[act[stop]] = False
        radii = stats.certified_radius(lower, self.sigma)
        out = []
        for g in range(g_count):
            ok = lower[g] > 0.5
            out.append(Certificate(idx=int(ids[g]), prediction=int(c_a[g]) if ok else ABSTAIN,
                                   radius=float(radii[g]) if ok else 0.0,
                                   p_lower=float(lower[g]), p_upper=float(upper[g]), count=int(succ[g]),
                                   n=int(used[g]), n0=n0, seconds=0.0, sigma=self.sigma, alpha=alpha,
                                   mode="sequential", seed=seed))
        return out


_PLAIN = (int, float, bool, str, type(None))


def _one_input(x: Any, method: str) -> Any:
    """x (C, H, W) → (1, C, H, W); a batch is refused with a pointer to the batch method."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if isinstance(x, torch.Tensor):
        if x.dim() == 3:
            return x.unsqueeze(0)
        if x.dim() == 4 and x.shape[0] == 1:
            return x
        if x.dim() == 4:
            raise ValueError(f"x: {method}() takes one input (C, H, W), got a batch of shape {tuple(x.shape)}; "
                             f"use {method}_batch() for a batch")
        raise ValueError(f"x: expected one input (C, H, W), got shape {tuple(x.shape)}")
    return x


def _python_state(model: nn.Module) -> list[dict[str, Any]]:
    """The plain Python attributes of every submodule: a forward that changes them (a
    call counter, a cache flag) has side effects that a trace would drop."""
    return [{k: v for k, v in vars(m).items() if isinstance(v, _PLAIN)} for m in model.modules()]


def open_log(log: str | os.PathLike[str] | ResultLog | None, smooth: Any, *, new: bool = False,
             **params: Any) -> tuple[ResultLog | None, bool]:
    """(ResultLog or None, whether the caller must close it). A path is opened with the
    settings of the run: the content hash of the smoothed model(s), σ, K and ``params``."""
    if log is None or isinstance(log, ResultLog):
        if new:
            raise ValueError("new: only with log given as a path (pass ResultLog(path, new=True))")
        return log, False
    from certkit.core.results import fingerprint, run_settings

    models = {"model": fingerprint(smooth.model)} if hasattr(smooth, "model") else {
        "model": fingerprint(smooth.left.model), "model_right": fingerprint(smooth.right.model)}
    settings = run_settings(**models, sigma=smooth.sigma, num_classes=smooth.num_classes, **params)
    return ResultLog(Path(log), settings=settings, new=new), True


def _labels(labels: Any, b: int, num_classes: int) -> npt.NDArray[np.int64] | None:
    if labels is None:
        return None
    lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if lab.shape != (b,) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels: expected ({b},) integers, got {lab.shape} {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"labels: expected classes in [0, {num_classes}), got {int(lab.min())}..{int(lab.max())}")
    return lab.astype(np.int64)


def _indices(indices: Sequence[int] | None, b: int) -> npt.NDArray[np.int64]:
    if indices is None:
        return np.arange(b, dtype=np.int64)
    arr = np.asarray(indices)
    if arr.shape != (b,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"indices: expected ({b},) integers, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError("indices: expected non-negative integers")
    return arr.astype(np.int64)


def certify_batch(model: nn.Module, xs: torch.Tensor, num_classes: int, sigma: float,
                  **kwargs: Any) -> list[Certificate]:
    """Functional form: ``Smooth(model, num_classes, sigma).certify_batch(xs, **kwargs)``."""
    return Smooth(model, num_classes, sigma).certify_batch(xs, **kwargs)
