"""``certkit rank ...``: retrieve, evaluate, certify, attack, plot.

Collections: ``default`` (embedded), ``cranfield:<folder>``, ``vaswani:<folder>``,
``beir:<folder>``. Rankers: ``bm25``, ``knrm`` (K-NRM trained on the collection's
queries once and cached under the certkit cache), ``dense`` (MiniLM, optional extra) or
``module:factory`` (a callable taking the collection's corpus dict and returning a
:class:`~certkit.rank.rankers.Ranker`).
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import STATE, UsageError, echo_json

app = typer.Typer(help="Ranking / IR: retrieval, trec_eval metrics, attacks, certified top-K robustness.",
                  no_args_is_help=True)

CollOpt = Annotated[str, typer.Option("--collection", "-c", help="default | cranfield:DIR | vaswani:DIR | beir:DIR")]
RankerOpt = Annotated[str, typer.Option("--ranker", "-r", help="bm25 | knrm (trained on the collection, cached) | "
                                        "dense (MiniLM extra) | module:factory(corpus) -> Ranker")]


def _collection(spec: str, split: str = "test") -> Any:
    from certkit.rank import collections as C

    if spec == "default":
        return C.default_collection()
    kind, _, path = spec.partition(":")
    loaders = {"cranfield": C.load_cranfield, "vaswani": C.load_vaswani}
    if kind not in (*loaders, "beir") or not path:
        raise UsageError(f"--collection: expected default, cranfield:DIR, vaswani:DIR or beir:DIR, got {spec!r}")
    if not Path(path).exists():
        raise FileNotFoundError(f"--collection: {path} does not exist")
    if kind == "beir":
        return C.load_beir(path, split)
    return loaders[kind](path)


def _ranker(spec: str, corpus: dict[str, str], coll: Any = None) -> Any:
    from certkit.rank.rankers import BM25Ranker, Ranker

    if spec == "bm25":
        return BM25Ranker(corpus)
    if spec == "knrm":
        # trained on the collection's queries once, cached under the certkit cache
        from certkit.core.cache import cache_dir
        from certkit.rank.neural import load_or_train_knrm

        if coll is None or not coll.qrels:
            raise UsageError("--ranker knrm: the collection has no qrels to train on")
        r, _ = load_or_train_knrm(cache_dir("rank"), coll.name, coll.corpus, coll.queries, coll.qrels)
        return r
    if spec == "dense":
        from certkit.rank.dense import DenseRanker

        return DenseRanker(corpus)
    mod, _, attr = spec.partition(":")
    if not attr:
        raise UsageError(f"--ranker: expected bm25, knrm, dense or module:factory, got {spec!r}")
    factory = getattr(importlib.import_module(mod), attr)
    r = factory(corpus)
    if not isinstance(r, Ranker):
        raise UsageError(f"--ranker: {spec} did not return a Ranker (needs .name and .score)")
    return r


def _synonyms(source: str) -> Any:
    from certkit.rank.synonyms import DEFAULT_WORDNET, WordNetSynonyms

    if source == "wordnet":
        return WordNetSynonyms(DEFAULT_WORDNET, max_senses=2)
    if source.startswith("wordnet:"):
        return WordNetSynonyms(source.split(":", 1)[1], max_senses=2)
    raise UsageError(f"--synonyms: expected wordnet or wordnet:DIR, got {source!r}")


QidsOpt = Annotated[str | None, typer.Option("--qids", help="comma-separated query ids (overrides --queries)")]


def _select(topics: dict[str, str], first: int, qids: str | None) -> dict[str, str]:
    """The chosen topics: ``qids`` (comma-separated) or the first ``first`` in sorted order (0 = all)."""
    if qids is not None:
        want = [q.strip() for q in qids.split(",") if q.strip()]
        unknown = [q for q in want if q not in topics]
        if not want or unknown:
            raise UsageError(f"--qids: expected query ids of the topics, got unknown {unknown[:3] or qids!r}")
        return {q: topics[q] for q in sorted(set(want))}
    if first < 0:
        raise UsageError(f"--queries: expected N >= 0, got {first}")
    return {q: topics[q] for q in sorted(topics)[: first or None]}


def _out(data: dict[str, Any], lines: list[str]) -> None:
    if STATE["json"]:
        echo_json(data)
    else:
        for line in lines:
            typer.echo(line)


@app.command()
def retrieve(collection: CollOpt = "default", out: Annotated[Path, typer.Option(help="TREC run file")] = Path("run.trec"),
             k: int = 1000) -> None:
    """BM25 (bm25s) retrieval of every query; writes a TREC run."""
    from certkit.rank.io import write_run
    from certkit.rank.rankers import BM25Ranker

    c = _collection(collection)
    run = BM25Ranker(c.corpus).retrieve(c.queries, k)
    write_run(run, out, tag="certkit-bm25")
    _out({"run": str(out), "queries": len(run)}, [f"wrote {out} ({len(run)} queries)"])


@app.command()
def evaluate(run: Annotated[Path | None, typer.Option(help="TREC run (default: BM25 on the collection)")] = None,
             qrels: Annotated[Path | None, typer.Option(help="TREC or BEIR qrels (default: the collection's)")] = None,
             collection: Annotated[str, typer.Option("--collection", help="default | cranfield:DIR | "
                                                     "vaswani:DIR | beir:DIR")] = "default",
             measure: Annotated[list[str] | None, typer.Option(
                 "--measure", "-m", help="trec_eval (map, ndcg_cut.10, P.5,10, recip_rank, Rprec, bpref, "
                 "success.10, num_rel ...) or ir-measures (nDCG@10, AP(rel=2), RR@10, Judged@10 ...) "
                 "name; repeatable")] = None,
             metrics: Annotated[str | None, typer.Option(help="comma-separated names (alternative to -m)")] = None,
             per_query: Annotated[bool, typer.Option("--per-query", "-q", help="trec_eval -q: one line "
                                                     "per query and measure, then 'all'")] = False,
             complete: Annotated[bool, typer.Option("--complete", "-c", help="trec_eval -c: qrels queries "
                                                    "missing from the run count as 0")] = False,
             relevance_level: Annotated[int, typer.Option("--relevance-level", "-l", help="trec_eval -l: "
                                                          "grade >= this is relevant")] = 1,
             precision: Annotated[str, typer.Option(help="score comparison: single (trec_eval 9, "
                                                    "pytrec_eval, ir-measures) | double (trec_eval 10)")] = "single",
             ties: Annotated[str, typer.Option(help="trec_eval | input")] = "trec_eval",
             split: Annotated[str, typer.Option(help="BEIR split of the collection's qrels")] = "test") -> None:
    """Measures exactly as trec_eval computes them (the mean over the evaluated queries;
    -c counts missing ones as 0). Prints trec_eval's ``measure<TAB>qid<TAB>value`` lines."""
    from certkit.rank.io import read_qrels, read_run
    from certkit.rank.metrics import DEFAULT_METRICS, format_trec_eval
    from certkit.rank.metrics import evaluate as ev
    from certkit.rank.rankers import BM25Ranker

    names = list(measure or [])
    if metrics:
        names += [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        names = list(DEFAULT_METRICS)
    if relevance_level < 0:
        raise UsageError(f"--relevance-level: expected an integer >= 0, got {relevance_level}")
    c = None
    if qrels is not None:
        qr = read_qrels(qrels)
    else:
        c = _collection(collection, split)
        qr = c.qrels
    if run is not None:
        rn = read_run(run)
    else:
        c = c or _collection(collection, split)
        rn = BM25Ranker(c.corpus).retrieve(c.queries, 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ev(rn, qr, names, ties=ties, relevance_level=relevance_level, complete=complete,
                 precision=precision)
    for w in caught:  # notes on stderr; stdout stays trec_eval's format
        typer.echo(f"certkit: note: {w.message}", err=True)
    if STATE["json"]:
        data: dict[str, Any] = {"all": res.aggregate(), "mean": res.mean(), "worst10": res.worst(0.1),
                                "queries": len(res.qids)}
        if per_query:
            data["per_query"] = {q: {m: float(v[i]) for m, v in res.per_query.items()}
                                 for i, q in enumerate(res.qids)}
        echo_json(data)
        return
    for line in format_trec_eval(res, per_query=per_query):
        typer.echo(line)


@app.command()
def certify(collection: CollOpt = "default", ranker: RankerOpt = "bm25",
            method: Annotated[str, typer.Option(help="certdr | masking")] = "certdr",
            synonyms: Annotated[str, typer.Option(help="wordnet | wordnet:DIR")] = "wordnet",
            closure: Annotated[bool, typer.Option(help="CertDR: smooth over synonym closures")] = True,
            budget: Annotated[int | None, typer.Option(help="CertDR: max substituted words per doc")] = None,
            mask_rate: float = 0.3, n: int = 1000, alpha: float = 0.05, depth: int = 20,
            queries: Annotated[int, typer.Option(help="first N queries (0 = all)")] = 0,
            qids: QidsOpt = None,
            bound: str = "hybrid", correction: str = "bonferroni", threat: str = "promote",
            seed: int = 0, log: Annotated[Path | None, typer.Option(help="resumable JSON-lines log")] = None) -> None:
    """Certified top-K robustness (CertDR or random masking); prints CRQ@K."""
    from certkit.rank.certify import certify_run, crq
    from certkit.rank.rankers import BM25Ranker, rerank
    from certkit.rank.smoothing import DEFAULT_KS

    c = _collection(collection)
    r = _ranker(ranker, c.corpus, c)
    qs = _select(c.queries, queries, qids)
    first = r if isinstance(r, BM25Ranker) else BM25Ranker(c.corpus)
    cand = first.retrieve(qs, depth)
    if r is not first:
        cand = rerank(r, qs, cand, c.corpus)
    kw: dict[str, Any] = {"n": n, "alpha": alpha, "bound": bound, "correction": correction, "threat": threat}
    syn: Any = None
    if method == "certdr":
        syn = _synonyms(synonyms)
        kw["budget"] = budget
        kw["closure"] = closure
    elif method == "masking":
        kw["mask_rate"] = mask_rate
    else:
        raise UsageError(f"--method: expected certdr or masking, got {method!r}")
    res = certify_run(r, qs, cand, c.corpus, syn, depth=depth, log=str(log) if log else None,
                      method=method, seed=seed, **kw)
    rates = crq(res, DEFAULT_KS, radius=1 if method == "masking" else None)
    _out({"crq": rates, "queries": len(res), "method": method},
         [f"CRQ@{k:<3} {v:.3f}" for k, v in rates.items()])


@app.command()
def attack(collection: CollOpt = "default", ranker: RankerOpt = "bm25",
           kind: Annotated[str, typer.Option(help="prada | decision | topic")] = "prada",
           synonyms: str = "wordnet", target_rank: int = 50, max_fraction: float = 0.2,
           queries: int = 10) -> None:
    """Word-substitution attacks; prints success rate, boosted ranks, top-10 rate, perturbation %."""
    import numpy as np

    from certkit.rank.attacks import attack_metrics, substitution_attack, topic_attack
    from certkit.rank.metrics import rank_docs
    from certkit.rank.rankers import BM25Ranker, rerank

    c = _collection(collection)
    r = _ranker(ranker, c.corpus, c)
    syn = _synonyms(synonyms)
    qids = sorted(c.queries)[:queries]
    qs = {q: c.queries[q] for q in qids}
    first = r if isinstance(r, BM25Ranker) else BM25Ranker(c.corpus)
    cand = first.retrieve(qs, max(100, target_rank + 1))
    if r is not first:
        cand = rerank(r, qs, cand, c.corpus)
    results = []
    if kind in ("prada", "decision"):
        for q in qids:
            ranked = rank_docs(cand[q])
            if len(ranked) <= target_rank:
                continue
            t = ranked[target_rank - 1]
            others = np.array([cand[q][d] for d in ranked if d != t])
            results.append(substitution_attack(r, qs[q], c.corpus[t], others, syn, max_fraction=max_fraction,
                                               mode="score" if kind == "prada" else "decision"))
    elif kind == "topic":
        # one group: all chosen queries; promote the doc at target_rank for the first query
        t = rank_docs(cand[qids[0]])[target_rank - 1]
        others = [np.array([cand[q][d] for d in rank_docs(cand[q]) if d != t]) for q in qids]
        results.append(topic_attack(r, [qs[q] for q in qids], c.corpus[t], others, syn,
                                    max_fraction=max_fraction))
    else:
        raise UsageError(f"--kind: expected prada, decision or topic, got {kind!r}")
    m = attack_metrics(results)
    _out(m, [f"{k:>18}: {v:.3f}" for k, v in m.items()])


@app.command()
def plot(log: Annotated[list[Path], typer.Argument(help="certify logs (JSON lines)")],
         out: Annotated[Path, typer.Option(help="PNG path")] = Path("crq.png")) -> None:
    """CRQ@K curves from one or more certify logs."""
    from certkit.core.report import use_agg
    from certkit.core.results import ResultLog
    from certkit.rank.certify import crq
    from certkit.rank.smoothing import DEFAULT_KS

    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for p in log:
        if not p.exists():
            raise FileNotFoundError(f"log: {p} does not exist")
        rows = ResultLog(str(p)).rows()
        masking = any(r.get("radius") for r in rows)
        rates = crq(rows, DEFAULT_KS, radius=1 if masking else None)
        ax.plot(list(DEFAULT_KS), [rates[k] for k in DEFAULT_KS], marker="o", label=p.stem)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("CRQ@K")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    _out({"plot": str(out)}, [f"wrote {out}"])
