"""Ranking / IR: certkit.rank vs its anchors on identical work.

1. Retrieval throughput: ``BM25Ranker.retrieve`` (a run dict) vs bm25s' own
   ``tokenize`` + ``retrieve`` (arrays) on the same index and queries. Target: within 10%.
2. Certification overhead: ``certify_query`` (CertDR on BM25, WordNet synonyms, one query
   of the embedded collection, its 20 BM25 candidates, n samples each, budget 2) does
   everything: per-token substitution tables, sampling from the core sampler, scoring,
   score transform, simultaneous Monte-Carlo bounds, TV bounds and the top-K decision.
   **Baseline (headline)**: the raw scoring of the same perturbed documents — the same
   20·n documents, built beforehand (not timed) from the very samples ``certify_query``
   draws — by the ranker's batched scorer and nothing else. The documents are given in
   the cheapest form BM25 accepts, bm25s token ids (``BM25Ranker.score_token_ids``: one
   vectorised tf count + the BM25 formula over every token of every document); the
   script checks that its scores equal certify's raw scores bit for bit. Two more rows:
   ``BM25Ranker.score`` of the perturbed texts (tokenising included), and the scoring
   kernel certify itself runs (``plan_features`` + ``score_features`` on the pre-sampled
   choices of only the positions that can change the score): a lower bound on any
   certifier's scoring, so overhead over it is everything certify adds (sampling,
   bounds, per-query set-up). Target: overhead <= 20% over the headline baseline.
0. trec_eval agreement (``--agreement`` runs only this): the largest per-query difference
   of every measure from pytrec_eval (trec_eval 9's code, at relevance levels 1 and 2)
   and from ir-measures (its default providers, every qrels query as ``-c``), over fuzzed
   runs (exact ties, ties below float32 precision, unjudged documents, grades -1..3,
   queries without relevant documents, missing queries) and the BM25 runs of Cranfield
   and Vaswani with a 1e-7 tie-breaker.
3. Effectiveness: BM25 on Cranfield and Vaswani (when ../shared/data/ir is present):
   our metrics vs pytrec_eval's on the same run (must match exactly), next to the
   published BM25 figures (Vaswani nDCG@10 about 0.43, MAP about 0.28; Cranfield MAP about
   0.31 with the file-order qrels mapping).

Timings are minima over interleaved repeats (ours, anchor, anchor, ours, ...): on a shared
machine single timings of the same bm25s call vary 5x, so read ratios near 1 as "equal".
Everything runs in one process, so thread settings are the same for ours and the anchors
(the 1-minute load average is printed and put in the JSON lines).
Our retrieve path is bm25s.tokenize + bm25s.BM25.retrieve on the same arguments plus one
vectorised run-dict build; no per-query Python work of ours.

Usage: python benchmarks/rank.py [--quick] [--agreement]
Ends with one JSON line per comparison; the last is the headline (retrieval throughput).
"""

from __future__ import annotations

import argparse
import os
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
    (ta, tb), _ = interleaved_min_cpu(a, b, reps)
    return ta, tb


def interleaved_min_cpu(a: Callable[[], object], b: Callable[[], object], reps: int
                        ) -> tuple[tuple[float, float], tuple[float, float]]:
    """(min wall a, min wall b), (min CPU a, min CPU b): CPU time (process_time, all
    threads) is less disturbed by other processes competing for the cores."""
    a()
    b()
    ta, tb, ca, cb = [], [], [], []
    for r in range(reps):
        for fn, acc, cacc in ((a, ta, ca), (b, tb, cb)) if r % 2 == 0 else ((b, tb, cb), (a, ta, ca)):
            c = time.process_time()
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
            cacc.append(time.process_time() - c)
    return (min(ta), min(tb)), (min(ca), min(cb))


def perturbed_token_ids(ranker: BM25Ranker, table: object, per_doc_tokens: list[np.ndarray],
                        idx: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The perturbed documents as bm25s token ids, CSR (flat ids, (D*n,) lengths), built
    vectorised from the sampled choice indices idx[j] (n, T_j) of document j."""
    all_ids, all_len = [], []
    for toks, ix in zip(per_doc_tokens, idx, strict=True):
        choices = [table.choices(int(t)) for t in toks]  # type: ignore[attr-defined]
        words = [w for c in choices for w in c]
        tok = ranker.word_tokens(words)
        pair_len = np.array([len(x) for x in tok], dtype=np.int64)
        pair_flat = np.array([ranker.vocab.get(t, -1) for x in tok for t in x], dtype=np.int64)
        pair_ptr = np.concatenate(([0], np.cumsum(pair_len)[:-1]))
        first = np.concatenate(([0], np.cumsum([len(c) for c in choices])[:-1])).astype(np.int64)
        g = (ix + first[None, :]).ravel()  # (n*T,) pair indices, sample-major
        lens = pair_len[g]
        total = int(lens.sum())
        at = np.repeat(pair_ptr[g] - (np.cumsum(lens) - lens), lens) + np.arange(total)
        all_ids.append(pair_flat[at])
        all_len.append(lens.reshape(ix.shape).sum(1))
    return np.concatenate(all_ids), np.concatenate(all_len)


def bench_certify(n: int, quick: bool, with_text: bool = True) -> list[list[object]]:
    """CertDR on BM25 vs the raw scoring of the same perturbed documents (same count, same
    samples). Returns table rows (baseline, certify_s, baseline_s, overhead %)."""
    from certkit.rank.certdr import (
        certify_query,
        feature_plan,
        plan_features,
        sample_indices,
        sample_rows,
        smoothed_scores,
        substitution_table,
    )
    from certkit.rank.metrics import rank_docs
    from certkit.rank.rankers import choice_texts
    from certkit.rank.smoothing import ScoreTransform, stream_key
    from certkit.rank.synonyms import DEFAULT_WORDNET, DictSynonyms, WordNetSynonyms

    coll = default_collection()
    ranker = BM25Ranker(coll.corpus)
    syn = WordNetSynonyms(max_senses=2) if (DEFAULT_WORDNET / "index.noun").exists() else DictSynonyms({})
    if isinstance(syn, DictSynonyms):
        print("[note] WordNet absent: certifying with empty synonym sets", file=sys.stderr)
    qid = sorted(coll.queries)[0]
    q = coll.queries[qid]
    ranked = rank_docs(ranker.retrieve({qid: q}, 20)[qid])
    docs = [coll.corpus[d] for d in ranked]
    tr = ScoreTransform.fit(ranker.score(q, docs))
    certify_query(ranker, q, docs, syn, n=2, transform=tr)  # fills the per-word tables
    tab = substitution_table(syn)
    per = [tab.doc_ids(d) for d in docs]
    sizes = tab.arrays()[0]
    # the perturbed documents certify_query scores (identical keys: query 0, document j)
    idx = [sample_indices(sizes[t], n, seed=0, stream=stream_key(0, j)) for j, t in enumerate(per)]
    ids, lengths = perturbed_token_ids(ranker, tab, per, idx)
    ptr = np.concatenate(([0], np.cumsum([p.size for p in per]))).astype(np.int64)
    tokens = np.concatenate(per)
    ours_raw = smoothed_scores(ranker, q, tab, tokens, ptr, n, seed=0, query_index=0)
    np.testing.assert_array_equal(ranker.score_token_ids(q, ids, lengths).reshape(len(docs), n), ours_raw)
    plan = feature_plan(ranker, q, tab, tokens, ptr)
    rows_idx = sample_rows(plan.row_size, np.uint64(stream_key(0, 0)) | plan.row_doc.astype(np.uint64),
                           plan.row_pos, n, seed=0)
    n_docs = n * len(docs)
    print(f"[info] {len(docs)} candidates, {int(np.diff(ptr).sum())} word positions, "
          f"{plan.rows.size} of them can change the BM25 score; {n_docs} perturbed documents, "
          f"{lengths.sum()} tokens", file=sys.stderr)

    def ours() -> None:
        certify_query(ranker, q, docs, syn, n=n, transform=tr, budget=2)

    def raw_ids() -> None:
        ranker.score_token_ids(q, ids, lengths)

    def raw_kernel() -> None:
        ranker.score_features(q, plan_features(plan, rows_idx))

    reps = 15 if quick else 41
    (t_ours, t_ids), (c_ours, c_ids) = interleaved_min_cpu(ours, raw_ids, reps)
    (t_ours2, t_kernel), (c_ours2, c_kernel) = interleaved_min_cpu(ours, raw_kernel, reps)
    t_ours, c_ours = min(t_ours, t_ours2), min(c_ours, c_ours2)
    t_text = float("nan")
    if with_text:
        texts = [t for j, t_ in enumerate(per) for t in choice_texts([tab.choices(int(x)) for x in t_], idx[j])]
        t_text = best_time(lambda: ranker.score(q, texts), 3, 1)
    rows: list[list[object]] = [
        [n, "score_token_ids(perturbed docs as token ids)  [headline]", t_ours, t_ids,
         100 * (t_ours / t_ids - 1), 100 * (c_ours / c_ids - 1)],
        [n, "score(perturbed docs as texts)", t_ours, t_text, 100 * (t_ours / t_text - 1), float("nan")],
        [n, "score_features(kernel on pre-sampled varying positions)", t_ours, t_kernel,
         100 * (t_ours / t_kernel - 1), 100 * (c_ours / c_kernel - 1)],
    ]
    if not with_text:
        rows.pop(1)
    load = round(os.getloadavg()[0], 2)
    emit(f"rank_certify_vs_raw_scoring_n{n}", t_ours, t_ids, docs=n_docs, baseline="score_token_ids",
         overhead_pct=round(100 * (t_ours / t_ids - 1), 1),
         cpu_overhead_pct=round(100 * (c_ours / c_ids - 1), 1), target_overhead_pct=20, load=load)
    if with_text:
        emit(f"rank_certify_vs_raw_text_scoring_n{n}", t_ours, t_text, docs=n_docs, baseline="score(texts)",
             load=load)
    emit(f"rank_certify_vs_scoring_kernel_n{n}", t_ours, t_kernel, docs=n_docs,
         baseline="score_features kernel", overhead_pct=round(100 * (t_ours / t_kernel - 1), 1),
         cpu_overhead_pct=round(100 * (c_ours / c_kernel - 1), 1), load=load)
    return rows


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
        ev = evaluate(run, coll.qrels, ["ndcg@10", "map"], complete=True)
        ref = pytrec_eval.RelevanceEvaluator(coll.qrels, {"ndcg_cut_10", "map"}).evaluate(run)
        for m, pm in (("ndcg@10", "ndcg_cut_10"), ("map", "map")):
            ours = dict(zip(ev.qids, ev.per_query[m], strict=True))
            ref_mean = float(np.mean([ref[q][pm] if q in ref else 0.0 for q in ev.qids]))
            maxdiff = max(abs(ours[q] - (ref[q][pm] if q in ref else 0.0)) for q in ev.qids)
            rows.append([name, m, round(float(ev.mean()[m]), 4), round(ref_mean, 4), f"{maxdiff:.1e}",
                         published[name].get(m, "-")])
    return rows


TREC_NAMES = {"map": "map", "map_cut.10": "map_cut_10", "ndcg": "ndcg", "ndcg_cut.10": "ndcg_cut_10",
              "P.10": "P_10", "recall.100": "recall_100", "recip_rank": "recip_rank", "Rprec": "Rprec",
              "bpref": "bpref", "success.10": "success_10", "num_rel": "num_rel", "num_ret": "num_ret",
              "num_rel_ret": "num_rel_ret"}
IRM_NAMES = ["nDCG@10", "AP", "AP(rel=2)", "RR", "RR@10", "R@100", "P@10", "Judged@10", "Rprec", "Bpref",
             "Success@10", "NumRelRet"]


def _fuzzed_runs(n_cases: int) -> list[tuple[str, dict, dict]]:
    """(label, qrels, run): random judgements -1..3 and runs with and without ties."""
    out = []
    for seed in range(n_cases):
        rng = np.random.default_rng(seed)
        docs = [f"d{i:03d}" for i in range(60)]
        qrels: dict[str, dict[str, int]] = {}
        run: dict[str, dict[str, float]] = {}
        ties = seed % 2 == 1
        for q in range(10):
            judged = rng.choice(docs, size=int(rng.integers(3, 30)), replace=False)
            qrels[f"q{q}"] = {str(d): int(rng.choice([-1, 0, 0, 1, 2, 3])) for d in judged}
            if q == 9:
                continue  # missing from the run
            ret = rng.choice(docs, size=int(rng.integers(1, 50)), replace=False)
            sc = rng.integers(0, 6, ret.size).astype(float) if ties else rng.random(ret.size)
            if ties:
                sc *= np.where(rng.random(ret.size) < 0.3, 1 + 1e-9, 1.0)  # tied in float32 only
            run[f"q{q}"] = {str(d): float(x) for d, x in zip(ret, sc, strict=True)}
        out.append(("ties" if ties else "no ties", qrels, run))
    return out


def agreement(n_cases: int) -> list[list[object]]:
    """Max |ours - pytrec_eval| and |ours - ir-measures| per measure (module docstring, 0)."""
    import warnings

    import ir_measures
    import pytrec_eval

    cases = _fuzzed_runs(n_cases)
    data = shared_data_dir() / "ir"
    for name, loader in (("cranfield", load_cranfield), ("vaswani", load_vaswani)):
        if (data / name).exists():
            coll = loader(data / name)
            run = BM25Ranker(coll.corpus).retrieve(coll.queries, 1000)
            run = {q: {d: s + 1e-7 * (1000 - i) / 1000 for i, (d, s) in enumerate(sorted(ds.items()))}
                   for q, ds in run.items()}
            cases.append((f"{name} BM25 + 1e-7 tie-breaker", coll.qrels, run))
    worst_te: dict[str, float] = dict.fromkeys(TREC_NAMES, 0.0)
    worst_irm: dict[str, dict[str, float]] = {m: {"no ties": 0.0, "ties": 0.0} for m in IRM_NAMES}
    n_eval = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, qrels, run in cases:
            for level in (1, 2):
                ev = evaluate(run, qrels, list(TREC_NAMES), relevance_level=level)
                ref = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_NAMES.values()),
                                                     relevance_level=level).evaluate(run)
                n_eval += len(ev.qids)
                for m, pm in TREC_NAMES.items():
                    diff = max((abs(v - ref[q][pm]) for q, v in zip(ev.qids, ev.per_query[m].tolist(),
                                                                      strict=True)), default=0.0)
                    worst_te[m] = max(worst_te[m], diff)
            ev = evaluate(run, qrels, IRM_NAMES, complete=True)
            ours = {m: dict(zip(ev.qids, v.tolist(), strict=True)) for m, v in ev.per_query.items()}
            parsed = {ir_measures.parse_measure(m): m for m in IRM_NAMES}
            key = "ties" if label != "no ties" else "no ties"
            for r in ir_measures.iter_calc(list(parsed), qrels, run):
                m = parsed[r.measure]
                worst_irm[m][key] = max(worst_irm[m][key], abs(ours[m][r.query_id] - r.value))
    print(f"[agreement] {len(cases)} runs, {n_eval} query evaluations vs pytrec_eval", file=sys.stderr)
    rows: list[list[object]] = [[m, f"{v:.1e}", "-", "-"] for m, v in worst_te.items()]
    rows += [[m, "-", f"{d['no ties']:.1e}", f"{d['ties']:.1e}"] for m, d in worst_irm.items()]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--agreement", action="store_true", help="only the trec_eval agreement table")
    args = ap.parse_args()
    reps = 5 if args.quick else 15

    rows_a = agreement(20 if args.quick else 200)
    print_table("Agreement: max |ours - anchor| per query (trec_eval names vs pytrec_eval at -l 1 and 2; "
                "ir-measures names vs ir-measures, runs without / with ties)",
                ["measure", "vs pytrec_eval", "vs ir-measures (no ties)", "vs ir-measures (ties)"], rows_a)
    if args.agreement:
        return

    eff = effectiveness()
    if eff:
        print_table("BM25 effectiveness (ours vs pytrec_eval vs published)",
                    ["collection", "metric", "ours", "pytrec_eval", "max |diff|", "published"], eff)

    print(f"[load] 1-min load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
          file=sys.stderr)
    rows = []
    for i, n in enumerate([300] if args.quick else [1000, 5000]):
        rows += bench_certify(n, args.quick, with_text=i == 0)
    print_table("Certification overhead (CertDR on BM25, WordNet, 20 candidates, budget 2)",
                ["n", "baseline (same perturbed documents, same samples)", "certify_s", "raw_scoring_s",
                 "overhead % (wall)", "overhead % (CPU)"], rows)

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
