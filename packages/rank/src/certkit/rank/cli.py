"""``certkit rank ...``: retrieve, evaluate, certify, attack, plot.

Collections: ``default`` (embedded), ``cranfield:<folder>``, ``vaswani:<folder>``,
``beir:<folder>`` (``--split``); or the user's own ``--corpus``, ``--topics`` (TREC, BEIR
jsonl[.gz], SMART or tsv, detected from the content), ``--qrels`` and ``--run`` (certify and
attack take each topic's candidates from the run). Rankers: ``bm25``, ``knrm`` (K-NRM trained on the collection's
queries once and cached under the certkit cache), ``dense`` (MiniLM, optional extra) or
``module:factory`` (a callable taking the collection's corpus dict and returning a
:class:`~certkit.rank.rankers.Ranker`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from certkit.core.cli import STATE, UsageError, echo_json

app = typer.Typer(help="Ranking / IR: retrieval, trec_eval metrics, attacks, certified top-K robustness.",
                  no_args_is_help=True)

CollOpt = Annotated[str, typer.Option("--collection", "-c", help="default | cranfield:DIR | vaswani:DIR | beir:DIR")]
CorpusOpt = Annotated[Path | None, typer.Option(help="corpus file (TREC, BEIR jsonl[.gz], SMART, tsv) or BEIR "
                                                "folder, in place of the collection's")]
TopicsOpt = Annotated[Path | None, typer.Option(help="topics file (TREC, BEIR jsonl[.gz], SMART, tsv)")]
QrelsOpt = Annotated[Path | None, typer.Option(help="qrels (TREC or BEIR tsv), in place of the collection's")]
RunOpt = Annotated[Path | None, typer.Option(help="TREC run: each topic's candidates are its top --depth "
                                             "documents (default: BM25 on the corpus)")]
SplitOpt = Annotated[str, typer.Option(help="BEIR split of a beir:DIR collection")]
FieldOpt = Annotated[str, typer.Option(help="TREC topics field: title | desc | narr | title+desc")]
K1Opt = Annotated[float, typer.Option(help="BM25 k1")]
BOpt = Annotated[float, typer.Option(help="BM25 b")]
StemOpt = Annotated[str, typer.Option(help="Snowball stemmer language or none")]
StopOpt = Annotated[str, typer.Option(help="stop-word list (en) or none")]
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


def _bm25(corpus: dict[str, str], opts: dict[str, Any]) -> Any:
    from certkit.rank.rankers import BM25Ranker

    return BM25Ranker(corpus, **opts)


def _bm25_opts(k1: float, b: float, stemmer: str, stopwords: str) -> dict[str, Any]:
    """BM25Ranker keyword arguments from the command line (``none`` turns a step off)."""
    return {"k1": k1, "b": b, "stemmer": None if stemmer == "none" else stemmer,
            "stopwords": None if stopwords == "none" else stopwords}


def _ranker(spec: str, corpus: dict[str, str], coll: Any = None, bm25: dict[str, Any] | None = None) -> Any:
    from certkit.rank.rankers import Ranker

    if spec == "bm25":
        return _bm25(corpus, bm25 or {})
    if spec == "knrm":
        # trained on the collection's queries once, cached under the certkit cache
        from certkit.core.cache import cache_dir
        from certkit.rank.neural import load_or_train_knrm

        if coll is None or not coll.qrels:
            raise UsageError("--ranker knrm: the collection has no qrels to train on (pass --qrels)")
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


def _ranker_fingerprint(r: Any) -> Any:
    """What identifies a ranker's scores in a log's settings: BM25's parameters, a neural
    ranker's weights, else its class."""
    from certkit.core.results import fingerprint
    from certkit.rank.rankers import BM25Ranker

    if isinstance(r, BM25Ranker):
        return {"k1": r.k1, "b": r.b, "method": r.method, "stemmer": r.stemmer_name,
                "stopwords": r.stopwords_name}
    model = getattr(r, "model", None)
    if model is not None:
        try:
            return fingerprint(model)
        except (TypeError, ValueError):
            pass
    return f"{type(r).__module__}.{type(r).__qualname__}"


def _inputs(collection: str, corpus: Path | None, topics: Path | None, qrels: Path | None,
            split: str, topic_field: str) -> Any:
    """The collection, with the user's corpus, topics and qrels in place of its own."""
    from certkit.rank.collections import Collection
    from certkit.rank.io import read_corpus, read_qrels, read_topics

    if corpus is not None:
        if topics is None:
            raise UsageError("--topics: required with --corpus")
        c = Collection(corpus.stem or "corpus", read_corpus(corpus), {}, {})
    else:
        c = _collection(collection, split)
    if topics is not None:
        c = Collection(c.name, c.corpus, read_topics(topics, topic_field), c.qrels)
    if qrels is not None:
        c = Collection(c.name, c.corpus, c.queries, read_qrels(qrels))
    if not c.queries:
        raise ValueError(f"--topics: no topics in {topics}")
    return c


def _candidates(r: Any, c: Any, qs: dict[str, str], depth: int, run: Path | None,
                bm25: dict[str, Any]) -> Any:
    """Each topic's candidates: the user's run (``run``; its documents and scores) or a BM25
    first stage of ``depth`` re-scored by the ranker."""
    from certkit.rank.io import read_run
    from certkit.rank.rankers import BM25Ranker, rerank

    if run is not None:
        rn = read_run(run)
        cand = {q: rn[q] for q in qs if rn.get(q)}
        if not cand:
            raise ValueError(f"--run: {run} answers none of the {len(qs)} chosen topics")
        for q, docs in cand.items():
            unknown = [d for d in docs if d not in c.corpus]
            if unknown:
                raise ValueError(f"--run: query {q!r} retrieves {len(unknown)} documents that are not "
                                 f"in the corpus (e.g. {unknown[0]!r})")
        if len(cand) < len(qs):
            typer.echo(f"certkit: note: {len(qs) - len(cand)} topics have no results in {run}; "
                       "they are skipped", err=True)
        return cand
    first = r if isinstance(r, BM25Ranker) else _bm25(c.corpus, bm25)
    with _notes():
        cand = first.retrieve(qs, depth)
    cand = {q: d for q, d in cand.items() if d}
    if r is not first:
        cand = rerank(r, qs, cand, c.corpus)
    return cand


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


@contextmanager
def _notes() -> Iterator[None]:
    """Warnings raised inside (missing queries, empty results) as one-line notes on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        typer.echo(f"certkit: note: {w.message}", err=True)


def _out(data: dict[str, Any], lines: list[str]) -> None:
    if STATE["json"]:
        echo_json(data)
    else:
        for line in lines:
            typer.echo(line)


@app.command()
def retrieve(collection: CollOpt = "default", corpus: CorpusOpt = None, topics: TopicsOpt = None,
             out: Annotated[Path, typer.Option(help="TREC run file")] = Path("run.trec"),
             k: int = 1000, k1: K1Opt = 1.2, b: BOpt = 0.75, stemmer: StemOpt = "english",
             stopwords: StopOpt = "en", tag: Annotated[str, typer.Option(help="run tag (6th column)")] = "certkit-bm25",
             split: SplitOpt = "test", topic_field: FieldOpt = "title",
             pad: Annotated[bool, typer.Option(help="keep zero-score documents (matching no query term) "
                                               "to fill k")] = False) -> None:
    """BM25 (bm25s) retrieval of every topic; writes a TREC run (atomically)."""
    from certkit.rank.io import write_run

    c = _inputs(collection, corpus, topics, None, split, topic_field)
    with _notes():
        run = _bm25(c.corpus, _bm25_opts(k1, b, stemmer, stopwords)).retrieve(c.queries, k, pad=pad)
    write_run(run, out, tag=tag)
    _out({"run": str(out), "queries": len(run), "documents": sum(len(d) for d in run.values())},
         [f"wrote {out} ({len(run)} queries)"])


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
    with _notes():  # stdout stays trec_eval's format
        res = ev(rn, qr, names, ties=ties, relevance_level=relevance_level, complete=complete,
                 precision=precision)
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
            corpus: CorpusOpt = None, topics: TopicsOpt = None, qrels: QrelsOpt = None, run: RunOpt = None,
            method: Annotated[str, typer.Option(help="certdr | masking")] = "certdr",
            synonyms: Annotated[str, typer.Option(help="wordnet | wordnet:DIR")] = "wordnet",
            closure: Annotated[bool, typer.Option(help="CertDR: smooth over each query's synonym closure")] = True,
            budget: Annotated[int | None, typer.Option(help="CertDR: max substituted words per doc")] = None,
            mask_rate: float = 0.3, n: int = 1000, alpha: float = 0.05,
            depth: Annotated[int, typer.Option(help="candidates per topic")] = 20,
            queries: Annotated[int, typer.Option(help="first N topics (0 = all)")] = 0,
            qids: QidsOpt = None,
            bound: str = "hybrid", correction: str = "bonferroni", threat: str = "promote",
            k1: K1Opt = 1.2, b: BOpt = 0.75, stemmer: StemOpt = "english", stopwords: StopOpt = "en",
            split: SplitOpt = "test", topic_field: FieldOpt = "title",
            seed: int = 0, log: Annotated[Path | None, typer.Option(help="resumable JSON-lines log")] = None,
            new: Annotated[bool, typer.Option("--new", help="move an old --log aside and start afresh")] = False
            ) -> None:
    """Certified top-K robustness (CertDR or random masking) of each topic's top --depth
    candidates (from --run, or BM25); prints CRQ@K. Each topic is certified on its own."""
    from certkit.core.results import fingerprint, run_settings
    from certkit.rank.certify import certify_run, crq
    from certkit.rank.smoothing import DEFAULT_KS

    if depth < 1:
        raise UsageError(f"--depth: expected >= 1, got {depth}")
    bm = _bm25_opts(k1, b, stemmer, stopwords)
    c = _inputs(collection, corpus, topics, qrels, split, topic_field)
    r = _ranker(ranker, c.corpus, c, bm)
    qs = _select(c.queries, queries, qids)
    cand = _candidates(r, c, qs, depth, run, bm)
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
    settings = None
    if log is not None:
        settings = run_settings(
            command="rank certify", ranker=ranker, ranker_fingerprint=_ranker_fingerprint(r),
            corpus=fingerprint(c.corpus), topics=fingerprint(qs),
            candidates=fingerprint(run) if run is not None else {"first_stage": "bm25", **bm},
            depth=depth, method=method, synonyms=synonyms if method == "certdr" else None, seed=seed,
            **kw)
    res = certify_run(r, qs, cand, c.corpus, syn, depth=depth, log=str(log) if log else None,
                      log_settings=settings, new=new, method=method, seed=seed, **kw)
    rates = crq(res, DEFAULT_KS, radius=1 if method == "masking" else None)
    _out({"crq": rates, "queries": len(res), "method": method},
         [f"CRQ@{k:<3} {v:.3f}" for k, v in rates.items()])


@app.command()
def attack(collection: CollOpt = "default", ranker: RankerOpt = "bm25",
           corpus: CorpusOpt = None, topics: TopicsOpt = None, qrels: QrelsOpt = None,
           run: Annotated[Path | None, typer.Option(help="TREC run: the target is the run's document at "
                                                    "--target-rank; the ranker scores the run's candidates")] = None,
           kind: Annotated[str, typer.Option(help="prada | decision | topic")] = "prada",
           synonyms: str = "wordnet", target_rank: int = 50, max_fraction: float = 0.2,
           queries: Annotated[int, typer.Option(help="first N topics (0 = all)")] = 10, qids: QidsOpt = None,
           depth: Annotated[int | None, typer.Option(help="candidates per topic (default: max(100, "
                                                      "target rank + 1))")] = None,
           k1: K1Opt = 1.2, b: BOpt = 0.75, stemmer: StemOpt = "english", stopwords: StopOpt = "en",
           split: SplitOpt = "test", topic_field: FieldOpt = "title") -> None:
    """Word-substitution attacks; prints success rate, boosted ranks, top-10 rate, perturbation %."""
    import numpy as np

    from certkit.rank.attacks import attack_metrics, substitution_attack, topic_attack
    from certkit.rank.metrics import rank_docs
    from certkit.rank.rankers import rerank

    if target_rank < 1:
        raise UsageError(f"--target-rank: expected >= 1, got {target_rank}")
    bm = _bm25_opts(k1, b, stemmer, stopwords)
    c = _inputs(collection, corpus, topics, qrels, split, topic_field)
    r = _ranker(ranker, c.corpus, c, bm)
    syn = _synonyms(synonyms)
    qs = _select(c.queries, queries, qids)
    d = depth if depth is not None else max(100, target_rank + 1)
    cand = _candidates(r, c, qs, d, run, bm)
    # the target's rank: in the user's run, else in the ranker's own order
    order = {q: rank_docs(cand[q])[:d] for q in cand}
    scores = rerank(r, qs, {q: {x: 0.0 for x in order[q]} for q in cand}, c.corpus) if run is not None else cand
    qids_ok = [q for q in sorted(cand) if len(order[q]) >= target_rank]
    results = []
    if kind in ("prada", "decision"):
        for q in qids_ok:
            t = order[q][target_rank - 1]
            others = np.array([scores[q][x] for x in order[q] if x != t])
            results.append(substitution_attack(r, qs[q], c.corpus[t], others, syn, max_fraction=max_fraction,
                                               mode="score" if kind == "prada" else "decision"))
    elif kind == "topic":
        if not qids_ok:
            raise ValueError(f"--target-rank: no topic has {target_rank} candidates")
        # one group: all chosen topics; promote the doc at target_rank for the first topic
        t = order[qids_ok[0]][target_rank - 1]
        group = [np.array([scores[q][x] for x in order[q] if x != t]) for q in qids_ok]
        results.append(topic_attack(r, [qs[q] for q in qids_ok], c.corpus[t], group, syn,
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
        rows = ResultLog.read(p)
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
