"""The user's own runs, topics and corpora in ``certkit rank certify|attack|retrieve``, and
query independence: a query's certificate depends only on that query, its candidates,
the ranker and the settings."""

from __future__ import annotations

import json

import pytest


def _rows(path):
    return {r["qid"]: r for r in map(json.loads, path.read_text().splitlines()) if "qid" in r}


def _same(a, b):
    keys = ("certified", "margin", "ranking", "mean_tv")
    return {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_certificate_does_not_depend_on_the_other_queries(tmp_path, capsys, wordnet) -> None:
    # the closure vocabulary and the noise keys are per query: q02 alone, q02 among the
    # first 5 and q02 among all 36 get identical certificates (the old command built one
    # closure over every selected query's candidates and keyed noise by job position)
    from certkit.core.cli import main

    logs = {}
    for name, sel in (("all", ["--queries", "0"]), ("five", ["--queries", "5"]), ("alone", ["--qids", "q02"])):
        logs[name] = tmp_path / f"{name}.jsonl"
        assert main(["--json", "--quiet", "rank", "certify", "--n", "1000", "--depth", "20",
                     "--log", str(logs[name]), *sel]) == 0
    capsys.readouterr()
    rows = {k: _rows(v) for k, v in logs.items()}
    assert len(rows["all"]) == 36 and len(rows["five"]) == 5 and list(rows["alone"]) == ["q02"]
    differ = [q for q in rows["five"] if not _same(rows["five"][q], rows["all"][q])]
    assert not differ, f"certificates changed with the job: {differ}"
    assert _same(rows["alone"]["q02"], rows["all"]["q02"])
    # not vacuous: some queries are certified at K = 1 and some are not
    cert1 = [r["certified"]["1"] for r in rows["all"].values()]
    assert any(cert1) and not all(cert1)


def _write_user_files(tmp_path, coll, qids):
    """The default collection as a user would bring it: TREC documents, tsv topics."""
    from certkit.rank import io

    io.write_trec_docs(coll.corpus, tmp_path / "docs.trec")
    (tmp_path / "topics.tsv").write_text("".join(f"{q}\t{coll.queries[q]}\n" for q in qids), encoding="utf-8")
    return tmp_path / "docs.trec", tmp_path / "topics.tsv"


def test_retrieve_options_and_no_zero_score_padding(tmp_path, capsys, default_coll) -> None:
    from certkit.core.cli import main
    from certkit.rank import io

    docs, topics = _write_user_files(tmp_path, default_coll, ["q01", "q02", "q03"])
    out = tmp_path / "run.trec"
    base = ["rank", "retrieve", "--corpus", str(docs), "--topics", str(topics), "--k", "100"]
    assert main([*base, "--out", str(out), "--tag", "mine"]) == 0
    run = io.read_run(out)
    assert sorted(run) == ["q01", "q02", "q03"] and out.read_text().split("\n")[0].endswith(" mine")
    assert all(0 < len(d) < 100 and min(d.values()) > 0 for d in run.values())  # no padding
    assert main([*base, "--out", str(tmp_path / "pad.trec"), "--pad"]) == 0
    assert all(len(d) == 100 for d in io.read_run(tmp_path / "pad.trec").values())
    # BM25 parameters reach the ranker: no stemming, no stop words, other k1/b
    assert main([*base, "--out", str(tmp_path / "raw.trec"), "--stemmer", "none", "--stopwords", "none",
                 "--k1", "0.9", "--b", "0.4"]) == 0
    assert io.read_run(tmp_path / "raw.trec") != run
    capsys.readouterr()
    assert main(["rank", "retrieve", "--corpus", str(docs), "--out", str(out)]) == 2
    assert "--topics: required with --corpus" in capsys.readouterr().err


def test_certify_and_attack_the_users_run(tmp_path, capsys, default_coll, wordnet) -> None:
    # the candidates are the run's top --depth (here a run that reverses BM25's order, so
    # its top 5 are not BM25's), scored by the chosen ranker
    from certkit.core.cli import main
    from certkit.core.results import ResultLog
    from certkit.rank import io
    from certkit.rank.metrics import rank_docs

    qids = ["q01", "q02", "q03", "q04"]
    docs, topics = _write_user_files(tmp_path, default_coll, qids)
    bm = tmp_path / "bm25.trec"
    assert main(["rank", "retrieve", "--corpus", str(docs), "--topics", str(topics), "--k", "30",
                 "--out", str(bm)]) == 0
    capsys.readouterr()
    rev = {q: {d: -s for d, s in ds.items()} for q, ds in io.read_run(bm).items()}
    io.write_run(rev, tmp_path / "rev.trec", tag="reversed")
    log = tmp_path / "cert.jsonl"
    common = ["--corpus", str(docs), "--topics", str(topics), "--run", str(tmp_path / "rev.trec")]
    assert main(["--json", "--quiet", "rank", "certify", *common, "--depth", "5", "--n", "200",
                 "--log", str(log), "--ranker", "certkit.rank.rankers:BM25Ranker"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"] == 4 and set(out["crq"]) >= {"1", "10"}
    rows = {r["qid"]: r for r in ResultLog.read(log)}
    for q in qids:
        assert set(rows[q]["ranking"]) == set(rank_docs(rev[q])[:5])
        assert rows[q]["seed"] == 0
    st = ResultLog.read_settings(log)
    assert st["depth"] == 5 and st["candidates"].startswith("sha256:") and st["ranker"].endswith("BM25Ranker")
    # attack: the target is the run's document at --target-rank
    assert main(["--json", "rank", "attack", *common, "--target-rank", "3", "--queries", "0"]) == 0
    att = json.loads(capsys.readouterr().out)
    assert "success_rate" in att
    assert main(["--json", "rank", "attack", *common, "--kind", "topic", "--target-rank", "3",
                 "--queries", "0"]) == 0
    assert "top10_rate" in json.loads(capsys.readouterr().out)
    # a run naming documents outside the corpus: a clear error, exit 2
    (tmp_path / "bad.trec").write_text("q01 Q0 nope 1 1.0 t\n")
    assert main(["rank", "certify", "--corpus", str(docs), "--topics", str(topics),
                 "--run", str(tmp_path / "bad.trec")]) == 2
    assert "not in the corpus (e.g. 'nope')" in capsys.readouterr().err
    assert main(["rank", "certify", "--qids", "q99"]) == 2


def test_retrieve_drops_exactly_the_zero_score_documents() -> None:
    # only the documents matching no query term (score exactly 0) are dropped, whatever
    # the idf (bm25s scores a term with negative robertson idf as 0: query "a" is empty)
    from certkit.rank.rankers import BM25Ranker

    corpus = {f"d{i}": t for i, t in enumerate(
        ["cat dog", "cat", "cat fish", "cat bird", "dog bird", "owl", "eel", "cat cat dog"])}
    qs = {"a": "cat", "b": "dog owl", "c": "zebra"}
    for method in ("lucene", "robertson"):
        r = BM25Ranker(corpus, method=method, stemmer=None, stopwords=None)
        with pytest.warns(UserWarning, match="queries have no indexed term"):
            run, padded = r.retrieve(qs, 8), r.retrieve(qs, 8, pad=True)
        for q in qs:
            assert run[q] == {d: s for d, s in padded[q].items() if s != 0}, (method, q)
        assert run["c"] == {} and len(run["b"]) == 4 and len(padded["b"]) == 8
