"""Ranking / IR: certkit.rank vs its anchors on identical work.

1. Retrieval throughput: ``BM25Ranker.retrieve`` (a run dict) vs bm25s' own
   ``tokenize`` + ``retrieve`` (arrays) on the same index and queries. Target: within 10%.
2. Certification overhead: ``certify_query`` (sampling substitutions from the core sampler,
   scoring, bounds, TV bounds, decision) vs the raw BM25 scoring of the same perturbed
   documents, two ways: (a) ``BM25Ranker.score`` of the perturbed texts (built beforehand,
   not timed) and (b) ``BM25Ranker.score_choices_batch`` of the pre-sampled index arrays
   (the scoring kernel certification itself uses: the strict baseline). Target: overhead <= 20%.
3. Effectiveness: BM25 on Cranfield and Vaswani (when ../shared/data/ir is present):
   our metrics vs pytrec_eval's on the same run (must match exactly), next to the
   published BM25 figures (Vaswani nDCG@10 about 0.43, MAP about 0.28; Cranfield MAP about
   0.31 with the file-order qrels mapping).

Timings are minima over interleaved repeats (ours, anchor, anchor, ours, ...): on a shared
machine single timings of the same bm25s call vary 5x, so read ratios near 1 as "equal".
Our retrieve path is bm25s.tokenize + bm25s.BM25.retrieve on the same arguments plus one
vectorised run-dict build; no per-query Python work of ours.

Usage: python benchmarks/rank.py [--quick]
Ends with one JSON line per comparison; the last is the headline (retrieval throughput).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import best_time, emit, print_table

from certkit.rank.collections import (
    default_collection,
    load_cranfield,
    load_vaswani,
    shared_data_dir,
)
from certkit.rank.metrics import evaluate
from certkit.rank.rankers import BM25Ranker


def bench_retrieval(corpus: dict[str, str], queries: dict[str, str], k: int, reps: int) -> tuple[float, float]:
    import bm25s
    import Stemmer

    ranker = BM25Ranker(corpus)
    qtexts = list(queries.values())
    st = Stemmer.Stemmer("english")
    anchor = bm25s.BM25(k1=1.2, b=0.75)
    anchor.index(bm25s.tokenize(list(corpus.values()), stopwords="en", stemmer=st, show_progress=False),
                 show_progress=False)

    def ours() -> None:
        ranker.retrieve(queries, k)

    def theirs() -> None:
        qt = bm25s.tokenize(qtexts, stopwords="en", stemmer=st, show_progress=False, return_ids=False)
        anchor.retrieve(qt, k=k, show_progress=False, n_threads=1)

    return interleaved_min(ours, theirs, reps)


def interleaved_min(a: Callable[[], object], b: Callable[[], object], reps: int) -> tuple[float, float]:
    """Min wall time of each, alternating a, b, b, a, ... so that load spikes on the shared
    machine hit both sides alike."""
    a()
    b()
    ta, tb = [], []
    for r in range(reps):
        for fn, acc in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return min(ta), min(tb)


def bench_certify(quick: bool) -> tuple[float, float, float, int]:
    from certkit.rank.certdr import (
        certify_query,
        sample_indices,
        smoothed_values,
        split_words,
        substitution_sets,
    )
    from certkit.rank.metrics import rank_docs
    from certkit.rank.rankers import choice_texts
    from certkit.rank.smoothing import ScoreTransform, stream_key
    from certkit.rank.synonyms import DEFAULT_WORDNET, DictSynonyms, WordNetSynonyms

    coll = default_collection()
    ranker = BM25Ranker(coll.corpus)
    syn = WordNetSynonyms(max_senses=2) if (DEFAULT_WORDNET / "index.noun").exists() else DictSynonyms({})
    qid = sorted(coll.queries)[0]
    q = coll.queries[qid]
    ranked = rank_docs(ranker.retrieve({qid: q}, 20)[qid])
    docs = [coll.corpus[d] for d in ranked]
    n = 200 if quick else 1000
    tr = ScoreTransform.fit(ranker.score(q, docs))
    sets = [substitution_sets(split_words(d), syn) for d in docs]
    idx = [sample_indices([len(x) for x in s], n, seed=0, stream=stream_key(0, j)) for j, s in enumerate(sets)]
    variants = [choice_texts(s, i) for s, i in zip(sets, idx, strict=True)]
    # warm the synonym cache so every side sees the same lookups
    certify_query(ranker, q, docs, syn, n=2, transform=tr)

    def ours() -> None:
        certify_query(ranker, q, docs, syn, n=n, transform=tr, budget=2)

    def raw_text() -> None:
        smoothed_values(ranker, q, variants, tr)

    items = list(zip(sets, idx, strict=True))

    def raw_choice() -> None:
        ranker.score_choices_batch(q, items)

    reps = 15 if quick else 41
    t_ours, t_choice = interleaved_min(ours, raw_choice, reps)
    return t_ours, best_time(raw_text, 3, 1), t_choice, n * len(docs)


def effectiveness() -> list[list[object]]:
    import pytrec_eval

    rows: list[list[object]] = []
    data = shared_data_dir() / "ir"
    published = {"vaswani": {"ndcg@10": 0.43, "map": 0.28}, "cranfield": {"map": 0.31}}
    for name, loader in (("cranfield", load_cranfield), ("vaswani", load_vaswani)):
        if not (data / name).exists():
            print(f"[skip] {data / name} absent: no {name} effectiveness check", file=sys.stderr)
            continue
        coll = loader(data / name)
        run = BM25Ranker(coll.corpus).retrieve(coll.queries, 1000)
        ev = evaluate(run, coll.qrels, ["ndcg@10", "map"])
        ref = pytrec_eval.RelevanceEvaluator(coll.qrels, {"ndcg_cut_10", "map"}).evaluate(run)
        for m, pm in (("ndcg@10", "ndcg_cut_10"), ("map", "map")):
            ours = dict(zip(ev.qids, ev.per_query[m], strict=True))
            ref_mean = float(np.mean([ref[q][pm] if q in ref else 0.0 for q in ev.qids]))
            maxdiff = max(abs(ours[q] - (ref[q][pm] if q in ref else 0.0)) for q in ev.qids)
            rows.append([name, m, round(float(ev.mean()[m]), 4), round(ref_mean, 4), f"{maxdiff:.1e}",
                         published[name].get(m, "-")])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 5 if args.quick else 15

    eff = effectiveness()
    if eff:
        print_table("BM25 effectiveness (ours vs pytrec_eval vs published)",
                    ["collection", "metric", "ours", "pytrec_eval", "max |diff|", "published"], eff)

    t_cert, t_text, t_choice, n_docs = bench_certify(args.quick)
    print_table(f"Certification overhead (CertDR on BM25, 20 candidates, {n_docs} perturbed docs)",
                ["baseline", "certify_s", "raw_scoring_s", "overhead %"],
                [["score(perturbed texts)", t_cert, t_text, 100 * (t_cert / t_text - 1)],
                 ["score_choices_batch(index arrays)", t_cert, t_choice, 100 * (t_cert / t_choice - 1)]])
    emit("rank_certify_vs_raw_text_scoring", t_cert, t_text, docs=n_docs, target_overhead_pct=20)
    emit("rank_certify_vs_raw_choice_scoring", t_cert, t_choice, docs=n_docs, target_overhead_pct=20)

    data = shared_data_dir() / "ir" / "vaswani"
    if data.exists():
        coll = load_vaswani(data)
        name = "vaswani"
    else:
        print(f"[note] {data} absent: retrieval throughput on the embedded collection", file=sys.stderr)
        coll = default_collection()
        name = "default"
    t_ours, t_anchor = bench_retrieval(coll.corpus, coll.queries, 100, 3 * reps)
    print_table(f"Retrieval ({name}: {len(coll.corpus)} docs, {len(coll.queries)} queries, k=100)",
                ["ours_s", "bm25s_s", "ratio (bm25s/ours)"], [[t_ours, t_anchor, t_anchor / t_ours]])
    emit("rank_retrieval_vs_bm25s", t_ours, t_anchor, collection=name, target_ratio=0.9)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
