# ruff: noqa: B023  (closures are called immediately inside the loop)
"""Bound propagation: certkit.core.bounds (compiled kernels via the torch layer) vs
auto_LiRPA on identical work (inference-only CPU, IBP and CROWN).

Workloads: MLP 784-256-256-10 and the auto_LiRPA tutorial CNN (conv 1→16 k4 s2, conv
16→32 k4 s2, linear 1568→100→10) on 28×28 inputs; batch 1, 32, 256; ε ∈ {0.01, 0.03, 0.1}.
Reports max |Δbound|, median time and peak RSS increase per (model, method, batch, ε).

Convolutional nets on 3×32×32 (``--models cifar_cnn,resnet,resnet_2b,resnet_4b``; batch 1
and 32, ε = 2/255, random BN statistics): ``cifar_cnn`` (conv 3→16 k3, 16→32 k4 s2,
32→32 k3, 32→64 k4 s2, each + BN + ReLU, linear 4096→128→10), ``resnet`` (the
torchvision-style ResNet of the operator tests, width 4: stem conv-BN-ReLU, max pool, a
BasicBlock and a stride-2 BasicBlock with 1×1 downsample, average pool, fc), and VNN-COMP
2021's ``resnet_2b`` / ``resnet_4b`` (``$CERTKIT_SHARED_DATA/vnncomp2021/cifar10_resnet``,
default /work/shared/data; skipped when absent). These run one timed call per tool after a
warm-up call whose peak RSS increase is reported (``--reps`` more calls if asked).
Ours and the anchor are timed interleaved (one run of each in turn), so that load from
other processes on a shared machine affects both alike.

auto_LiRPA is not on PyPI in a current version: point AUTO_LIRPA_PATH at a checkout of
github.com/Verified-Intelligence/auto_LiRPA (plus its deps on PYTHONPATH: appdirs,
graphviz). Without it, the anchor is certkit's own pure-torch path (use_compiled=False)
and the output says so.

Bound agreement: ``max|d|`` is the largest absolute difference of any bound, ``rel`` the
largest difference relative to max(1, |bound|). Float32 sums in a different order differ by
a few ulps of the largest partial sum; ``--dtype float64`` runs both tools in double
precision, which shows the float32 differences are rounding.

``--ibp-f64``: IBP in float32 by both tools against a float64 reference (our torch path in
double precision on the same weights): shows how much of the float32 difference between
the tools is each tool's own rounding (summation order), not a different bound.

``--alpha``: α-CROWN tightness and time on small random MLPs (the kind the soundness tests
use), same iterations (20), learning rate (0.5, decay 0.98) and spec for both tools:
mean improvement of the lower margin bound over CROWN, for ours with only the output's
slopes optimised, ours full (intermediate slopes too) and auto_LiRPA's CROWN-Optimized.

``--methods alpha-CROWN`` on the conv nets: lower bounds only, our ``alpha_iterations=N``
against auto_LiRPA's ``CROWN-Optimized`` with ``iteration=N + 1`` (its last iteration is the
final pass without a gradient step; ours runs N steps and a final pass: both do N + 1 bound
passes and N gradient steps), ``lr_alpha`` 0.5, ``lr_decay`` 0.98, early stop off
(``early_stop_patience`` larger than N), ``--alpha-iters N`` (default 20). ``--alpha-mode
full`` (default): intermediate slopes optimised too (ours ``alpha_intermediate=True``,
auto_LiRPA ``fix_interm_bounds=False``); ``output``: only the output's slopes (``False`` /
``True``). auto_LiRPA's α-CROWN has no patches rule for max pooling: there it runs with
``conv_mode="matrix"`` and the output says so.

Threads: ``--threads N`` pins torch (both tools) and our OpenMP kernels to N threads.

``cpu_ratio``: the anchor's median process (CPU) time over ours. On a shared, loaded
machine wall times include waiting for a core (they moved by ±40 % between runs at load
4–5); CPU times do not, so this ratio moves less (with one thread each, CPU time is the
work done).

Usage: python benchmarks/bounds.py [--quick] [--reps N] [--models mlp,cnn,cifar_cnn,resnet,resnet_2b,resnet_4b] [--methods IBP,CROWN]
       [--batches 1,32,256] [--eps 0.01,0.03,0.1] [--dtype float32|float64] [--threads N]
       [--ibp-f64] [--alpha] [--alpha-iters N] [--alpha-mode full|output]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from certkit.core.bounds import BoundedModel


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10))


def _cifar_cnn() -> nn.Module:
    layers: list[nn.Module] = []
    for cin, cout, k, s in ((3, 16, 3, 1), (16, 32, 4, 2), (32, 32, 3, 1), (32, 64, 4, 2)):
        layers += [nn.Conv2d(cin, cout, k, s, 1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


def _random_bn(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return net


def _resnet() -> nn.Module:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packages", "core", "tests"))
    from test_bounds_operators import ResNet

    return ResNet(4)


def _vnncomp_resnet(name: str) -> Callable[[], nn.Module] | None:
    from pathlib import Path

    f = Path(os.environ.get("CERTKIT_SHARED_DATA", "/work/shared/data")) / "vnncomp2021" / "cifar10_resnet" / "onnx" / f"{name}.onnx"
    if not f.is_file():
        return None

    def load() -> nn.Module:
        from certkit.core.bounds.onnx_import import load_onnx

        return load_onnx(f).module
    return load


# name → (factory, per-example input shape, default eps list, conv family)
def _models() -> dict[str, tuple[Callable[[], nn.Module] | None, tuple[int, ...], list[float] | None, bool]]:
    return {"mlp": (_mlp, (1, 28, 28), None, False), "cnn": (_cnn, (1, 28, 28), None, False),
            "cifar_cnn": (lambda: _random_bn(_cifar_cnn()), (3, 32, 32), [2 / 255], True),
            "resnet": (lambda: _random_bn(_resnet()), (3, 32, 32), [2 / 255], True),
            "resnet_2b": (_vnncomp_resnet("resnet_2b"), (3, 32, 32), [2 / 255], True),
            "resnet_4b": (_vnncomp_resnet("resnet_4b"), (3, 32, 32), [2 / 255], True)}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _peak_reset() -> int:
    """Reset the RSS high-water mark and return the current RSS (KiB), after handing the
    allocator's free memory back to the system: otherwise the second tool reuses the heap
    the first one grew, and its peak increase reads near zero."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss_kib("VmRSS:")


def _measure(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
    out = fn()  # warm-up
    base = _peak_reset()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    peak = max(0, _rss_kib("VmHWM:") - base) / 1024
    return statistics.median(ts), peak, out


def _peak_of(f: Callable[[], Any]) -> tuple[float, Any]:
    """Peak RSS increase (MiB) of one call of f, and its result."""
    base = _peak_reset()
    out = f()
    return max(0, _rss_kib("VmHWM:") - base) / 1024, out


CPU_TIMES: dict[str, float] = {}  # the last _measure_pair's median process (CPU) times, ours / anchor


def _measure_pair(fo: Callable[[], Any], fa: Callable[[], Any], reps: int, warm: bool = True
                  ) -> tuple[float, float, float, float, Any, Any]:
    """Ours and the anchor timed interleaved (o, a, o, a, ...) after one warm-up each, so
    load changes on a shared machine hit both alike; peak RSS from one extra run each.
    ``warm=False`` (the slow conv nets): the peak RSS of the first call is the memory
    figure and there is no separate warm-up. The median process (CPU) times go to
    :data:`CPU_TIMES` (on a loaded machine they move less than wall times: waiting for a
    core does not count)."""
    if warm:
        fo(), fa()
    m_o, out_o = _peak_of(fo)
    m_a, out_a = _peak_of(fa)
    to, ta, co, ca = [], [], [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out_o = fo()
        to.append(time.perf_counter() - t0)
        co.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        out_a = fa()
        ta.append(time.perf_counter() - t0)
        ca.append(time.process_time() - c0)
    CPU_TIMES.update(ours=statistics.median(co), anchor=statistics.median(ca))
    return statistics.median(to), statistics.median(ta), m_o, m_a, out_o, out_a


def _anchor() -> tuple[str, Any]:
    path = os.environ.get("AUTO_LIRPA_PATH")
    if path:
        sys.path.insert(0, path)
        try:
            import auto_LiRPA

            return "auto_LiRPA", auto_LiRPA
        except ImportError as exc:
            print(f"# auto_LiRPA at {path} could not be imported ({exc}); anchor = certkit torch path")
    else:
        print("# AUTO_LIRPA_PATH not set: auto_LiRPA skipped; anchor = certkit's pure-torch path")
    return "certkit-torch", None


def _alpha_bench(alirpa: Any, reps: int) -> None:
    """α-CROWN: ours (output-only, full) vs auto_LiRPA's CROWN-Optimized on small MLPs."""
    from certkit.core.bounds import margin_spec

    rows = []
    t_ours = t_anchor = 0.0
    print(f"{'net':>4} {'crown_diff':>10} {'ours_out':>9} {'ours_full':>9} {'alirpa':>9} "
          f"{'ours_ms':>8} {'alirpa_ms':>9}")
    for seed in range(6):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                            nn.Linear(16, 4)).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        bm = BoundedModel(net, (6,))
        x = torch.randn(4, 6)
        C = margin_spec(torch.randint(0, 4, (4,)), 4)
        eps = 0.2
        with torch.no_grad():
            cl, _ = bm.compute_bounds(x, eps, method="CROWN", C=C)
        ol, _ = bm.compute_bounds(x, eps, method="alpha-CROWN", C=C, alpha_intermediate=False)
        t_o, _, (fl, _) = _measure(lambda: bm.compute_bounds(x, eps, method="alpha-CROWN", C=C), reps)
        al = acl = None
        t_a = math.nan
        if alirpa is not None:
            from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
            am = BoundedModule(net, torch.zeros(1, 6), verbose=0,
                               bound_opts={"optimize_bound_args": {"iteration": 20, "lr_alpha": 0.5}})

            def run_a() -> Any:
                xb = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), eps=eps))
                return am.compute_bounds(x=(xb,), C=C, method="CROWN-Optimized")
            t_a, _, (al, _) = _measure(run_a, reps)
            xb = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), eps=eps))
            acl, _ = am.compute_bounds(x=(xb,), C=C, method="CROWN")
        gain = [float((v - cl).mean()) if v is not None else math.nan for v in (ol, fl, al)]
        cd = float((acl - cl).abs().max()) if acl is not None else math.nan
        t_ours += t_o
        t_anchor += t_a
        rows.append(dict(seed=seed, crown_diff=cd, gain_out=gain[0], gain_full=gain[1], gain_alirpa=gain[2],
                         ours_s=t_o, anchor_s=t_a))
        print(f"{seed:>4} {cd:10.1e} {gain[0]:9.5f} {gain[1]:9.5f} {gain[2]:9.5f} {t_o * 1e3:8.1f} {t_a * 1e3:9.1f}",
              flush=True)
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("gain_out", "gain_full", "gain_alirpa")}
    print(json.dumps({"name": "bounds_alpha", "ours_s": t_ours, "anchor_s": t_anchor, "ratio": t_anchor / t_ours,
                      "mean_gain_over_crown": mean}))


def _alirpa_alpha(alirpa: Any, net: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, iters: int, full: bool,
                  name: str) -> Any:
    """auto_LiRPA's module for α-CROWN at our iteration count (see the module docstring)."""
    opts: dict[str, Any] = {"optimize_bound_args": {"iteration": iters + 1, "lr_alpha": 0.5, "lr_decay": 0.98,
                                                    "fix_interm_bounds": not full,
                                                    "early_stop_patience": iters + 10}}
    if any(isinstance(m, nn.MaxPool2d) for m in net.modules()):
        opts["conv_mode"] = "matrix"  # its α-CROWN refuses max pooling with patches
        print(f"# {name}: auto_LiRPA alpha-CROWN with conv_mode='matrix' (no patches rule for max pooling)")
    return alirpa.BoundedModule(net, torch.zeros(1, *shape, dtype=dtype), verbose=0, bound_opts=opts)


def _ibp_f64(alirpa: Any) -> None:
    """IBP float32 of both tools vs a float64 reference on the same (float32) weights."""
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    from certkit.core.bounds import margin_spec

    out = {}
    print(f"{'model':5} {'eps':>5} {'|ours32-f64|':>13} {'|alirpa32-f64|':>15} {'|ours32-alirpa32|':>18}")
    for mname, factory in (("mlp", _mlp), ("cnn", _cnn)):
        torch.manual_seed(0)
        net = factory().eval()
        for p in net.parameters():
            p.requires_grad_(False)
        net64 = copy.deepcopy(net).double()
        am = BoundedModule(net, torch.zeros(1, 1, 28, 28), verbose=0)
        ours = BoundedModel(net, (1, 28, 28))
        ref = BoundedModel(net64, (1, 28, 28), use_compiled=False)
        x = torch.rand(32, 1, 28, 28)
        C = margin_spec(torch.randint(0, 10, (32,)), 10)
        for eps in (0.01, 0.03, 0.1):
            z, o = torch.zeros_like(x), torch.ones_like(x)
            with torch.no_grad():
                lo, up = ours.compute_bounds(x, eps, method="IBP", C=C, x_L=z, x_U=o)
                rlo, rup = ref.compute_bounds(x.double(), eps, method="IBP", C=C.double(), x_L=z.double(),
                                              x_U=o.double())
                xb = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=(x - eps).clamp(0, 1),
                                                         x_U=(x + eps).clamp(0, 1)))
                alo, aup = am.compute_bounds(x=(xb,), C=C, method="IBP")

            def md(a: torch.Tensor, b: torch.Tensor) -> float:
                return float((a.double() - b.double()).abs().max())
            e_o = max(md(lo, rlo), md(up, rup))
            e_a = max(md(alo, rlo), md(aup, rup))
            e_oa = max(md(lo, alo), md(up, aup))
            out[f"{mname}_{eps}"] = dict(ours_vs_f64=e_o, alirpa_vs_f64=e_a, ours_vs_alirpa=e_oa,
                                          bound_scale=float(rup.abs().max()))
            print(f"{mname:5} {eps:>5} {e_o:13.2e} {e_a:15.2e} {e_oa:18.2e}   (max |bound| {float(rup.abs().max()):.1f})")
    print(json.dumps({"name": "bounds_ibp_f64", "ours_s": 0.0, "anchor_s": 0.0, "ratio": None, "errors": out}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="batch 1 and 32, eps 0.03 only")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per cell (5; conv nets 1)")
    ap.add_argument("--models", default="mlp,cnn",
                    help="comma-separated: mlp, cnn, cifar_cnn, resnet, resnet_2b, resnet_4b")
    ap.add_argument("--methods", default="IBP,CROWN")
    ap.add_argument("--batches", default=None)
    ap.add_argument("--eps", default=None)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--threads", type=int, default=None, help="pin torch and OpenMP threads (both tools)")
    ap.add_argument("--ibp-f64", action="store_true", help="IBP float32 rounding vs a float64 reference")
    ap.add_argument("--alpha", action="store_true", help="alpha-CROWN tightness/time on small MLPs")
    ap.add_argument("--alpha-iters", type=int, default=20, help="alpha-CROWN gradient steps (--methods alpha-CROWN)")
    ap.add_argument("--alpha-mode", default="full", choices=("full", "output"),
                    help="alpha-CROWN: optimise the intermediate slopes too (full) or only the output's")
    args = ap.parse_args()
    args.reps_set = args.reps is not None
    args.reps = 5 if args.reps is None else args.reps
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    anchor_name, alirpa = _anchor()
    if args.alpha:
        _alpha_bench(alirpa, args.reps)
        return
    if args.ibp_f64:
        if alirpa is None:
            print("# --ibp-f64 needs auto_LiRPA (AUTO_LIRPA_PATH); skipped")
            return
        _ibp_f64(alirpa)
        return
    table = _models()
    unknown = [m for m in args.models.split(",") if m not in table]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; expected some of {', '.join(table)}")
    models = []
    for mname in args.models.split(","):
        factory, shape, m_eps, conv = table[mname]
        if factory is None:
            print(f"# {mname}: ONNX file not found (CERTKIT_SHARED_DATA); skipped")
            continue
        batches = [1, 32] if args.quick or conv else [1, 32, 256]
        epss = m_eps or ([0.03] if args.quick else [0.01, 0.03, 0.1])
        if args.batches:
            batches = [int(b) for b in args.batches.split(",")]
        if args.eps:
            epss = [float(e) for e in args.eps.split(",")]
        models.append((mname, factory, shape, batches, epss, conv))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"# torch threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} "
          f"BLAS={'off' if os.environ.get('CERTKIT_BOUNDS_BLAS') == '0' else 'OpenBLAS if found'} dtype={args.dtype} reps={args.reps} "
          f"loadavg={os.getloadavg()[0]:.1f}")
    rows = []
    tot_ours = tot_anchor = 0.0
    print(f"{'model':9} {'method':6} {'B':>4} {'eps':>6} {'max|d|':>9} {'rel':>9} {'ours_ms':>9} {'anchor_ms':>10} "
          f"{'speedup':>8} {'ours_MiB':>9} {'anch_MiB':>9} {'cpu_ratio':>9}")
    for mname, factory, shape, batches, epss, conv in models:
        torch.manual_seed(0)
        net = factory().to(dtype).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        ours = BoundedModel(net, shape)
        if alirpa is not None:
            from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
            am = BoundedModule(net, torch.zeros(1, *shape, dtype=dtype), verbose=0)
        else:
            ref = BoundedModel(net, shape, use_compiled=False, conv_mode="matrix")
        ours_kw: dict[str, Any] = {}
        anchor_kw: dict[str, Any] = {}
        if "alpha-CROWN" in methods:
            full = args.alpha_mode == "full"
            ours_kw = dict(alpha_iterations=args.alpha_iters, alpha_intermediate=full, bound_upper=False)
            anchor_kw = dict(bound_upper=False)
            if alirpa is not None:
                am_alpha = _alirpa_alpha(alirpa, net, shape, dtype, args.alpha_iters, full, mname)
        for method in methods:
            for B in batches:
                x = torch.rand(B, *shape, dtype=dtype)
                y = torch.randint(0, 10, (B,))
                from certkit.core.bounds import margin_spec
                C = margin_spec(y, 10, dtype)
                for eps in epss:
                    xl, xu = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
                    z, o = torch.zeros_like(x), torch.ones_like(x)  # built once, as the anchor's xl / xu
                    alpha = method == "alpha-CROWN"
                    okw = ours_kw if alpha else {}
                    with torch.no_grad() if not alpha else torch.enable_grad():
                        def run_ours() -> Any:
                            return ours.compute_bounds(x, eps, method=method, C=C, x_L=z, x_U=o, **okw)
                        if alirpa is not None:
                            def run_anchor() -> Any:
                                xb = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=xl, x_U=xu))
                                if alpha:
                                    return am_alpha.compute_bounds(x=(xb,), C=C, method="CROWN-Optimized", **anchor_kw)
                                return am.compute_bounds(x=(xb,), C=C, method=method)
                        else:
                            def run_anchor() -> Any:
                                return ref.compute_bounds(x, eps, method=method, C=C, x_L=z, x_U=o, **okw)
                        reps = (args.reps if args.reps_set else 1) if conv else args.reps
                        t_o, t_a, m_o, m_a, (lo, up), (alo, aup) = _measure_pair(run_ours, run_anchor, reps,
                                                                                 warm=not conv)
                    pairs = [(a.detach(), b.detach()) for a, b in ((lo, alo), (up, aup)) if a is not None and b is not None]
                    d = max(float((a - b).abs().max()) for a, b in pairs)
                    rel = max(float(((a - b).abs() / b.abs().clamp_min(1)).max()) for a, b in pairs)
                    if alpha:  # (the mean lower bound of each tool: α-CROWN's result depends on the path)
                        print(f"#   mean lower bound: ours {float(lo.mean()):.5f}, anchor {float(alo.mean()):.5f}")
                    tot_ours += t_o
                    tot_anchor += t_a
                    c_o, c_a = CPU_TIMES["ours"], CPU_TIMES["anchor"]
                    rows.append(dict(model=mname, method=method, batch=B, eps=eps, max_diff=d, rel_diff=rel, ours_s=t_o,
                                     anchor_s=t_a, ours_mib=m_o, anchor_mib=m_a, ours_cpu_s=c_o, anchor_cpu_s=c_a))
                    print(f"{mname:9} {method:6} {B:>4} {eps:>6.4g} {d:9.2e} {rel:9.2e} {t_o * 1e3:9.2f} "
                          f"{t_a * 1e3:10.2f} {t_a / t_o:8.2f} {m_o:9.1f} {m_a:9.1f} {c_a / max(c_o, 1e-9):9.2f}"
                          f"  load {os.getloadavg()[0]:.1f}", flush=True)
    print(json.dumps({"name": "bounds", "anchor": anchor_name, "ours_s": tot_ours, "anchor_s": tot_anchor,
                      "ratio": tot_anchor / tot_ours, "loadavg": os.getloadavg()[0],
                      "rows": [dict(r, ratio=r["anchor_s"] / r["ours_s"]) for r in rows],
                      "max_diff": max(r["max_diff"] for r in rows),
                      "max_rel_diff": max(r["rel_diff"] for r in rows), "dtype": args.dtype}))


if __name__ == "__main__":
    main()
