"""The ranking section of ``certkit report``: the robustness table (BM25 and the trained
K-NRM ranker) and the CRQ@K plot on the held-out queries of the embedded default
collection (quick), plus Cranfield and Vaswani when present (--full). K-NRM is trained on
the other queries once and cached under ``ctx.cache_dir/rank``."""

from __future__ import annotations

import time

from certkit.core.report import ReportContext, Section, Table, figure_from_matplotlib
from certkit.rank.collections import (
    Collection,
    default_collection,
    load_cranfield,
    load_vaswani,
    shared_data_dir,
)
from certkit.rank.metrics import evaluate
from certkit.rank.neural import NeuralRanker, load_or_train_knrm, split_queries
from certkit.rank.rankers import BM25Ranker, rerank
from certkit.rank.robustness import COLUMNS, crq_plot, robustness_table

QUICK_STEPS = 300   # K-NRM training steps in quick mode (about 30 s on 2 idle cores)
FULL_STEPS = 1500


def _heldout(ranker: NeuralRanker, coll: Collection, test: list[str]) -> dict[str, float]:
    """nDCG@10 / MAP of K-NRM re-ranking BM25's top 100 on the held-out queries, with BM25's."""
    qs = {q: coll.queries[q] for q in test}
    qrels = {q: coll.qrels.get(q, {}) for q in test}
    cand = BM25Ranker(coll.corpus).retrieve(qs, 100)
    ev_b = evaluate(cand, qrels, ["ndcg@10", "map"], warn_unknown=False).mean()
    ev_k = evaluate(rerank(ranker, qs, cand, coll.corpus), qrels, ["ndcg@10", "map"], warn_unknown=False).mean()
    return {"knrm_ndcg10": ev_k["ndcg@10"], "knrm_map": ev_k["map"],
            "bm25_ndcg10": ev_b["ndcg@10"], "bm25_map": ev_b["map"]}


def _knrm(ctx: ReportContext, coll: Collection, steps: int) -> tuple[NeuralRanker, list[str], bool]:
    train, test = split_queries(list(coll.qrels), 0.3, seed=ctx.seed)
    ranker, cached = load_or_train_knrm(ctx.cache_dir / "rank", coll.name, coll.corpus,
                                        {q: coll.queries[q] for q in train}, coll.qrels,
                                        steps=steps, seed=ctx.seed)
    return ranker, test, cached


def _synonyms():
    from certkit.rank.synonyms import (
        DEFAULT_WORDNET,
        EmbeddingNeighbours,
        WordNetSynonyms,
        cooccurrence_embeddings,
    )

    if (DEFAULT_WORDNET / "index.noun").exists():
        return WordNetSynonyms(max_senses=2), "WordNet (first 2 senses)"
    words, vec = cooccurrence_embeddings(default_collection().corpus.values(), dim=30)
    return EmbeddingNeighbours(words, vec, threshold=0.8), "co-occurrence embedding neighbours (cos >= 0.8)"


def sections(ctx: ReportContext) -> list[Section]:
    t0 = time.perf_counter()
    default = default_collection()
    steps = FULL_STEPS if ctx.full else QUICK_STEPS
    knrm, test, cached = _knrm(ctx, default, steps)
    neural_rows = [["embedded (default)", len(test), *[round(v, 4) for v in _heldout(knrm, default, test).values()]]]
    held = neural_rows[0]
    colls = [default.subset(test)]
    data = shared_data_dir() / "ir"
    if ctx.full:
        if (data / "cranfield").exists():
            cran = load_cranfield(data / "cranfield")
            colls.append(cran)
            k2, t2, _ = _knrm(ctx, cran, steps)
            neural_rows.append(["cranfield", len(t2), *[round(v, 4) for v in _heldout(k2, cran, t2).values()]])
        if (data / "vaswani").exists():
            colls.append(load_vaswani(data / "vaswani"))
    syn, syn_name = _synonyms()
    nq, n, depth = (40, 2000, 20) if ctx.full else (8, 500, 12)
    rankers = {"BM25 (bm25s)": lambda c: BM25Ranker(c.corpus),
               "K-NRM (trained)": lambda c: knrm.with_corpus(c.corpus)}
    rows, details = robustness_table(rankers, colls, syn, n_queries=nq, depth=depth, n=n, alpha=0.05,
                                     seed=ctx.seed)
    fig = figure_from_matplotlib(crq_plot(details), "rank_crq",
                                 "CRQ@K on held-out queries of the embedded collection: CertDR (closure smoothing, "
                                 "attack = the synonym source) and random masking (30%, one substituted word).")
    det = details["BM25 (bm25s)"]
    kd = details["K-NRM (trained)"]
    summary = {"bm25_ndcg10_default": round(det["ndcg10"], 4),
               "crq_at_1": det["crq"][1], "crq_at_10": det["crq"][10],
               "mask_crq_at_1": det["mask_crq"][1],
               "attack_success_rate": det["attack"]["success_rate"],
               "knrm_ndcg10_heldout": held[2], "knrm_map_heldout": held[3],
               "knrm_crq_at_1": kd["crq"][1], "knrm_attack_success_rate": kd["attack"]["success_rate"],
               "knrm_from_cache": cached}
    summary.update({f"ood_ndcg10_{k}": round(v, 4) for k, v in det["ood"].items()})
    n_cert = min(nq, len(test))  # the summary card of `certkit report` (certkit.report.headline)
    summary["headline"] = {
        "label": "certified robust query rate at K = 10 (CRQ@10): queries whose BM25 top 10 is "
                 "certified against synonym substitution (CertDR)",
        "value": det["crq"][10], "format": "percent", "n": n_cert, "of": "held-out queries",
        "successes": round(det["crq"][10] * n_cert),
        "note": f"BM25 nDCG@10 on the embedded collection: {det['ndcg10']:.3f}."}
    return [Section(
        domain="rank", title="Ranking robustness (BM25 and K-NRM, embedded collection)",
        summary=summary,
        tables=[Table("rank_robustness", COLUMNS, rows,
                      f"Held-out queries ({len(test)}) of the embedded collection (K-NRM trained on the rest); "
                      f"attack/certificates on {min(nq, len(test))} queries, top-{depth} candidates, n={n} samples "
                      f"per document, alpha=0.05 (Bonferroni over the candidates); synonyms: {syn_name}.",
                      n=n_cert, of="queries"),
                Table("rank_neural", ["collection", "held-out queries", "K-NRM nDCG@10", "K-NRM MAP",
                                      "BM25 nDCG@10", "BM25 MAP"], neural_rows,
                      f"K-NRM ({steps} steps of 32 pairwise triples, hashed vocabulary, IDF gate) re-ranking "
                      "BM25's top 100 on held-out queries (30%, seeded split).")],
        figures=[fig],
        text=("i.i.d. (mean, per-query std, worst 10% nDCG@10), OOD (other collections; K-NRM keeps its "
              "weights and takes the target collection's IDF), adversarial (PRADA-like word substitution, "
              "20% budget) and certified (CRQ@K) robustness, following the taxonomy of 'Are Neural Ranking "
              "Models Robust?'."),
        reproduce="certkit report --only rank",
        full=f"K-NRM trained {FULL_STEPS} steps (also on Cranfield), all held-out queries, top-20 candidates, "
             "n=2000 samples, plus Cranfield and Vaswani as OOD collections when ../shared/data/ir is present",
        seconds=time.perf_counter() - t0)]
