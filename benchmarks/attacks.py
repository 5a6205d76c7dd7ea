"""PGD throughput: certkit.vision.attacks.pgd vs torchattacks.PGD on the same model and work.

torchattacks (the anchor) requires torchvision, which has no CPU build in this
environment, so when it is not installed we time a faithful minimal re-implementation of
its ℓ∞ PGD loop instead (uniform random start, mean CE, sign step, clip to the ε-ball and
[0, 1]) and say so in the output. Both run the same model, inputs, ε, step size and
number of steps in this process; we report steps per second, the best of ``--repeat``
runs, and the robust accuracy each attack leaves (ours must be at least as strong).

Usage: python benchmarks/attacks.py [--batch 256] [--steps 50] [--repeat 7] [--threads 1]
Prints a table, then one JSON line {"name", "ours_s", "anchor_s", "ratio", ...}
(ratio = anchor_s / ours_s; > 1 means ours is faster).

``--quad`` instead compares QuadAttack's perturbation size with the plain hinge baseline
(``topk_hinge_attack``: Adam on c·Σ hinge + ‖δ‖², no QP) on the same digits model, inputs
(``--batch``, default 100 here) and seeded random ordered targets, top-3 and top-1, ``--steps``
(default 200 here) each: success rate, median ℓ2 over each attack's successes and over the
inputs both broke (equal success), and time. One JSON line per K.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from certkit.vision.attacks import pgd, robust_accuracy
from certkit.vision.attacks.quadattack import quadattack, topk_hinge_attack, topk_success
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, train_classifier


def reference_pgd(model, x, y, eps, alpha, steps, seed=0):
    """torchattacks.PGD's loop (v3.5), re-implemented for timing and strength comparison."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    adv = (x + torch.empty_like(x).uniform_(-eps, eps, generator=g)).clamp(0, 1).detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = F.cross_entropy(model(adv), y)
        grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return adv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quad", action="store_true", help="QuadAttack vs the hinge baseline instead")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    tr, te = load_digits()
    torch.manual_seed(0)
    if a.quad:
        quad_vs_hinge(a, tr, te, dev)
        return
    model = train_classifier(DigitsCNN(), tr.x, tr.y, epochs=5).to(dev).eval()
    reps = -(-a.batch // len(te))
    x = te.x.repeat(reps, 1, 1, 1)[:a.batch].to(dev)
    y = te.y.repeat(reps)[:a.batch].to(dev)
    alpha = a.eps / 4

    try:
        import torchattacks  # type: ignore[import-not-found]

        atk = torchattacks.PGD(model, eps=a.eps, alpha=alpha, steps=a.steps, random_start=True)
        anchor_name = f"torchattacks {torchattacks.__version__} PGD"

        def anchor():
            return atk(x, y)
    except ImportError:
        print("torchattacks is not installed (it requires torchvision, which has no CPU build "
              "here): timing a faithful re-implementation of its PGD loop as the anchor")
        anchor_name = "torchattacks-style PGD loop (re-implementation)"

        def anchor():
            return reference_pgd(model, x, y, a.eps, alpha, a.steps)

    def ours():
        return pgd(model, x, y, a.eps, steps=a.steps, step_size=alpha)

    def timed(fn):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    anchor()
    ours()  # warm-up
    t_a, t_o = [], []
    for _ in range(a.repeat):  # interleaved, so load drifts hit both alike
        ta, adv_a = timed(anchor)
        to, adv_o = timed(ours)
        t_a.append(ta)
        t_o.append(to)
    t_anchor, t_ours = min(t_a), min(t_o)
    acc_a = robust_accuracy(model, adv_a, y)
    acc_o = robust_accuracy(model, adv_o, y)
    print(f"{'attack':<52} {'time (s)':>9} {'steps/s':>9} {'robust acc':>11}")
    print(f"{'certkit pgd':<52} {t_ours:9.3f} {a.steps / t_ours:9.1f} {acc_o:11.3f}")
    print(f"{anchor_name:<52} {t_anchor:9.3f} {a.steps / t_anchor:9.1f} {acc_a:11.3f}")
    print(json.dumps({"name": "attacks_pgd", "ours_s": t_ours, "anchor_s": t_anchor,
                      "ratio": t_anchor / t_ours, "anchor": anchor_name, "batch": a.batch,
                      "steps": a.steps, "device": str(dev), "robust_acc_ours": acc_o,
                      "robust_acc_anchor": acc_a}))


def quad_vs_hinge(a, tr, te, dev) -> None:
    """QuadAttack next to topk_hinge_attack at equal steps (the test suite's digits model)."""
    batch = a.batch if a.batch != 256 else 100
    steps = a.steps if a.steps != 50 else 200
    model = train_classifier(DigitsCNN(), tr.x, tr.y, epochs=10, seed=0).to(dev).eval()
    x = te.x[:batch].to(dev)
    print(f"{'K':>2} {'attack':<26} {'success':>8} {'median l2':>10} {'median l2, both broke':>22} {'time (s)':>9}")
    for k in (3, 1):
        g = torch.Generator().manual_seed(0)
        targets = torch.stack([torch.randperm(10, generator=g)[:k] for _ in range(len(x))]).to(dev)
        res = {}
        for name, fn in (("quadattack", lambda t=targets: quadattack(model, x, t, steps=steps)),
                         ("hinge baseline", lambda t=targets: topk_hinge_attack(model, x, t, steps=steps))):
            t = time.perf_counter()
            xa = fn()
            sec = time.perf_counter() - t
            with torch.no_grad():
                ok = topk_success(model(xa), targets)
            d = (xa - x).flatten(1).norm(dim=1)
            res[name] = (torch.where(ok, d, torch.full_like(d, float("inf"))), sec)
        both = torch.isfinite(res["quadattack"][0]) & torch.isfinite(res["hinge baseline"][0])
        out = {"name": f"attacks_quadattack_top{k}", "batch": len(x), "steps": steps, "both_broke": int(both.sum())}
        for name, (d, sec) in res.items():
            okm = torch.isfinite(d)
            row = (float(okm.float().mean()), float(d[okm].median()), float(d[both].median()), sec)
            print(f"{k:>2} {name:<26} {row[0]:8.2f} {row[1]:10.3f} {row[2]:22.3f} {row[3]:9.1f}")
            key = "quad" if name == "quadattack" else "hinge"
            out.update({f"{key}_success": row[0], f"{key}_median_l2": row[1], f"{key}_median_l2_both": row[2],
                        f"{key}_s": sec})
        print(json.dumps(out))


if __name__ == "__main__":
    main()
