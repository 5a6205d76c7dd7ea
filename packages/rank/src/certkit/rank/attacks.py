"""Word-substitution ranking attacks: a PRADA-like attack on one (query, document) and a
topic-oriented attack on a group of queries.

- :func:`substitution_attack` (after PRADA, Wu et al., "PRADA: Practical Black-Box
  Adversarial Attacks against Neural Ranking Models", arXiv:2204.01321, and the attack
  taxonomy of "Are Neural Ranking Models Robust?", Wu et al., arXiv:2108.05018):
  words are ranked by importance (the score drop when the word is deleted, measured on a
  surrogate ranker or on the victim), then, in that order, each word is replaced by the
  synonym that most improves the target document — by the victim's score
  (``mode="score"``, black box with scores) or by its rank only (``mode="decision"``, a
  decision-based black box: a substitution is kept when the rank does not get worse and
  ties go to the candidate found first) — until ``max_fraction`` of the words changed.
  ``guide="gradient"`` is the white-box-surrogate variant: a ranker with
  ``substitution_gains`` (:class:`~certkit.rank.neural.NeuralRanker`; the surrogate if
  given, else the victim) ranks every candidate substitution by its first-order score
  gain ``(e(w') − e(w)) · ∇_{e(w)} f`` (HotFlip, Ebrahimi et al., arXiv:1712.06751; PRADA
  also ranks candidates with embedding-space information); positions are attacked in
  order of their best gain and only the ``max_candidates`` best-ranked candidates of a
  position are sent to the victim. The gradient is taken once, on the clean document.
- :func:`topic_attack` (after "Topic-oriented Adversarial Attacks against Black-box
  Neural Ranking Models", Liu et al., arXiv:2304.14867): promote one document for a group
  of queries. We use a **greedy coordinate search**: at each step, over all remaining
  (position, synonym) pairs of the most important positions, take the one that most
  improves the mean rank over the group (score sum as tie break), stop when no pair helps
  or the budget is spent. (The paper uses a reinforcement-learning search; greedy is our
  choice, stated here.)

(The three arXiv ids above are recalled, not checked against the papers.)

Metrics (:func:`attack_metrics`): success rate (rank improved), average boosted ranks,
top-10 rate (attacked document lands in the top 10), perturbation % (substituted words /
words). Ranks are 1-based within the candidate list, the target counted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from certkit.core.validation import check_int
from certkit.rank.candidates import split_words
from certkit.rank.rankers import Ranker, check_docs
from certkit.rank.synonyms import SynonymSource

__all__ = ["AttackResult", "attack_metrics", "rank_of", "substitution_attack", "topic_attack",
           "word_importance"]


@dataclass
class AttackResult:
    original_rank: int | list[int]
    new_rank: int | list[int]
    text: str
    n_substituted: int
    n_words: int
    queries_used: int = 0

    @property
    def perturbation(self) -> float:
        return self.n_substituted / self.n_words if self.n_words else 0.0


def rank_of(score: float, others: npt.NDArray[np.float64]) -> int:
    """1-based rank of a document with ``score`` among ``others`` (ties count against it:
    a pessimistic rank for the attacker)."""
    return int(1 + np.sum(others >= score))


def word_importance(ranker: Ranker, query: str, words: Sequence[str]) -> npt.NDArray[np.float64]:
    """Score drop when each word is deleted (leave-one-out). Shape (T,)."""
    base = ranker.score(query, [" ".join(words)])[0]
    variants = [" ".join(words[:i] + list(words[i + 1:])) for i in range(len(words))]
    if not variants:
        return np.zeros(0)
    return base - ranker.score(query, variants)


def _candidates(word: str, source: SynonymSource) -> list[str]:
    if not word.isalpha():
        return []
    return [s for s in source(word.lower()) if s != word.lower()]


def substitution_attack(ranker: Ranker, query: str, doc: str, others: Sequence[str] | npt.ArrayLike,
                        source: SynonymSource, *, max_fraction: float = 0.2,
                        mode: str = "score", surrogate: Ranker | None = None,
                        max_candidates: int = 20, guide: str = "none") -> AttackResult:
    """Promote ``doc`` for ``query`` against the other candidates (their texts, or their
    victim scores as an array). Returns the perturbed text and the ranks before/after.
    guide: ``"none"`` (leave-one-out importance, candidates in synonym-list order) or
    ``"gradient"`` (see module docstring)."""
    if mode not in ("score", "decision"):
        raise ValueError(f"mode: expected 'score' or 'decision', got {mode!r}")
    if guide not in ("none", "gradient"):
        raise ValueError(f"guide: expected 'none' or 'gradient', got {guide!r}")
    guider = surrogate or ranker
    if guide == "gradient" and not hasattr(guider, "substitution_gains"):
        raise ValueError(f"guide: 'gradient' needs a ranker with substitution_gains (the surrogate or "
                         f"victim), got {type(guider).__name__}")
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"max_fraction: expected a value in (0, 1], got {max_fraction!r}")
    check_docs(query, [doc])
    if isinstance(others, np.ndarray) or (len(others) and not isinstance(others[0], str)):  # type: ignore[index]
        other_scores = np.asarray(others, dtype=np.float64)
    else:
        other_scores = ranker.score(query, list(others))  # type: ignore[arg-type]
    words = split_words(doc)
    budget = int(max_fraction * len(words))
    ranked_cands: list[list[str]] | None = None
    if guide == "gradient":
        all_c = [_candidates(w, source) for w in words]
        gains = guider.substitution_gains(query, words, all_c)  # type: ignore[union-attr]
        ranked_cands = []
        imp = np.full(len(words), -np.inf)
        for i, (c, g) in enumerate(zip(all_c, gains, strict=True)):
            o = np.argsort(-np.asarray(g), kind="stable")
            ranked_cands.append([c[k] for k in o.tolist()])
            if len(c):
                imp[i] = float(np.max(g))
    else:
        imp = word_importance(guider, query, words)
    order = np.argsort(-imp, kind="stable")
    cur = list(words)
    cur_score = float(ranker.score(query, [doc])[0])
    rank0 = rank_of(cur_score, other_scores)
    cur_rank, changed, n_queries = rank0, 0, 1
    for pos in order.tolist():
        if changed >= budget:
            break
        cands = (ranked_cands[pos] if ranked_cands is not None
                 else _candidates(words[pos], source))[:max_candidates]
        if not cands:
            continue
        texts = [" ".join([*cur[:pos], c, *cur[pos + 1:]]) for c in cands]
        s = ranker.score(query, texts)
        n_queries += len(texts)
        if mode == "score":
            j = int(np.argmax(s))
            if s[j] > cur_score:
                cur[pos], cur_score, changed = cands[j], float(s[j]), changed + 1
                cur_rank = rank_of(cur_score, other_scores)
        else:
            ranks = [rank_of(float(v), other_scores) for v in s]
            j = int(np.argmin(ranks))
            if ranks[j] < cur_rank:
                cur[pos], cur_score, cur_rank, changed = cands[j], float(s[j]), ranks[j], changed + 1
    return AttackResult(rank0, cur_rank, " ".join(cur), changed, len(words), n_queries)


def topic_attack(ranker: Ranker, queries: Sequence[str], doc: str,
                 others: Sequence[Sequence[str]] | Sequence[npt.ArrayLike],
                 source: SynonymSource, *, max_fraction: float = 0.2, positions: int = 20,
                 max_candidates: int = 10) -> AttackResult:
    """Promote ``doc`` for every query of a group. ``others[i]``: query i's other
    candidates (texts or victim scores). Greedy coordinate search on the mean rank."""
    if not queries:
        raise ValueError("queries: empty group")
    if len(others) != len(queries):
        raise ValueError("others: one candidate list per query expected")
    positions = check_int(positions, "positions", minimum=1)
    other_scores = []
    for q, o in zip(queries, others, strict=True):
        if isinstance(o, np.ndarray) or (len(o) and not isinstance(o[0], str)):  # type: ignore[index]
            other_scores.append(np.asarray(o, dtype=np.float64))
        else:
            other_scores.append(ranker.score(q, list(o)))  # type: ignore[arg-type]
    words = split_words(doc)
    budget = int(max_fraction * len(words))
    imp = sum(word_importance(ranker, q, words) for q in queries)
    pos_order = [p for p in np.argsort(-np.asarray(imp), kind="stable").tolist()
                 if _candidates(words[p], source)][:positions]
    cur = list(words)

    def ranks_of(text_list: list[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        rk = np.zeros(len(text_list))
        sc = np.zeros(len(text_list))
        for q, os_ in zip(queries, other_scores, strict=True):
            s = ranker.score(q, text_list)
            sc += s
            rk += np.array([rank_of(float(v), os_) for v in s])
        return rk / len(queries), sc

    r0, s0 = ranks_of([doc])
    rank0 = [rank_of(float(ranker.score(q, [doc])[0]), os_) for q, os_ in zip(queries, other_scores, strict=True)]
    cur_rank, cur_sc = float(r0[0]), float(s0[0])
    used: set[int] = set()
    n_queries = len(queries)
    while len(used) < budget:
        trials: list[tuple[int, str]] = []
        for p in pos_order:
            if p in used:
                continue
            trials += [(p, c) for c in _candidates(words[p], source)[:max_candidates]]
        if not trials:
            break
        texts = [" ".join([*cur[:p], c, *cur[p + 1:]]) for p, c in trials]
        rk, sc = ranks_of(texts)
        n_queries += len(texts) * len(queries)
        best = min(range(len(trials)), key=lambda i: (rk[i], -sc[i], i))
        if (rk[best], -sc[best]) >= (cur_rank, -cur_sc):
            break
        p, c = trials[best]
        cur[p] = c
        used.add(p)
        cur_rank, cur_sc = float(rk[best]), float(sc[best])
    final = [rank_of(float(ranker.score(q, [" ".join(cur)])[0]), os_)
             for q, os_ in zip(queries, other_scores, strict=True)]
    return AttackResult(rank0, final, " ".join(cur), len(used), len(words), n_queries)


def attack_metrics(results: Sequence[AttackResult], top: int = 10) -> dict[str, float]:
    """success rate, average boosted ranks, top-``top`` rate and mean perturbation %.
    Topic results count every (query, document) pair."""
    before, after, pert = [], [], []
    for r in results:
        b = r.original_rank if isinstance(r.original_rank, list) else [r.original_rank]
        a = r.new_rank if isinstance(r.new_rank, list) else [r.new_rank]
        before += b
        after += a
        pert.append(100.0 * r.perturbation)
    if not before:
        return {"success_rate": 0.0, "boosted_ranks": 0.0, f"top{top}_rate": 0.0, "perturbation_pct": 0.0}
    b_arr, a_arr = np.array(before, float), np.array(after, float)
    return {"success_rate": float(np.mean(a_arr < b_arr)),
            "boosted_ranks": float(np.mean(b_arr - a_arr)),
            f"top{top}_rate": float(np.mean(a_arr <= top)),
            "perturbation_pct": float(np.mean(pert))}
