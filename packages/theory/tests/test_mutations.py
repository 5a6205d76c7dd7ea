"""Mutation tests: plausible wrong formulas, one at a time; each paper's ``check()`` must reject
every one of them (raise :class:`TheoryCheckError`).

Each mutation replaces one function of a theory module by a version with a single, plausible
mistake (a dropped factor, a swapped sign, a margin on the wrong class, a formula that ignores
a parameter), written out in full so that the rest of the module stays consistent with it (a
mutated closed form also reports accuracies that match its own (w, b)). A check that only
compares a formula with a simulation of the same formula cannot see these; the checks reject
them because they compare against independent references (brute force, numerical optimisation,
the definition). ``python packages/theory/tests/test_mutations.py`` prints the table (tried /
rejected per module) used in docs/theory.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from certkit.theory import (
    accuracy_disparity,
    boundary_tilting,
    comp_sum,
    convex_relu,
    grokking,
    layer_lipschitz,
    ldr_loss,
    optimistic_omd,
)
from certkit.theory._common import TheoryCheckError

Mutation = tuple[Any, str, Callable[[Any], Any]]   # (module, attribute, factory(original) -> replacement)
MUTATIONS: dict[str, Mutation] = {}


def mutation(name: str, module: Any, attr: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    def register(factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        MUTATIONS[f"{module.NAME}: {name}"] = (module, attr, factory)
        return factory
    return register


# --- comp-sum ----------------------------------------------------------------------------------


def _comp_sum(gce: Callable[[Any, float, int], Any] | None = None, mae: Callable[[Any, int], Any] | None = None,
              below1: Callable[[Any, float], Any] | None = None) -> Callable[[Any], Any]:
    """closed_form with one branch replaced; ``mean`` is ((1+t)^r + (1-t)^r)/2)^(2-tau)."""
    def factory(orig: Any) -> Any:
        def closed_form(t: Any, tau: float, n: int = 2) -> Any:
            t = np.asarray(t, dtype=np.float64)
            r = 1.0 / (2.0 - tau) if tau < 2 else 0.0
            mean = ((np.power(1 + t, r) + np.power(1 - t, r)) / 2.0) ** (2.0 - tau)
            if gce is not None and 1.0 < tau < 2.0:
                return gce(mean, tau, n)
            if mae is not None and tau == 2.0:
                return mae(t, n)
            if below1 is not None and tau < 1.0:
                return below1(mean, tau)
            return orig(t, tau, n)
        return closed_form
    return factory


mutation("GCE without the 1/n^(tau-1) factor (the n = 2 form at every n)", comp_sum, "closed_form")(
    _comp_sum(gce=lambda mean, tau, n: (mean - 1.0) / ((tau - 1.0) * 2.0 ** (tau - 1.0))))
mutation("GCE with n^(2-tau) for n^(tau-1)", comp_sum, "closed_form")(
    _comp_sum(gce=lambda mean, tau, n: (mean - 1.0) / ((tau - 1.0) * n ** (2.0 - tau))))
mutation("GCE with 1/n for 1/n^(tau-1)", comp_sum, "closed_form")(
    _comp_sum(gce=lambda mean, tau, n: (mean - 1.0) / ((tau - 1.0) * n)))
mutation("GCE with 1/(2 - tau) for 1/(tau - 1)", comp_sum, "closed_form")(
    _comp_sum(gce=lambda mean, tau, n: (mean - 1.0) / ((2.0 - tau) * n ** (tau - 1.0))))
mutation("MAE t for t/n", comp_sum, "closed_form")(_comp_sum(mae=lambda t, n: t))
mutation("MAE t/(n-1) for t/n", comp_sum, "closed_form")(_comp_sum(mae=lambda t, n: t / (n - 1)))
mutation("sum-exp without 2^(1-tau)", comp_sum, "closed_form")(
    _comp_sum(below1=lambda mean, tau: (1.0 - mean) / (1.0 - tau)))
mutation("tau < 1 with 2^(tau-1) for 2^(1-tau)", comp_sum, "closed_form")(
    _comp_sum(below1=lambda mean, tau: 2.0 ** (tau - 1.0) / (1.0 - tau) * (1.0 - mean)))


@mutation("CE with the (1+t), (1-t) weights swapped", comp_sum, "closed_form")
def _ce_swapped(orig: Any) -> Any:
    def closed_form(t: Any, tau: float, n: int = 2) -> Any:
        if tau != 1.0:
            return orig(t, tau, n)
        t = np.asarray(t, dtype=np.float64)
        return np.abs((1 - t) / 2 * np.log1p(t) + (1 + t) / 2 * np.log(np.maximum(1 - t, 1e-300)))
    return closed_form


@mutation("smooth adversarial term with the Frobenius norm", comp_sum, "adversarial_smooth_term")
def _frobenius(orig: Any) -> Any:
    def term(w: Any, y: int, gamma: float) -> float:
        w = np.asarray(w, dtype=np.float64)
        return float(gamma * np.linalg.norm(w[y][None, :] - np.delete(w, y, axis=0)))
    return term


@mutation("smooth adversarial torch loss without nu", comp_sum, "smooth_adversarial_comp_sum_loss")
def _no_nu(orig: Any) -> Any:
    return lambda w, b, x, y, tau, nu, gamma: orig(w, b, x, y, tau, 1.0, gamma)


# --- accuracy disparity -------------------------------------------------------------------------


def _ad(rule: Callable[[dict[str, Any], SimpleNamespace], tuple[Any, float]]) -> Callable[[Any], Any]:
    """closed_form whose (w, b) come from ``rule(correct, args)`` (correct: the original closed
    form's output; args: mu, r, eps, sigma, norm, dist); everything it reports is then computed
    consistently from that (w, b)."""
    def factory(orig: Any) -> Any:
        def closed_form(R: float, eps: float = 0.0, sigma: float = 1.0, *, norm: str = "l2",
                        dist: str = "gaussian", mu: Any = accuracy_disparity.DEFAULT_MU) -> dict[str, Any]:
            out = dict(orig(R, eps, sigma, norm=norm, dist=dist, mu=mu))
            a = SimpleNamespace(mu=np.asarray(mu, dtype=np.float64), r=float(R), eps=float(eps),
                                sigma=float(sigma), norm=norm, dist=dist)
            w, b = rule(out, a)
            err = accuracy_disparity.robust_error(w, b, R, eps, sigma, norm=norm, dist=dist, mu=a.mu)
            std = accuracy_disparity.robust_error(w, b, R, 0.0, sigma, norm=norm, dist=dist, mu=a.mu)
            out.update(w=w, b=float(b), acc_pos=1 - std["err_pos"], acc_neg=1 - std["err_neg"],
                       disparity=std["err_neg"] - std["err_pos"], rob_acc_pos=1 - err["err_pos"],
                       rob_acc_neg=1 - err["err_neg"])
            return out
        return closed_form
    return factory


def _gauss_threshold(a: SimpleNamespace, m: float) -> float:
    return a.sigma**2 * math.log(a.r) / (2.0 * m)


def _gaussian_only(change: Callable[[dict[str, Any], SimpleNamespace], tuple[Any, float]],
                   norm: str | None = None) -> Callable[[Any], Any]:
    """Apply ``change`` to the Gaussian (and, if given, only the ``norm``) cases; others stay correct."""
    return _ad(lambda cf, a: change(cf, a) if a.dist == "gaussian" and norm in (None, a.norm)
               else (cf["w"], cf["b"]))


def _soft_threshold_half(cf: dict[str, Any], a: SimpleNamespace) -> tuple[Any, float]:
    s = np.sign(a.mu) * np.maximum(np.abs(a.mu) - a.eps / 2, 0.0)
    w = s / np.linalg.norm(s)
    return w, _gauss_threshold(a, float(w @ a.mu - a.eps * np.abs(w).sum()))


def _cauchy_l1_direction(cf: dict[str, Any], a: SimpleNamespace) -> tuple[Any, float]:
    if a.dist != "cauchy":
        return cf["w"], cf["b"]
    w = a.mu / np.abs(a.mu).sum()
    m = float(w @ a.mu - a.eps * np.abs(w).sum())
    return w, accuracy_disparity._cauchy_threshold(a.r, m, a.sigma) if m > 0 else cf["b"]


mutation("threshold ignores eps (b from the standard margin ||mu||)", accuracy_disparity, "closed_form")(
    _gaussian_only(lambda cf, a: (cf["w"], _gauss_threshold(a, float(np.linalg.norm(a.mu))))))
mutation("linf: w = mu/||mu|| (no soft threshold)", accuracy_disparity, "closed_form")(
    _gaussian_only(lambda cf, a: (a.mu / np.linalg.norm(a.mu), cf["b"]), norm="linf"))
mutation("linf: soft threshold at eps/2", accuracy_disparity, "closed_form")(
    _gaussian_only(_soft_threshold_half, norm="linf"))
mutation("threshold sigma log R / (2m) (sigma for sigma^2)", accuracy_disparity, "closed_form")(
    _gaussian_only(lambda cf, a: (cf["w"], cf["b"] / a.sigma)))
mutation("threshold without the 1/2", accuracy_disparity, "closed_form")(
    _gaussian_only(lambda cf, a: (cf["w"], 2 * cf["b"])))
mutation("Cauchy: w = mu/||mu||_1 instead of the largest coordinate", accuracy_disparity, "closed_form")(
    _ad(_cauchy_l1_direction))


@mutation("Cauchy: the smaller root, never b = +inf", accuracy_disparity, "_cauchy_threshold")
def _ad_cauchy_root(orig: Any) -> Any:
    def threshold(r: float, m: float, sigma: float) -> float:
        if r == 1.0:
            return 0.0
        a, bb, c = r - 1.0, -2.0 * (r + 1.0) * m, (r - 1.0) * (sigma**2 + m**2)
        disc = max(bb * bb - 4 * a * c, 0.0)
        return float((-bb - math.sqrt(disc)) / (2 * a))
    return threshold


@mutation("standard accuracy from the robust margin (eps not removed)", accuracy_disparity, "closed_form")
def _ad_acc_eps(orig: Any) -> Any:
    def closed_form(*a: Any, **k: Any) -> dict[str, Any]:
        out = dict(orig(*a, **k))
        if k.get("dist", "gaussian") == "gaussian":
            s = out["sigma"]
            out.update(acc_pos=float(ndtr((out["margin"] + out["b"]) / s)),
                       acc_neg=float(ndtr((out["margin"] - out["b"]) / s)))
        return out
    return closed_form


# --- LDR losses -------------------------------------------------------------------------------


@mutation("margin c on the true class instead of the others", ldr_loss, "_margins")
def _ldr_margin_true(orig: Any) -> Any:
    def margins(f: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
        fy = f.gather(1, y[:, None].long())
        off = torch.zeros_like(f)
        off.scatter_(1, y[:, None].long(), c)
        return off + f - fy
    return margins


@mutation("margin 2c", ldr_loss, "_margins")
def _ldr_double_c(orig: Any) -> Any:
    return lambda f, y, c: orig(f, y, 2 * c)


@mutation("psi without the outer lam", ldr_loss, "ldr_kl_loss")
def _ldr_no_lam(orig: Any) -> Any:
    def loss(logits: torch.Tensor, y: torch.Tensor, lam: Any = 1.0, c: float = 1.0, reduction: str = "mean") -> Any:
        lam_t = lam.reshape(-1, 1) if isinstance(lam, torch.Tensor) else torch.tensor(float(lam))
        z = ldr_loss._margins(logits, y, c)
        v = (torch.logsumexp(z / lam_t, dim=1, keepdim=True) - math.log(logits.shape[1]))[:, 0]
        return ldr_loss._reduce(v, reduction)
    return loss


@mutation("psi with log-sum instead of log-mean (no -log K)", ldr_loss, "ldr_kl_loss")
def _ldr_sum(orig: Any) -> Any:
    def loss(logits: torch.Tensor, y: torch.Tensor, lam: Any = 1.0, c: float = 1.0, reduction: str = "mean") -> Any:
        k = logits.shape[1]
        lam_v = lam if isinstance(lam, torch.Tensor) else torch.tensor(float(lam))
        return orig(logits, y, lam, c, reduction) + ldr_loss._reduce(lam_v * math.log(k) * torch.ones(len(y)),
                                                                     reduction)
    return loss


@mutation("c = 0 minimiser log p (no lam)", ldr_loss, "closed_form")
def _ldr_cf(orig: Any) -> Any:
    return lambda p, lam=1.0: orig(p, 1.0)


@mutation("ALDR penalty with + instead of -", ldr_loss, "aldr_kl_loss")
def _aldr_sign(orig: Any) -> Any:
    def loss(logits: torch.Tensor, y: torch.Tensor, lam0: float = 1.0, alpha: float = 2.0, c: float = 1.0,
             reduction: str = "mean") -> Any:
        lam = ldr_loss.adaptive_lambda(logits, y, lam0, alpha, c)
        pen = alpha * math.log(logits.shape[1]) / (2.0 * lam0) * (lam - lam0) ** 2
        return ldr_loss._reduce(ldr_loss.ldr_kl_loss(logits, y, lam, c, reduction="none") + pen, reduction)
    return loss


@mutation("ALDR lam by the authors' one-step update from lam0", ldr_loss, "adaptive_lambda")
def _aldr_one_step(orig: Any) -> Any:
    def lam(logits: torch.Tensor, y: torch.Tensor, lam0: float = 1.0, alpha: float = 2.0, c: float = 1.0,
            iters: int = 40) -> torch.Tensor:
        return ldr_loss.authors_lambda_step(logits, torch.full((logits.shape[0],), lam0, dtype=logits.dtype),
                                            lam0, alpha)
    return lam


@mutation("ALDR lam from the margin-free KL (the authors' update, solved exactly)", ldr_loss, "adaptive_lambda")
def _aldr_no_margin(orig: Any) -> Any:
    return lambda logits, y, lam0=1.0, alpha=2.0, c=1.0, iters=40: orig(logits, y, lam0, alpha, 0.0, iters)


# --- boundary tilting ---------------------------------------------------------------------------


@mutation("d_adv without the 1/2", boundary_tilting, "closed_form")
def _bt_half(orig: Any) -> Any:
    return lambda i, j, w: 2 * orig(i, j, w)


@mutation("d_adv with sin for cos", boundary_tilting, "closed_form")
def _bt_sin(orig: Any) -> Any:
    def closed_form(i: Any, j: Any, w: Any) -> float:
        i, j, w = (np.asarray(a, dtype=np.float64) for a in (i, j, w))
        return float(0.5 * np.linalg.norm(j - i) * abs(np.sin(boundary_tilting.angle(w, j - i))))
    return closed_form


@mutation("d_adv with ||j - i||^2", boundary_tilting, "closed_form")
def _bt_square(orig: Any) -> Any:
    def closed_form(i: Any, j: Any, w: Any) -> float:
        i, j, w = (np.asarray(a, dtype=np.float64) for a in (i, j, w))
        return float(0.5 * np.sum((j - i) ** 2) * abs(np.cos(boundary_tilting.angle(w, j - i))))
    return closed_form


@mutation("d_adv with cos^2", boundary_tilting, "closed_form")
def _bt_cos2(orig: Any) -> Any:
    def closed_form(i: Any, j: Any, w: Any) -> float:
        i, j, w = (np.asarray(a, dtype=np.float64) for a in (i, j, w))
        return float(0.5 * np.linalg.norm(j - i) * np.cos(boundary_tilting.angle(w, j - i)) ** 2)
    return closed_form


# --- optimistic OMD -------------------------------------------------------------------------------


def _omd(step_next: bool = True, noise_factor: str = "d", comparator: str = "mean") -> Callable[[Any], Any]:
    """closed_form with one piece changed: the optimistic step size (eta_{t+1} vs eta_t), the
    noise term's factor d, or the comparator x*."""
    def factory(orig: Any) -> Any:
        def closed_form(c: Any, v: Any, *, algo: str = "oomd", schedule: str = "strongly-convex") -> float:
            c, v = np.asarray(c, dtype=np.float64), np.asarray(v, dtype=np.float64)
            t_len, d = c.shape
            eta = optimistic_omd._steps(t_len, schedule)
            a_hat, b_hat = np.zeros(d), np.zeros(t_len)
            a, b = np.zeros(d), np.zeros(t_len)
            fac = d if noise_factor == "d" else 1.0
            total = 0.0
            for t in range(t_len):
                total += 0.5 * (float(((a - c[t]) ** 2).sum()) + fac * float((b[:t] ** 2 * v[:t]).sum()))
                ga, gb = a - c[t], b.copy()
                gb[t] -= 1.0
                if algo == "ogd":
                    a, b = a - eta[t] * ga, b - eta[t] * gb
                else:
                    e = eta[t + 1] if step_next else eta[t]
                    a_hat, b_hat = a_hat - eta[t] * ga, b_hat - eta[t] * gb
                    a, b = a_hat - e * ga, b_hat - e * gb
            xstar = c.mean(axis=0) if comparator == "mean" else c[-1]
            return total - 0.5 * float(((xstar - c) ** 2).sum())
        return closed_form
    return factory


mutation("optimistic step with eta_t for eta_{t+1}", optimistic_omd, "closed_form")(_omd(step_next=False))
mutation("noise term without the factor d", optimistic_omd, "closed_form")(_omd(noise_factor="1"))
mutation("comparator the last centre instead of the mean", optimistic_omd, "closed_form")(_omd(comparator="last"))


@mutation("noise variance of the comparator's loss dropped (regret + d v / 2 per round)", optimistic_omd,
          "closed_form")
def _omd_var(orig: Any) -> Any:
    def closed_form(c: Any, v: Any, **k: Any) -> float:
        c, v = np.asarray(c, dtype=np.float64), np.asarray(v, dtype=np.float64)
        return orig(c, v, **k) + 0.5 * c.shape[1] * float(v.sum())
    return closed_form


# --- grokking -------------------------------------------------------------------------------------


@mutation("correct-class logit 9/2 p/2 instead of 9/2 (p-1)/2", grokking, "closed_form")
def _grok_p(orig: Any) -> Any:
    def closed_form(p: int) -> Any:
        a, b, q = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
        return np.where((a + b - q) % p == 0, 4.5 * p / 2, -2.25)
    return closed_form


@mutation("wrong-class logit -9/2 instead of -9/4", grokking, "closed_form")
def _grok_wrong(orig: Any) -> Any:
    def closed_form(p: int) -> Any:
        a, b, q = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
        return np.where((a + b - q) % p == 0, 4.5 * (p - 1) / 2, -4.5)
    return closed_form


@mutation("label (a - b) mod p", grokking, "closed_form")
def _grok_minus(orig: Any) -> Any:
    def closed_form(p: int) -> Any:
        a, b, q = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
        return np.where((a - b - q) % p == 0, 4.5 * (p - 1) / 2, -2.25)
    return closed_form


@mutation("IPR of |rfft| instead of |rfft|^2", grokking, "vector_ipr")
def _grok_ipr_abs(orig: Any) -> Any:
    def vector_ipr(x: Any, r: int = 2) -> Any:
        pw = np.abs(np.fft.rfft(np.atleast_2d(np.asarray(x, dtype=np.float64)), axis=1))
        return (pw**r).sum(1) / pw.sum(1) ** r
    return vector_ipr


@mutation("IPR over the full complex DFT (a cosine scores 1/2)", grokking, "vector_ipr")
def _grok_ipr_fft(orig: Any) -> Any:
    def vector_ipr(x: Any, r: int = 2) -> Any:
        pw = np.abs(np.fft.fft(np.atleast_2d(np.asarray(x, dtype=np.float64)), axis=1)) ** 2
        return (pw**r).sum(1) / pw.sum(1) ** r
    return vector_ipr


# --- layer Lipschitz ----------------------------------------------------------------------------


@mutation("Frobenius norm for the spectral norm", layer_lipschitz, "closed_form")
def _ll_fro(orig: Any) -> Any:
    def closed_form(weights: Any) -> dict[str, Any]:
        norms = [float(np.linalg.norm(np.asarray(w, dtype=np.float64))) for w in weights]
        return {"layer_norms": norms, "L": float(np.prod(norms))}
    return closed_form


@mutation("sum of the layer norms for their product", layer_lipschitz, "closed_form")
def _ll_sum(orig: Any) -> Any:
    def closed_form(weights: Any) -> dict[str, Any]:
        out = orig(weights)
        return {**out, "L": float(np.sum(out["layer_norms"]))}
    return closed_form


@mutation("certified radius margin / L (no sqrt 2)", layer_lipschitz, "certified_radius")
def _ll_sqrt2(orig: Any) -> Any:
    return lambda margin, lip: np.asarray(margin, dtype=np.float64) / lip


@mutation("certified radius margin / (2 L)", layer_lipschitz, "certified_radius")
def _ll_two(orig: Any) -> Any:
    return lambda margin, lip: np.asarray(margin, dtype=np.float64) / (2.0 * lip)


# --- convex ReLU ------------------------------------------------------------------------------------


@mutation("network from the convex solution with u = v, a = +-1", convex_relu, "network_from_convex")
def _cr_net(orig: Any) -> Any:
    def net(v: Any, w: Any, tol: float = 1e-8) -> tuple[Any, Any]:
        keep_v, keep_w = np.linalg.norm(v, axis=1) > tol, np.linalg.norm(w, axis=1) > tol
        return np.concatenate([v[keep_v], w[keep_w]]), np.r_[np.ones(keep_v.sum()), -np.ones(keep_w.sum())]
    return net


@mutation("convex objective with beta/2 on the group norms", convex_relu, "solve_convex")
def _cr_half_beta(orig: Any) -> Any:
    def solve(x: Any, y: Any, beta: float, pats: Any, **k: Any) -> dict[str, Any]:
        out = orig(x, y, beta, pats, **k)
        reg = beta * float(np.linalg.norm(out["v"], axis=1).sum() + np.linalg.norm(out["w"], axis=1).sum())
        return {**out, "objective": out["objective"] - reg / 2}
    return solve


@mutation("convex objective without the activation masks D_i", convex_relu, "solve_convex")
def _cr_no_mask(orig: Any) -> Any:
    def solve(x: Any, y: Any, beta: float, pats: Any, **k: Any) -> dict[str, Any]:
        out = orig(x, y, beta, pats, **k)
        fit = 0.5 * float(((x @ (out["v"] - out["w"]).T).sum(1) - y) ** 2 @ np.ones(len(y)))
        reg = beta * float(np.linalg.norm(out["v"], axis=1).sum() + np.linalg.norm(out["w"], axis=1).sum())
        return {**out, "objective": fit + reg}
    return solve


# ---------------------------------------------------------------------------------------------------


def _clear_caches(module: Any) -> None:
    """Drop the module's cached results that a mutated function feeds (trained weights and
    Adam runs do not depend on the formulas and stay cached)."""
    caches = {convex_relu: (convex_relu._solution, convex_relu._simulate), layer_lipschitz: (layer_lipschitz._simulate,)}
    for fn in caches.get(module, ()):
        fn.cache_clear()


def rejects(name: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    module, attr, factory = MUTATIONS[name]
    orig = getattr(module, attr)
    replacement = factory(orig)
    monkeypatch.setattr(module, attr, replacement)
    _clear_caches(module)
    try:
        module.check("quick")
    except TheoryCheckError:
        return True
    finally:
        monkeypatch.undo()
        _clear_caches(module)
    return False


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_check_rejects_wrong_formula(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rejects(name, monkeypatch), f"check() passed the wrong formula: {name}"


def test_every_theory_module_has_mutations() -> None:
    from certkit.theory import registry

    covered = {m.NAME for m, _, _ in MUTATIONS.values()}
    assert covered == set(registry.PAPERS)
    assert all(sum(m.NAME == p for m, _, _ in MUTATIONS.values()) >= 3 for p in registry.PAPERS)


if __name__ == "__main__":
    mp = pytest.MonkeyPatch()
    table: dict[str, list[int]] = {}
    for key in MUTATIONS:
        ok = rejects(key, mp)
        mod = key.split(":")[0]
        table.setdefault(mod, [0, 0])
        table[mod][0] += 1
        table[mod][1] += ok
        print(f"{'rejected' if ok else 'PASSED  '}  {key}")
    print("\n| module | mutations tried | rejected by check() |\n| --- | --- | --- |")
    for mod, (n, k) in table.items():
        print(f"| {mod} | {n} | {k} |")
