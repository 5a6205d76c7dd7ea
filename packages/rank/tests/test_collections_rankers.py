from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from certkit.rank.collections import Collection, from_ir_datasets, load_cranfield, load_vaswani
from certkit.rank.metrics import evaluate
from certkit.rank.rankers import BM25Ranker, Ranker, rerank


def test_default_collection_shape(default_coll: Collection) -> None:
    c = default_coll
    assert 300 <= len(c.corpus) <= 600 and len(c.queries) >= 30
    assert set(c.qrels) == set(c.queries)
    grades = {r for q in c.qrels.values() for r in q.values()}
    assert grades == {0, 1, 2}
    # every query: several answers, some partial ones and at least one judged distractor
    for q, judged in c.qrels.items():
        vals = list(judged.values())
        assert vals.count(2) >= 4 and vals.count(1) >= 2 and vals.count(0) >= 1, q
    assert len(set(c.corpus.values())) == len(c.corpus)  # no duplicated documents
    assert c.check()["unknown_docids"] == 0


def test_bm25_beats_random_on_default(default_coll: Collection, bm25: BM25Ranker) -> None:
    run = bm25.retrieve(default_coll.queries, 100)
    ours = evaluate(run, default_coll.qrels, ["ndcg@10", "map"]).mean()
    rng = random.Random(0)
    rnd = {q: {d: rng.random() for d in default_coll.corpus} for q in default_coll.queries}
    base = evaluate(rnd, default_coll.qrels, ["ndcg@10", "map"]).mean()
    assert ours["ndcg@10"] > base["ndcg@10"] + 0.4
    assert 0.3 < ours["map"] < 0.99  # not trivial either
    # the figures documented in data/README.txt, and pytrec_eval agrees on every query
    assert ours["ndcg@10"] == pytest.approx(0.882, abs=6e-4)
    assert ours["map"] == pytest.approx(0.860, abs=6e-4)  # 0.862 with zero-score padding
    pytrec_eval = pytest.importorskip("pytrec_eval")
    ref = pytrec_eval.RelevanceEvaluator(default_coll.qrels, {"ndcg_cut_10", "map"}).evaluate(run)
    ev = evaluate(run, default_coll.qrels, ["ndcg@10", "map"])
    for m, pm in (("ndcg@10", "ndcg_cut_10"), ("map", "map")):
        np.testing.assert_allclose(ev.per_query[m], [ref[q][pm] for q in ev.qids], atol=1e-12)


def test_bm25_score_matches_bm25s_index(default_coll: Collection, bm25: BM25Ranker) -> None:
    assert isinstance(bm25, Ranker)
    docs = list(default_coll.corpus.values())
    for q in list(default_coll.queries.values())[:5]:
        np.testing.assert_allclose(bm25.score(q, docs), bm25.score_index(q), rtol=1e-5, atol=1e-5)


def test_bm25_retrieve_matches_bm25s_directly(default_coll: Collection) -> None:
    import bm25s
    import Stemmer

    texts = list(default_coll.corpus.values())
    st = Stemmer.Stemmer("english")
    ret = bm25s.BM25(k1=1.2, b=0.75)
    ret.index(bm25s.tokenize(texts, stopwords="en", stemmer=st, show_progress=False), show_progress=False)
    qs = list(default_coll.queries.values())
    idx, sc = ret.retrieve(bm25s.tokenize(qs, stopwords="en", stemmer=st, show_progress=False),
                           k=10, show_progress=False)
    ours = BM25Ranker(default_coll.corpus)
    oi, os_, empty = ours.retrieve_arrays(qs, 10)
    assert not empty.any()
    np.testing.assert_array_equal(oi, idx)
    np.testing.assert_array_equal(os_, sc)


def test_bm25_bad_input_and_empty(bm25: BM25Ranker) -> None:
    with pytest.raises(TypeError, match="docs"):
        bm25.score("q", "a doc")
    with pytest.raises(TypeError, match="query"):
        bm25.score(3, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        BM25Ranker(["a b"], method="bm42")
    assert bm25.score("", ["solar panel"]).tolist() == [0.0]
    assert bm25.score("solar", [""]).tolist() == [0.0]
    with pytest.warns(UserWarning, match="1 queries have no indexed term"):
        run = bm25.retrieve({"a": "solar panel", "b": "zzzqqq"}, 5)
    assert run["b"] == {} and len(run["a"]) == 5


def test_rerank(default_coll: Collection, bm25: BM25Ranker) -> None:
    qs = dict(list(default_coll.queries.items())[:3])
    cand = bm25.retrieve(qs, 20)
    again = rerank(bm25, qs, cand, default_coll.corpus)
    for q in qs:
        for d in cand[q]:
            assert again[q][d] == pytest.approx(cand[q][d], rel=1e-5)


def test_ir_datasets_adapter_duck_typed() -> None:
    from types import SimpleNamespace as N

    class Fake:
        name = "fake"

        def docs_iter(self):
            return iter([N(doc_id="1", title="T", body="body"), N(doc_id="2", text="plain", title=None)])

        def queries_iter(self):
            return iter([N(query_id="q", text="body")])

        def qrels_iter(self):
            return iter([N(query_id="q", doc_id="1", relevance=2), N(query_id="q", doc_id="9", relevance=1)])

    with pytest.warns(UserWarning, match="1 qrels judgements"):
        c = from_ir_datasets(Fake())
    assert c.corpus == {"1": "T body", "2": "plain"} and c.qrels == {"q": {"1": 2, "9": 1}}


def test_ir_datasets_adapter_on_a_real_local_dataset(tmp_path) -> None:
    # a genuine ir_datasets Dataset over local files (no network): TSV docs and queries,
    # TREC qrels, as ir_datasets' own format classes read them
    irds = pytest.importorskip("ir_datasets")
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    (tmp_path / "docs.tsv").write_text("d1\tsolar cells convert light\nd2\tcoral reef fish\n", encoding="utf-8")
    (tmp_path / "queries.tsv").write_text("q1\tsolar cells\nq2\treef fish\n", encoding="utf-8")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 2\nq2 0 d2 1\nq2 0 d9 1\n", encoding="utf-8")
    ds = Dataset(TsvDocs(LocalDownload(tmp_path / "docs.tsv")),
                 TsvQueries(LocalDownload(tmp_path / "queries.tsv")),
                 TrecQrels(LocalDownload(tmp_path / "qrels.txt"), {0: "no", 1: "yes", 2: "very"}))
    assert irds.__version__
    with pytest.warns(UserWarning, match="1 qrels judgements name documents not in the corpus"):
        c = from_ir_datasets(ds, name="local")
    assert c.corpus == {"d1": "solar cells convert light", "d2": "coral reef fish"}
    assert c.queries == {"q1": "solar cells", "q2": "reef fish"}
    assert c.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d9": 1}}
    run = BM25Ranker(c.corpus, stemmer=None, stopwords=None).retrieve(c.queries, 2)
    assert max(run["q1"], key=run["q1"].get) == "d1"


@pytest.mark.shared_data
def test_cranfield_traps_and_bm25(shared) -> None:
    folder = shared("ir", "cranfield")
    c = load_cranfield(folder)
    assert len(c.corpus) == 1400 and len(c.queries) == 225 and set(c.qrels) <= set(c.queries)
    assert c.meta["smart_ids"]["3"] == "004"  # .I ids have gaps; qids are file order
    # grades as ir_datasets reads them (the file's codes, -1 judged non-relevant) by default
    grades = {r for q in c.qrels.values() for r in q.values()}
    assert grades == {-1, 1, 2, 3, 4}
    c5 = load_cranfield(folder, grades="5-code")
    assert {r for q in c5.qrels.values() for r in q.values()} == {0, 1, 2, 3, 4}
    assert all(c5.qrels[q][d] == (5 - r if r > 0 else 0) for q in c.qrels for d, r in c.qrels[q].items())
    run = BM25Ranker(c.corpus).retrieve(c.queries, 1000)
    ev = evaluate(run, c.qrels, ["map", "ndcg@10"]).mean()
    ev5 = evaluate(run, c5.qrels, ["map", "ndcg@10"]).mean()
    assert 0.28 < ev["map"] < 0.34 and ev["map"] == ev5["map"]  # binary: the same
    assert abs(ev["ndcg@10"] - ev5["ndcg@10"]) > 0.01  # graded: the mapping matters
    with pytest.raises(ValueError, match="grades"):
        load_cranfield(folder, grades="inverted")
    # the trap: mapping qrels by .I id ruins the metric
    wrong = {c.meta["smart_ids"][q].lstrip("0"): v for q, v in c.qrels.items()}
    wrong_q = {c.meta["smart_ids"][q].lstrip("0"): t for q, t in c.queries.items()}
    bad_run = BM25Ranker(c.corpus).retrieve({q: c.queries[q] for q in c.queries}, 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev_bad = evaluate(bad_run, {k: v for k, v in wrong.items()}, ["map"]).mean()
    assert ev_bad["map"] < 0.1 and wrong_q


@pytest.mark.shared_data
def test_vaswani_bm25_matches_pytrec_and_published(shared) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    c = load_vaswani(shared("ir", "vaswani"))
    assert len(c.corpus) == 11429 and len(c.queries) == 93
    run = BM25Ranker(c.corpus).retrieve(c.queries, 1000)
    ev = evaluate(run, c.qrels, ["map", "ndcg@10"])
    ref = pytrec_eval.RelevanceEvaluator(c.qrels, {"map", "ndcg_cut_10"}).evaluate(run)
    for q, m in zip(ev.qids, ev.per_query["map"], strict=True):
        assert m == pytest.approx(ref[q]["map"], abs=1e-12)
    mean = ev.mean()
    assert abs(mean["ndcg@10"] - 0.43) < 0.03 and abs(mean["map"] - 0.28) < 0.03


def test_bm25_token_ids_and_features_equal_text_scoring(default_coll: Collection, bm25: BM25Ranker) -> None:
    q = default_coll.queries[sorted(default_coll.queries)[1]]
    docs = [*list(default_coll.corpus.values())[:30], "", "the of and", "Unheard-of wordz here!"]
    ref = bm25.score(q, docs)
    # token ids (index vocabulary, -1 outside it), CSR
    toks = bm25.tokenize(docs)
    ids = np.array([bm25.vocab.get(t, -1) for d in toks for t in d], dtype=np.int64)
    lengths = np.array([len(d) for d in toks], dtype=np.int64)
    np.testing.assert_array_equal(bm25.score_token_ids(q, ids, lengths), ref)
    # additive features: per-word features summed over a document's words (naive loop)
    feats = np.array([bm25.choice_features(q, d.split()).sum(0) if d.split()
                      else np.zeros(1 + len(bm25._query_weights(q)[0]), np.int64) for d in docs])
    assert feats[:, 0].tolist() == lengths.tolist()
    np.testing.assert_array_equal(bm25.score_features(q, feats), ref)
    with pytest.raises(ValueError, match="feats"):
        bm25.score_features(q, feats[:, :1])
    with pytest.raises(ValueError, match="ids"):
        bm25.score_token_ids(q, ids[:-1], lengths)
