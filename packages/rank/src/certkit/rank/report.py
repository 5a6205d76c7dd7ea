"""The ranking section of ``certkit report``: the robustness table and the CRQ@K plot on
the embedded default collection (quick), plus Cranfield and Vaswani when present (--full)."""

from __future__ import annotations

import time

from certkit.core.report import ReportContext, Section, Table, figure_from_matplotlib
from certkit.rank.collections import (
    default_collection,
    load_cranfield,
    load_vaswani,
    shared_data_dir,
)
from certkit.rank.rankers import BM25Ranker
from certkit.rank.robustness import COLUMNS, crq_plot, robustness_table


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
    colls = [default_collection()]
    if ctx.full:
        data = shared_data_dir() / "ir"
        if (data / "cranfield").exists():
            colls.append(load_cranfield(data / "cranfield"))
        if (data / "vaswani").exists():
            colls.append(load_vaswani(data / "vaswani"))
    syn, syn_name = _synonyms()
    nq, n, depth = (40, 2000, 20) if ctx.full else (8, 500, 12)
    rows, details = robustness_table({"BM25 (bm25s)": lambda c: BM25Ranker(c.corpus)}, colls, syn,
                                     n_queries=nq, depth=depth, n=n, alpha=0.05, seed=ctx.seed)
    fig = figure_from_matplotlib(crq_plot(details), "rank_crq",
                                 "CRQ@K on the embedded collection: CertDR (WordNet closure smoothing, "
                                 "attack = WordNet synonyms) and random masking (30%, one substituted word).")
    det = details["BM25 (bm25s)"]
    summary = {"bm25_ndcg10_default": round(det["ndcg10"], 4),
               "crq_at_1": det["crq"][1], "crq_at_10": det["crq"][10],
               "mask_crq_at_1": det["mask_crq"][1],
               "attack_success_rate": det["attack"]["success_rate"]}
    summary.update({f"ood_ndcg10_{k}": round(v, 4) for k, v in det["ood"].items()})
    return [Section(
        domain="rank", title="Ranking robustness (BM25, embedded collection)",
        summary=summary,
        tables=[Table("rank_robustness", COLUMNS, rows,
                      f"{nq} queries, top-{depth} candidates, n={n} samples per document, alpha=0.05 "
                      f"(Bonferroni over the candidates); synonyms: {syn_name}.")],
        figures=[fig],
        text=("i.i.d. (mean, per-query std, worst 10% nDCG@10), OOD (other collections), "
              "adversarial (PRADA-like word substitution, 20% budget) and certified (CRQ@K) "
              "robustness, following the taxonomy of 'Are Neural Ranking Models Robust?'."),
        reproduce="certkit report --only rank",
        full="all 40 queries, top-20 candidates, n=2000 samples, plus Cranfield and Vaswani as OOD collections "
             "when ../shared/data/ir is present",
        seconds=time.perf_counter() - t0)]
