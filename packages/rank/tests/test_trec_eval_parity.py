"""Evaluation exactly as trec_eval: every shared measure equals pytrec_eval (trec_eval 9's
code) and ir-measures to 1e-12 on fuzzed runs with ties (exact and below float32
precision), unjudged documents, negative grades, queries with no relevant document,
queries missing from the run and run queries missing from the qrels; the command's
``-q``/``-c``/``-l`` output in trec_eval's format."""

from __future__ import annotations

import json
import random
import warnings

import pytest

from certkit.rank.metrics import (
    evaluate,
    expand_measures,
    format_trec_eval,
    parse_measure,
    rank_docs,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

# ours -> pytrec_eval name (trec_eval's output name)
PTE = {"map": "map", "map_cut.10": "map_cut_10", "ndcg": "ndcg", "ndcg_cut.10": "ndcg_cut_10",
       "ndcg_cut_5": "ndcg_cut_5", "P.10": "P_10", "P_5": "P_5", "recall.100": "recall_100",
       "recall_5": "recall_5", "recip_rank": "recip_rank", "Rprec": "Rprec", "bpref": "bpref",
       "success.1": "success_1", "success.10": "success_10", "num_rel": "num_rel",
       "num_ret": "num_ret", "num_rel_ret": "num_rel_ret", "num_q": "num_q", "set_recall": "set_recall",
       "set_P": "set_P"}
# ours (ir-measures names) -> ir-measures measure string
IRM = ["nDCG@10", "nDCG", "AP", "AP@10", "RR", "RR@10", "R@100", "R@5", "P@10", "P@5", "Judged@10",
       "AP(rel=2)", "P(rel=2)@5", "Rprec", "Bpref", "Success@10", "NumRel", "NumRet", "NumRelRet", "NumQ", "SetR", "SetP"]
# ir-measures sorts Judged@k and RR@k (its msmarco provider) by (score desc, docid ASCENDING)
# in double precision, unlike trec_eval and its own other measures: compared on tie-free runs
IRM_OWN_ORDER = {"Judged@10", "RR@10"}


def fuzz_case(seed: int, ties: bool) -> tuple[dict, dict]:
    """12 queries over 40 docs: graded (-1..3) judgements, unjudged retrieved documents,
    a query with no relevant document, a qrels query missing from the run, a run query
    missing from the qrels; with ``ties``: integer scores (exact ties) and pairs that
    differ by 1e-9 relative (tied in float32, not in float64)."""
    rng = random.Random(seed)
    docs = [f"d{i:02d}" if i % 3 else f"D{i}" for i in range(40)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(12):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(3, 20))
        grades = [-1, 0, 0, 1, 2, 3] if q != 3 else [0, -1]  # q3: nothing relevant
        qrels[qid] = {d: rng.choice(grades) for d in judged}
        if q == 11:
            continue  # judged, not in the run
        ret = rng.sample(docs, rng.randint(1, 35))
        if ties:
            base = [float(rng.randint(0, 5)) for _ in ret]
            run[qid] = {d: (b * (1 + 1e-9) if rng.random() < 0.3 else b) + (rng.random() < 0.2) * 7.25
                        for d, b in zip(ret, base, strict=True)}
        else:
            run[qid] = {d: rng.random() for d in ret}
    run["qx"] = {"d01": 1.0}  # not judged
    return qrels, run


def _ours(run, qrels, names, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = evaluate(run, qrels, names, **kw)
    return {m: dict(zip(ev.qids, v.tolist(), strict=True)) for m, v in ev.per_query.items()}


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("ties", [False, True])
def test_agrees_with_pytrec_eval(seed: int, ties: bool) -> None:
    qrels, run = fuzz_case(seed, ties)
    for level in (1, 2):
        ours = _ours(run, qrels, list(PTE), relevance_level=level)
        ref = pytrec_eval.RelevanceEvaluator(qrels, set(PTE.values()), relevance_level=level).evaluate(run)
        assert set(ours["map"]) == set(ref)  # the same evaluated queries
        for m, pm in PTE.items():
            for q, v in ours[m].items():
                assert abs(v - ref[q][pm]) <= 1e-12, (m, q, level, v, ref[q][pm])


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("ties", [False, True])
def test_agrees_with_ir_measures(seed: int, ties: bool) -> None:
    ir_measures = pytest.importorskip("ir_measures")
    qrels, run = fuzz_case(seed, ties)
    names = [m for m in IRM if not (ties and m in IRM_OWN_ORDER)]
    # ir-measures reports every qrels query (missing ones as 0): trec_eval's -c
    ours = _ours(run, qrels, names, complete=True)
    parsed = {ir_measures.parse_measure(m): m for m in names}
    seen = 0
    for r in ir_measures.iter_calc(list(parsed), qrels, run):
        m = parsed[r.measure]
        assert abs(ours[m][r.query_id] - r.value) <= 1e-12, (m, r.query_id, ours[m][r.query_id], r.value)
        seen += 1
    assert seen == len(names) * len(qrels)
    agg = ir_measures.calc_aggregate(list(parsed), qrels, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_all = evaluate(run, qrels, names, complete=True).aggregate()
    for meas, v in agg.items():
        assert abs(ours_all[parsed[meas]] - v) <= 1e-12, parsed[meas]


def test_scores_compare_in_single_precision_like_trec_eval() -> None:
    # 1 + 1e-9 and 1 are one float32: trec_eval ties them and orders by docno descending
    scores = {"a": 1.0 + 1e-9, "b": 1.0, "c": 0.5}
    assert rank_docs(scores) == ["b", "a", "c"]
    assert rank_docs(scores, precision="double") == ["a", "b", "c"]
    qrels = {"q": {"a": 1}}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate({"q": scores})["q"]["recip_rank"]
    assert evaluate({"q": scores}, qrels, ["recip_rank"]).mean()["recip_rank"] == ref == 0.5
    assert evaluate({"q": scores}, qrels, ["recip_rank"], precision="double").mean()["recip_rank"] == 1.0


def test_names_of_trec_eval_and_ir_measures() -> None:
    same = [("ndcg_cut.10", "ndcg_cut_10", "nDCG@10", "ndcg@10"), ("P.10", "P_10", "P@10", "p@10"),
            ("recall.100", "recall_100", "R@100", "r@100"), ("map", "AP", "ap"),
            ("recip_rank", "RR", "rr"), ("map_cut.10", "AP@10", "ap@10"), ("success.10", "Success@10"),
            ("num_rel_ret", "NumRelRet", "NumRet(rel=1)"), ("set_recall", "SetR", "R", "r"),
            ("set_P", "SetP")]
    for group in same:
        kinds = {(parse_measure(n).kind, parse_measure(n).cut) for n in group}
        assert len(kinds) == 1, group
    assert parse_measure("AP(rel=2)").rel == 2 and parse_measure("P(rel=2)@5").cut == 5
    assert [m.name for m in expand_measures("P.5,10")] == ["P_5", "P_10"]
    assert len(expand_measures("ndcg_cut")) == 9 and [m.cut for m in expand_measures("success")] == [1, 5, 10]


def test_per_query_output_in_trec_eval_format() -> None:
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"z": 1}}
    run = {"q1": {"a": 2.0, "x": 1.0}, "q2": {"c": 1.0, "y": 3.0}}
    with pytest.warns(UserWarning):
        ev = evaluate(run, qrels, ["map", "P.10", "num_rel_ret"])
    lines = format_trec_eval(ev, per_query=True)
    assert lines[0] == f"{'map':<22}\tq1\t0.5000"
    assert lines[1] == f"{'P_10':<22}\tq1\t0.1000"
    assert lines[2] == f"{'num_rel_ret':<22}\tq1\t1"
    assert lines[-3:] == [f"{'map':<22}\tall\t0.5000", f"{'P_10':<22}\tall\t0.1000",
                          f"{'num_rel_ret':<22}\tall\t2"]
    with pytest.warns(UserWarning):
        ev_c = evaluate(run, qrels, ["map"], complete=True)
    assert format_trec_eval(ev_c)[-1] == f"{'map':<22}\tall\t0.3333"


def test_evaluate_command_flags(tmp_path, capsys) -> None:
    from certkit.core.cli import main
    from certkit.rank import io

    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"z": 2}}
    run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"c": 1.0, "y": 3.0}}
    io.write_qrels(qrels, tmp_path / "qrels")
    io.write_run(run, tmp_path / "run")
    args = ["rank", "evaluate", "--run", str(tmp_path / "run"), "--qrels", str(tmp_path / "qrels")]
    assert main([*args, "-m", "map", "-m", "P.1,2", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == [f"{'map':<22}", "q1", "1.0000"]
    assert out[-3].split("\t") == [f"{'map':<22}", "all", "0.7500"]
    assert len(out) == 3 * 2 + 3
    assert main([*args, "-m", "map", "-c"]) == 0
    assert capsys.readouterr().out.split("\t")[-1].strip() == "0.5000"
    assert main([*args, "-m", "map", "-l", "2"]) == 0  # only b (grade 2) is relevant in q1
    assert capsys.readouterr().out.split("\t")[-1].strip() == f"{(0.5 + 0.0) / 2:.4f}"
    assert main(["--json", *args, "-m", "nDCG@10", "-m", "AP(rel=2)", "-q"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert set(js["per_query"]) == {"q1", "q2"} and set(js["all"]) == {"nDCG@10", "AP(rel=2)"}
    assert js["all"]["AP(rel=2)"] == pytest.approx(0.25)
    assert main([*args, "-m", "bogus"]) == 2
    assert main([*args, "-l", "-1"]) == 2


@pytest.mark.shared_data
def test_single_precision_matters_on_a_real_run(shared) -> None:
    # the case: a Cranfield BM25 run with a 1e-7 tie-breaker; trec_eval (float)
    # ignores it, float64 comparison does not
    from certkit.rank.collections import load_cranfield
    from certkit.rank.rankers import BM25Ranker

    c = load_cranfield(shared("ir", "cranfield"))
    run = BM25Ranker(c.corpus).retrieve(c.queries, 1000)
    # a tie-breaker of 1e-7 by docid order: below float32 precision for most scores
    run = {q: {d: s + 1e-7 * (1000 - i) / 1000 for i, (d, s) in enumerate(sorted(docs.items()))}
           for q, docs in run.items()}
    ref = pytrec_eval.RelevanceEvaluator(c.qrels, {"map"}).evaluate(run)
    single = _ours(run, c.qrels, ["map"])["map"]
    double = _ours(run, c.qrels, ["map"], precision="double")["map"]
    assert max(abs(single[q] - ref[q]["map"]) for q in single) <= 1e-12
    assert max(abs(double[q] - ref[q]["map"]) for q in double) > 5e-3  # 8.3e-3 measured
