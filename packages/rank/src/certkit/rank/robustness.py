"""Robustness report for rankers, after the taxonomy of "Are Neural Ranking Models
Robust?" (Wu et al., arXiv:2108.05018, id as recalled): per ranker,

- i.i.d. effectiveness: mean nDCG@10, its per-query standard deviation and the mean over
  the worst 10% of queries;
- out-of-distribution: nDCG@10 on every other collection given (embedded → Cranfield →
  Vaswani when present);
- adversarial: PRADA-like attack success rate / top-10 rate / perturbation % (gradient-
  guided candidates for rankers with ``substitution_gains``, e.g. K-NRM), and the
  certified robust query rate CRQ@K (CertDR with closure smoothing, and random masking
  at radius 1).

:func:`robustness_table` returns rows for a table; :func:`crq_plot` draws CRQ@K.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from certkit.rank.attacks import attack_metrics, substitution_attack
from certkit.rank.certify import certify_run, crq
from certkit.rank.collections import Collection
from certkit.rank.metrics import evaluate, rank_docs
from certkit.rank.rankers import BM25Ranker, Ranker, rerank
from certkit.rank.smoothing import DEFAULT_KS
from certkit.rank.synonyms import SynonymSource

__all__ = ["COLUMNS", "crq_plot", "robustness_row", "robustness_table"]

COLUMNS = ["ranker", "collection", "nDCG@10", "std", "worst10%", "OOD nDCG@10",
           "attack success", "attack top10", "perturb %", "CRQ@1", "CRQ@5", "CRQ@10",
           "maskCRQ@1", "maskCRQ@10"]


def _run(ranker: Ranker, coll: Collection, first_stage: BM25Ranker, depth: int) -> dict:
    cand = first_stage.retrieve(coll.queries, depth)
    if isinstance(ranker, BM25Ranker) and ranker is first_stage:
        return cand
    return rerank(ranker, coll.queries, cand, coll.corpus)


def robustness_row(name: str, make_ranker: Callable[[Collection], Ranker], coll: Collection,
                   others: Sequence[Collection], synonyms: SynonymSource, *,
                   n_queries: int = 10, depth: int = 20, n: int = 200, alpha: float = 0.05,
                   seed: int = 0) -> tuple[list[Any], dict[str, Any]]:
    """One table row for a ranker built per collection by ``make_ranker``; plus details
    (per-K CRQ curves) for plotting."""
    ranker = make_ranker(coll)
    first = ranker if isinstance(ranker, BM25Ranker) else BM25Ranker(coll.corpus)
    run = _run(ranker, coll, first, 100)
    ev = evaluate(run, coll.qrels, ["ndcg@10"], warn_unknown=False)
    ood = []
    for o in others:
        r2 = make_ranker(o)
        f2 = r2 if isinstance(r2, BM25Ranker) else BM25Ranker(o.corpus)
        ood.append(evaluate(_run(r2, o, f2, 100), o.qrels, ["ndcg@10"], warn_unknown=False).mean()["ndcg@10"])
    qids = sorted(coll.queries)[:n_queries]
    qs = {q: coll.queries[q] for q in qids}
    cand = first.retrieve(qs, depth)
    if not (isinstance(ranker, BM25Ranker) and ranker is first):
        cand = rerank(ranker, qs, cand, coll.corpus)
    # attack: the document at rank 50 of each query's top 100, 20% of its words; rankers
    # with gradients get the gradient-guided candidate order
    guide = "gradient" if hasattr(ranker, "substitution_gains") else "none"
    att = {q: run[q] for q in qids if q in run}
    results = []
    for q in qids:
        ranked = rank_docs(att.get(q, {}))
        if len(ranked) < 3:
            continue
        t = ranked[len(ranked) // 2]
        others_s = np.array([att[q][d] for d in ranked if d != t])
        results.append(substitution_attack(ranker, qs[q], coll.corpus[t], others_s, synonyms,
                                           max_fraction=0.2, max_candidates=8, guide=guide))
    am = attack_metrics(results)
    # CertDR over per-query synonym closures (each query's own candidates' words)
    cert = certify_run(ranker, qs, cand, coll.corpus, synonyms, depth=depth, n=n, alpha=alpha,
                       seed=seed, closure=True, bound="hybrid")
    mask = certify_run(ranker, qs, cand, coll.corpus, None, depth=depth, n=n, alpha=alpha,
                       seed=seed, method="masking", mask_rate=0.3, max_radius=3, bound="hybrid")
    c_cert = crq(cert, DEFAULT_KS)
    c_mask = crq(mask, DEFAULT_KS, radius=1)
    mean, std, worst = ev.mean()["ndcg@10"], ev.std()["ndcg@10"], ev.worst(0.1)["ndcg@10"]
    row = [name, coll.name, round(mean, 4), round(std, 4), round(worst, 4),
           " / ".join(f"{o.name}={v:.3f}" for o, v in zip(others, ood, strict=True)) or "-",
           round(am["success_rate"], 3), round(am["top10_rate"], 3), round(am["perturbation_pct"], 2),
           round(c_cert[1], 3), round(c_cert[5], 3), round(c_cert[10], 3),
           round(c_mask[1], 3), round(c_mask[10], 3)]
    return row, {"crq": c_cert, "mask_crq": c_mask, "attack": am, "ndcg10": mean,
                 "ood": {o.name: v for o, v in zip(others, ood, strict=True)}}


def robustness_table(rankers: Mapping[str, Callable[[Collection], Ranker]],
                     collections: Sequence[Collection], synonyms: SynonymSource,
                     **kwargs: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    """Rows for every ranker on the first collection (the others are its OOD targets)."""
    rows, details = [], {}
    for name, make in rankers.items():
        row, det = robustness_row(name, make, collections[0], collections[1:], synonyms, **kwargs)
        rows.append(row)
        details[name] = det
    return rows, details


def crq_plot(details: Mapping[str, Any], title: str = "Certified robust query rate") -> Any:
    """Matplotlib figure: CRQ@K for K in DEFAULT_KS, one CertDR and one masking line per ranker."""
    from certkit.core.report import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ks = list(DEFAULT_KS)
    for name, det in details.items():
        ax.plot(ks, [det["crq"][k] for k in ks], marker="o", label=f"{name} CertDR (closure)")
        ax.plot(ks, [det["mask_crq"][k] for k in ks], marker="s", ls="--", label=f"{name} masking R=1")
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks], fontsize=7)
    ax.set_xlabel("K")
    ax.set_ylabel("CRQ@K")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
