from __future__ import annotations

import json

import numpy as np
import pytest

from certkit.rank.attacks import (
    attack_metrics,
    rank_of,
    substitution_attack,
    topic_attack,
    word_importance,
)
from certkit.rank.metrics import rank_docs
from certkit.rank.synonyms import (
    ClosureSynonyms,
    DictSynonyms,
    EmbeddingNeighbours,
    cooccurrence_embeddings,
)


class Lex:
    name = "lex"
    def score(self, query, docs):
        weights = {"good": 2.0, "great": 3.0, "fine": 1.0, "bad": -1.0}
        return np.array([sum(weights.get(w, 0.0) for w in d.split()) for d in docs])


SYN = DictSynonyms({"good": ["great", "fine"], "bad": ["poor"], "okay": ["good"]}, symmetric=True)


def test_word_importance_reference() -> None:
    imp = word_importance(Lex(), "q", ["good", "bad", "x"])
    np.testing.assert_allclose(imp, [2.0, -1.0, 0.0])


def test_substitution_attack_promotes_and_respects_budget() -> None:
    others = np.array([5.0, 4.0, 3.5, 1.0])
    for mode in ("score", "decision"):
        res = substitution_attack(Lex(), "q", "good bad good x x", others, SYN, max_fraction=0.4, mode=mode)
        assert res.original_rank == rank_of(3.0, others) == 4
        assert res.n_substituted <= 2 and res.new_rank < res.original_rank
        assert Lex().score("q", [res.text])[0] >= 5.0
    m = attack_metrics([res])
    assert m["success_rate"] == 1.0 and m["boosted_ranks"] > 0 and m["perturbation_pct"] == 40.0
    with pytest.raises(ValueError, match="mode"):
        substitution_attack(Lex(), "q", "good", others, SYN, mode="gradient")


def test_topic_attack_group() -> None:
    others = [np.array([5.0, 1.0]), np.array([2.5, 0.0])]
    res = topic_attack(Lex(), ["q1", "q2"], "good x good", others, SYN, max_fraction=0.7)
    assert res.original_rank == [2, 1] and res.new_rank[0] == 1 and res.new_rank[1] == 1
    assert attack_metrics([res])["top10_rate"] == 1.0


def test_wordnet_reader(wordnet) -> None:
    assert "automobile" in wordnet("car") and "car" not in wordnet("car")
    assert wordnet("xyzzyq") == ()
    assert all(" " not in w and "_" not in w for w in wordnet("run"))
    with pytest.raises(FileNotFoundError):
        type(wordnet)("/nonexistent/wordnet")


def test_embedding_neighbours_reference() -> None:
    words = ["a", "b", "c"]
    vec = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    nb = EmbeddingNeighbours(words, vec, threshold=0.95)
    assert nb("a") == ("b",) and nb("c") == () and nb("zz") == ()
    with pytest.raises(ValueError, match="vectors"):
        EmbeddingNeighbours(words, vec[:2])
    w, v = cooccurrence_embeddings(["solar panel cost", "solar panel roof", "panel roof cost"] * 3, dim=3)
    assert v.shape == (len(w), 3) and np.all(np.isfinite(v))


def test_closure_synonyms_makes_q_one() -> None:
    from certkit.rank.certdr import tv_bound

    cl = ClosureSynonyms(SYN, ["good", "bad"])
    assert set(cl("good")) == {"great", "fine", "okay"}
    # q_w = 1 up to the sampler's distance from uniform (< 2^-32 per choice)
    assert 0.0 < tv_bound(["good", "bad"], cl, attack_source=SYN) < 1e-8
    assert tv_bound(["good", "bad"], SYN) > 0.01


def test_cli_commands(tmp_path, capsys) -> None:
    from certkit.core.cli import main

    assert main(["--json", "rank", "evaluate", "--metrics", "ndcg@10,map"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mean"]["ndcg@10"] > 0.5
    run = tmp_path / "run.trec"
    assert main(["rank", "retrieve", "--out", str(run), "--k", "20"]) == 0
    assert main(["--json", "rank", "evaluate", "--run", str(run)]) == 0
    log = tmp_path / "cert.jsonl"
    assert main(["--json", "--quiet", "rank", "certify", "--queries", "2", "--n", "50", "--depth", "5",
                 "--log", str(log), "--method", "masking"]) == 0
    capsys.readouterr()
    from certkit.core.results import ResultLog

    assert len(ResultLog.read(log)) == 2 and ResultLog.read_settings(log)["method"] == "masking"
    # resuming with other settings is refused (exit 2), --new starts afresh
    assert main(["--quiet", "rank", "certify", "--queries", "2", "--n", "60", "--depth", "5",
                 "--log", str(log), "--method", "masking"]) == 2
    assert "n 50 in the file, 60 now" in capsys.readouterr().err
    assert main(["--json", "--quiet", "rank", "certify", "--queries", "2", "--n", "60", "--depth", "5",
                 "--log", str(log), "--method", "masking", "--new"]) == 0
    capsys.readouterr()
    assert ResultLog.read_settings(log)["n"] == 60
    assert main(["rank", "plot", str(log), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert main(["rank", "certify", "--collection", "bogus"]) == 2
    assert main(["rank", "certify", "--method", "bogus", "--queries", "1"]) == 2


def test_report_section(tmp_path, monkeypatch) -> None:
    from certkit.core.report import ReportContext
    from certkit.rank import report
    from certkit.rank.report import sections

    monkeypatch.setattr(report, "QUICK_STEPS", 40)  # the CI budget; the report trains 300
    secs = sections(ReportContext(tmp_path, tmp_path / "cache"))
    s = secs[0]
    assert s.domain == "rank" and s.tables[0].rows and s.figures[0].png[:4] == b"\x89PNG"
    assert [r[0] for r in s.tables[0].rows] == ["BM25 (bm25s)", "K-NRM (trained)"]
    assert 0.5 < s.summary["bm25_ndcg10_default"] <= 1.0
    assert 0.0 <= s.summary["crq_at_1"] <= 1.0 and 0.0 <= s.summary["knrm_crq_at_1"] <= 1.0
    assert 0.0 < s.summary["knrm_ndcg10_heldout"] <= 1.0 and s.summary["knrm_from_cache"] is False
    assert list((tmp_path / "cache" / "rank").glob("knrm-default-*.pt"))  # reuse: test_load_or_train_caches


def test_rank_docs_used_by_attacks(default_coll, bm25) -> None:
    run = bm25.retrieve({"q01": default_coll.queries["q01"]}, 5)
    assert len(rank_docs(run["q01"])) == 5


def test_cli_knrm_ranker(tmp_path, capsys, monkeypatch, wordnet) -> None:
    from certkit.core.cli import main
    from certkit.rank import neural

    monkeypatch.setenv("CERTKIT_CACHE", str(tmp_path))
    real = neural.load_or_train_knrm
    monkeypatch.setattr(neural, "load_or_train_knrm",
                        lambda *a, **kw: real(*a, **{**kw, "steps": 5, "buckets": 1 << 10}))
    assert main(["--json", "rank", "attack", "--ranker", "knrm", "--queries", "1", "--target-rank", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "success_rate" in json.dumps(out)
    assert list((tmp_path / "rank").glob("knrm-default-*.pt"))
    assert main(["rank", "attack", "--ranker", "nope"]) == 2
