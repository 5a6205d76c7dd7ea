from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certkit.rank import io
from certkit.rank.metrics import evaluate, parse_metric, rank_docs

pytrec_eval = pytest.importorskip("pytrec_eval")

PTE = {"ndcg@10": "ndcg_cut_10", "ndcg@5": "ndcg_cut_5", "map": "map", "p@5": "P_5",
       "p@10": "P_10", "r@10": "recall_10", "r@100": "recall_100", "rr": "recip_rank",
       "ndcg": "ndcg"}


def _random_case(seed: int, ties: bool) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(30)]
    qrels, run = {}, {}
    for q in range(8):
        qid = f"q{q}"
        judged = rng.sample(docs, 12)
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        if q == 7:
            continue  # a query missing from the run
        ret = rng.sample(docs, rng.randint(1, 25))
        run[qid] = {d: float(rng.randint(0, 4) if ties else rng.random()) for d in ret}
    return qrels, run


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_pytrec_eval(seed: int, ties: bool) -> None:
    qrels, run = _random_case(seed, ties)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = evaluate(run, qrels, list(PTE), complete=True)
    res = pytrec_eval.RelevanceEvaluator(qrels, set(PTE.values())).evaluate(run)
    for m, pm in PTE.items():
        ours = dict(zip(ev.qids, ev.per_query[m], strict=True))
        for q in qrels:
            ref = res[q][pm] if q in res else 0.0  # trec_eval -c: missing queries score 0
            assert ours[q] == pytest.approx(ref, abs=1e-12), (m, q)


def test_naive_reference_metrics() -> None:
    qrels = {"q": {"a": 2, "b": 0, "c": 1, "z": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}
    ev = evaluate(run, qrels, ["ap", "rr@1", "p@2", "r@3", "ndcg@3"]).mean()
    assert ev["ap"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert ev["rr@1"] == 1.0 and ev["p@2"] == 0.5 and ev["r@3"] == pytest.approx(2 / 3)
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ev["ndcg@3"] == pytest.approx(dcg / idcg)


def test_trec_eval_tie_break_is_docno_descending() -> None:
    scores = {"a": 1.0, "c": 1.0, "b": 1.0, "x": 2.0}
    assert rank_docs(scores) == ["x", "c", "b", "a"]
    assert rank_docs(scores, ties="input") == ["x", "a", "c", "b"]
    qrels = {"q": {"a": 1}}
    ev_te = evaluate({"q": scores}, qrels, ["rr"]).mean()["rr"]
    ev_in = evaluate({"q": scores}, qrels, ["rr"], ties="input").mean()["rr"]
    assert ev_te == 0.25 and ev_in == 0.5


def test_missing_queries_count_zero_with_complete_and_warn() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    with pytest.warns(UserWarning) as rec:
        ev = evaluate({"q1": {"a": 1.0}, "qx": {"a": 1.0}}, qrels, ["map"], complete=True)
    msgs = " ".join(str(w.message) for w in rec)
    assert "1 qrels queries" in msgs and "1 run queries" in msgs
    assert ev.mean()["map"] == 0.5 and ev.qids == ["q1", "q2"]
    assert ev.worst(0.5)["map"] == 0.0
    # trec_eval's default: the mean over the queries the run answers
    with pytest.warns(UserWarning, match="not evaluated"):
        ev = evaluate({"q1": {"a": 1.0}}, qrels, ["map"])
    assert ev.mean()["map"] == 1.0 and ev.qids == ["q1"]


def test_bad_metric_names() -> None:
    for bad in ["ndcg@0", "p", "foo", "Rprec@5", "ndcg_cut", "NumQ(rel=2)"]:
        with pytest.raises(ValueError, match="metrics"):
            parse_metric(bad)
    with pytest.raises(ValueError, match="ties"):
        evaluate({}, {"q": {}}, ["map"], ties="random")


def test_run_qrels_roundtrip(tmp_path) -> None:
    qrels, run = _random_case(3, True)
    io.write_qrels(qrels, tmp_path / "qrels")
    io.write_run(run, tmp_path / "run")
    assert io.read_qrels(tmp_path / "qrels") == qrels
    back = io.read_run(tmp_path / "run")
    assert back == run
    # a run written by us evaluates identically in pytrec_eval from its file order
    res = pytrec_eval.RelevanceEvaluator(qrels, {"map"}).evaluate(back)
    ours = evaluate(back, qrels, ["map"], warn_unknown=False)
    for q, v in zip(ours.qids, ours.per_query["map"], strict=True):
        assert v == pytest.approx(res.get(q, {"map": 0.0})["map"])


def test_malformed_lines_name_line(tmp_path) -> None:
    p = tmp_path / "qrels"
    p.write_text("1 0 d1 1\n1 0 d2\n")
    with pytest.raises(ValueError, match=":2:"):
        io.read_qrels(p)
    p.write_text("1 0 d1 x\n")
    with pytest.raises(ValueError, match=":1: relevance"):
        io.read_qrels(p)
    r = tmp_path / "run"
    r.write_text("1 Q0 d1 1 2.0 t\n1 Q0 d2 2 nan t\n")
    with pytest.raises(ValueError, match=":2: score"):
        io.read_run(r)
    r.write_text("1 Q0 d1 1 2.0 t\n\n1 Q0 d1 2 1.0 t\n")
    with pytest.raises(ValueError, match=":3: document"):
        io.read_run(r)


def test_non_utf8(tmp_path) -> None:
    p = tmp_path / "qrels"
    p.write_bytes(b"1 0 d1 1\n1 0 d\xff2 1\n")
    with pytest.raises(ValueError, match=":2: not valid UTF-8"):
        io.read_qrels(p)
    q = io.read_qrels(p, errors="replace")
    assert "d\ufffd2" in q["1"]


def test_topics_docs_beir_smart(tmp_path) -> None:
    topics = {"1": "heat transfer", "7": "boundary layer flow"}
    io.write_trec_topics(topics, tmp_path / "t.trec")
    assert io.read_trec_topics(tmp_path / "t.trec") == topics
    (tmp_path / "t2").write_text("<top>\n<num> Number: 301\n<title> Topic: oil spills\n<desc> Description:\n"
                                 "effects of oil\n<narr> Narrative: none\n</top>\n")
    assert io.read_trec_topics(tmp_path / "t2") == {"301": "oil spills"}
    assert io.read_trec_topics(tmp_path / "t2", "title+desc") == {"301": "oil spills effects of oil"}
    corpus = {"d1": "a b c", "d2": "", "d3": "x <b>y</b>"}
    io.write_trec_docs(corpus, tmp_path / "docs")
    assert io.read_trec_docs(tmp_path / "docs") == {"d1": "a b c", "d2": "", "d3": "x y"}
    qrels = {"1": {"d1": 1}, "7": {"d3": 2}}
    io.write_beir(tmp_path / "beir", corpus, topics, qrels)
    c, q, r = io.read_beir(tmp_path / "beir")
    assert c == corpus and q == topics and r == qrels
    (tmp_path / "s").write_text(".I 1\n.T\ntitle one\n.W\nbody\ntext\n.I 002\n.W\nsecond\n")
    assert io.read_smart(tmp_path / "s") == [{"I": "1", "T": "title one", "W": "body text"},
                                            {"I": "002", "W": "second"}]
    (tmp_path / "s").write_text("junk\n.I 1\n")
    with pytest.raises(ValueError, match=":1:"):
        io.read_smart(tmp_path / "s")
    with pytest.raises(FileNotFoundError):
        io.read_qrels(tmp_path / "nope")


_tok = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(_tok, max_size=8))
def test_fuzz_parsers_only_raise_value_errors(lines: list[str]) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f"
        p.write_text("\n".join(lines), encoding="utf-8")
        for fn in (io.read_qrels, io.read_run, io.read_trec_topics, io.read_trec_docs,
                   io.read_smart, io.read_tsv_topics):
            try:
                out = fn(p)
            except ValueError:
                continue
            assert isinstance(out, (dict, list))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]),
                       st.integers(0, 3).map(float), min_size=1),
       st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]), st.integers(0, 2), min_size=1))
def test_fuzz_metrics_vs_pytrec(run_q: dict, qrels_q: dict) -> None:
    run, qrels = {"q": run_q}, {"q": qrels_q}
    ev = evaluate(run, qrels, ["map", "ndcg@5", "p@5", "rr"])
    res = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut_5", "P_5", "recip_rank"}).evaluate(run)
    for m, pm in [("map", "map"), ("ndcg@5", "ndcg_cut_5"), ("p@5", "P_5"), ("rr", "recip_rank")]:
        assert ev.per_query[m][0] == pytest.approx(res["q"][pm], abs=1e-12)


def test_per_query_arrays(default_coll, bm25) -> None:
    run = bm25.retrieve(default_coll.queries, 100)
    ev = evaluate(run, default_coll.qrels, ["ndcg@10", "map"])
    assert ev.per_query["map"].shape == (len(default_coll.qrels),)
    assert ev.worst(0.1)["map"] <= ev.mean()["map"]
    assert np.isfinite(ev.std()["map"])


# ------------------------------------------------------------- round trips and byte fuzzing

_id = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
              max_size=8)
_beir_id = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                          blacklist_characters='\t"\x85'), min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and s not in ("query-id",))
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_id, st.dictionaries(_id, st.integers(-1, 4), min_size=1, max_size=4), max_size=4),
       st.dictionaries(_id, st.dictionaries(_id, st.floats(-1e6, 1e6, allow_nan=False), min_size=1,
                                            max_size=4), max_size=4))
def test_fuzz_trec_qrels_and_run_round_trip(qrels: dict, run: dict) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        io.write_qrels(qrels, Path(d) / "q")
        assert io.read_qrels(Path(d) / "q") == qrels
        io.write_run(run, Path(d) / "r")
        assert io.read_run(Path(d) / "r") == run


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_beir_id, _text, max_size=4), st.dictionaries(_beir_id, _text, max_size=4),
       st.integers(0, 2))
def test_fuzz_beir_round_trip(corpus: dict, queries: dict, rel: int) -> None:
    # ids may contain spaces (legal in BEIR's tab-separated qrels)
    import tempfile

    qrels = {q: {d: rel for d in corpus} for q in queries} if corpus else {}
    qrels = {q: v for q, v in qrels.items() if v}
    with tempfile.TemporaryDirectory() as d:
        io.write_beir(d, corpus, queries, qrels)
        c2, q2, r2 = io.read_beir(d)
    assert c2 == {k: " ".join(s for s in ("", v) if s) for k, v in corpus.items()}
    assert r2 == qrels
    assert q2 == {q: t for q, t in queries.items() if q in qrels}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6))
def test_fuzz_parsers_on_raw_bytes(chunks: list[bytes]) -> None:
    # arbitrary bytes (invalid UTF-8 included): a ValueError naming the file, never another
    # exception; with errors="replace" decoding never fails
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f"
        p.write_bytes(b"\n".join(chunks))
        for fn in (io.read_qrels, io.read_run, io.read_trec_topics, io.read_trec_docs,
                   io.read_smart, io.read_tsv_topics):
            for errors in ("strict", "replace"):
                try:
                    fn(p, errors=errors)
                except ValueError as exc:
                    assert str(p) in str(exc)  # every parse error names the file
                    assert "UTF-8" not in str(exc) or errors == "strict"
        folder = Path(d) / "beir"
        (folder / "qrels").mkdir(parents=True)
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            (folder / name).write_bytes(b"\n".join(chunks))
        try:
            io.read_beir(folder)
        except ValueError:
            pass


def test_qrels_tab_separated_ids_with_spaces(tmp_path) -> None:
    # found by the BEIR round-trip fuzz: "q 1<TAB>d1<TAB>2" used to be read as the TREC
    # line "q 1 d1 2" (qid "q", doc "d1"): silently wrong
    p = tmp_path / "t.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq 1\td1\t2\nq2\td 2\t1\t\n", encoding="utf-8")
    assert io.read_qrels(p) == {"q 1": {"d1": 2}, "q2": {"d 2": 1}}
    p.write_text("q1\t0\td1\t1\nq1 0 d2 2\n", encoding="utf-8")  # TREC with tabs or spaces
    assert io.read_qrels(p) == {"q1": {"d1": 1, "d2": 2}}
