"""Readers and writers for IR collections: TREC topics/qrels/runs/documents, BEIR, SMART.

Data model (plain dicts, so runs and qrels interoperate with pytrec_eval, ir-measures
and ranx without conversion):

- ``Corpus``  = ``dict[docid, text]`` (insertion order is the collection order);
- ``Topics``  = ``dict[qid, text]``;
- ``Qrels``   = ``dict[qid, dict[docid, int]]`` (graded; <= 0 is judged non-relevant);
- ``Run``     = ``dict[qid, dict[docid, float]]``.

Documented handling of awkward input:

- malformed qrels/run lines raise ``ValueError`` naming the file and the 1-based line;
- non-UTF-8 bytes: ``errors="strict"`` (default) raises ``ValueError`` with the line
  number; pass ``errors="replace"`` to decode them as U+FFFD instead;
- empty documents and empty queries are kept (they score 0 under BM25 and count as 0
  in every metric); blank lines in qrels/run files are skipped;
- a docid repeated within one query of a run or qrels file raises ``ValueError``
  (trec_eval silently keeps one of them, which hides a broken run).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

Corpus = dict[str, str]
Topics = dict[str, str]
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

PathLike = str | Path

__all__ = [
    "Corpus", "Qrels", "Run", "Topics",
    "read_beir", "read_qrels", "read_run", "read_smart", "read_trec_docs",
    "read_trec_topics", "read_tsv_topics", "write_beir", "write_qrels", "write_run",
    "write_trec_docs", "write_trec_topics",
]


def _check_errors(errors: str) -> None:
    if errors not in ("strict", "replace", "ignore"):
        raise ValueError(f"errors: expected 'strict', 'replace' or 'ignore', got {errors!r}")


def _lines(path: PathLike, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """(1-based line number, line without newline); a decode error names the line."""
    _check_errors(errors)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason}); "
                                 "pass errors='replace' to decode it anyway") from None
            yield lineno, line.rstrip("\r\n")


def _read_text(path: PathLike, errors: str = "strict") -> str:
    return "\n".join(line for _, line in _lines(path, errors))


# --------------------------------------------------------------------------- qrels


def read_qrels(path: PathLike, *, errors: str = "strict") -> Qrels:
    """TREC qrels ``qid iter docno rel`` (whitespace separated; ``iter`` is ignored).

    Also accepts BEIR's 3-column tsv ``query-id corpus-id score`` with a header line.
    A line with tabs that splits into 3 or 4 non-empty tab-separated fields is split on
    tabs only (BEIR ids may contain spaces); other lines on any whitespace.
    Relevance must be an integer; a malformed line raises ``ValueError`` with its number.
    """
    qrels: Qrels = {}
    for lineno, line in _lines(path, errors):
        parts = _fields(line)
        if not parts:
            continue
        if lineno == 1 and parts[:2] == ["query-id", "corpus-id"]:
            continue
        if len(parts) == 4:
            qid, _, docid, rel = parts
        elif len(parts) == 3:
            qid, docid, rel = parts
        else:
            raise ValueError(f"{path}:{lineno}: expected 'qid iter docno rel', got {line!r}")
        try:
            r = int(rel)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: relevance must be an integer, got {rel!r}") from None
        per_q = qrels.setdefault(qid, {})
        if docid in per_q:
            raise ValueError(f"{path}:{lineno}: duplicate judgement for query {qid!r}, doc {docid!r}")
        per_q[docid] = r
    return qrels


def _fields(line: str) -> list[str]:
    if "\t" in line:
        tab = [f.strip() for f in line.strip("\r\n").split("\t")]
        while tab and not tab[-1]:
            tab.pop()  # trailing tabs
        if len(tab) in (3, 4) and all(tab):
            return tab
    return line.split()


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: PathLike) -> None:
    """Write TREC qrels (``qid 0 docno rel``), queries and documents in sorted order."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid in sorted(qrels):
            for docid in sorted(qrels[qid]):
                _check_token(qid, "qid")
                _check_token(docid, "docid")
                fh.write(f"{qid} 0 {docid} {int(qrels[qid][docid])}\n")


# --------------------------------------------------------------------------- runs


def read_run(path: PathLike, *, errors: str = "strict") -> Run:
    """TREC run ``qid Q0 docno rank score tag``. The rank column is ignored (as trec_eval
    does): only scores order documents. Scores must be finite numbers."""
    run: Run = {}
    for lineno, line in _lines(path, errors):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise ValueError(f"{path}:{lineno}: expected 'qid Q0 docno rank score tag' "
                             f"(6 fields), got {len(parts)} in {line!r}")
        qid, _, docid, rank, score, _tag = parts
        try:
            int(rank)
            s = float(score)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: rank must be an integer and score a number, "
                             f"got {rank!r}, {score!r}") from None
        if not math.isfinite(s):
            raise ValueError(f"{path}:{lineno}: score is not finite: {score!r}")
        per_q = run.setdefault(qid, {})
        if docid in per_q:
            raise ValueError(f"{path}:{lineno}: document {docid!r} retrieved twice for query {qid!r}")
        per_q[docid] = s
    return run


def write_run(run: Mapping[str, Mapping[str, float]], path: PathLike, tag: str = "certkit",
              depth: int | None = None) -> None:
    """Write a TREC run. Within a query, documents are written by score descending then
    docno descending (trec_eval's order), with ranks 1..n; ``depth`` keeps the top ones."""
    _check_token(tag, "tag")
    with open(path, "w", encoding="utf-8") as fh:
        for qid in sorted(run):
            _check_token(qid, "qid")
            docs = sorted(run[qid].items(), key=lambda kv: (-kv[1], _neg_key(kv[0])))
            if depth is not None:
                docs = docs[:depth]
            for rank, (docid, score) in enumerate(docs, 1):
                _check_token(docid, "docid")
                if not math.isfinite(float(score)):
                    raise ValueError(f"run: score of {qid}/{docid} is not finite")
                fh.write(f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n")


class _neg_key:
    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _neg_key) -> bool:
        return self.s > other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _neg_key) and self.s == other.s


def _check_token(value: str, name: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{name}: {value!r} is empty or contains whitespace (not writable as TREC)")


# --------------------------------------------------------------------------- topics


_TOP_RE = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_NUM_RE = re.compile(r"<num>\s*(?:Number:)?\s*([^<\s]+)", re.I)
_FIELD_RE = {f: re.compile(rf"<{f}>(.*?)(?=<(?:/?{f}>|/?top>|num>|title>|desc>|narr>))", re.S | re.I)
             for f in ("title", "desc", "narr")}


def read_trec_topics(path: PathLike, field: str = "title", *, errors: str = "strict") -> Topics:
    """TREC topics (``<top><num>..</num><title>..</title><desc>..</desc></top>``).

    ``field``: ``title``, ``desc``, ``narr`` or ``title+desc``. Closing tags are optional,
    as in the classic TREC files. Text is whitespace-normalised; ``Description:`` and
    ``Narrative:`` prefixes are dropped. A ``<top>`` without ``<num>`` raises ``ValueError``.
    """
    fields = field.split("+")
    for f in fields:
        if f not in _FIELD_RE:
            raise ValueError(f"field: expected title, desc, narr or a '+' join, got {field!r}")
    text = _read_text(path, errors)
    topics: Topics = {}
    for m in _TOP_RE.finditer(text):
        body = m.group(1)
        num = _NUM_RE.search(body)
        if num is None:
            line = text[: m.start()].count("\n") + 1
            raise ValueError(f"{path}:{line}: <top> without <num>")
        parts = []
        for f in fields:
            fm = _FIELD_RE[f].search(body + "</top>")
            if fm:
                t = re.sub(r"^\s*(Topic|Description|Narrative):", "", fm.group(1).strip(), flags=re.I)
                parts.append(" ".join(t.split()))
        qid = num.group(1)
        if qid in topics:
            raise ValueError(f"{path}: duplicate topic number {qid!r}")
        topics[qid] = " ".join(p for p in parts if p)
    if not topics and text.strip():
        raise ValueError(f"{path}: no <top> blocks found (not a TREC topics file?)")
    return topics


def write_trec_topics(topics: Mapping[str, str], path: PathLike) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for qid, text in topics.items():
            _check_token(qid, "qid")
            fh.write(f"<top>\n<num>{qid}</num><title>\n{text}\n</title>\n</top>\n")


def read_tsv_topics(path: PathLike, *, errors: str = "strict") -> Topics:
    """``qid<TAB>text`` per line (MS MARCO style)."""
    topics: Topics = {}
    for lineno, line in _lines(path, errors):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{lineno}: expected 'qid<TAB>text', got {line!r}")
        qid, text = line.split("\t", 1)
        topics[qid.strip()] = text.strip()
    return topics


# --------------------------------------------------------------------------- TREC docs


_DOC_RE = re.compile(r"<DOC>(.*?)</DOC>", re.S | re.I)
_DOCNO_RE = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.S | re.I)
_TAG_RE = re.compile(r"<[^>]+>")


def read_trec_docs(path: PathLike, *, errors: str = "strict") -> Corpus:
    """TREC SGML documents ``<DOC><DOCNO>id</DOCNO> text </DOC>``; other tags are stripped,
    text is whitespace-normalised. A ``<DOC>`` without ``<DOCNO>`` raises ``ValueError``."""
    text = _read_text(path, errors)
    corpus: Corpus = {}
    for m in _DOC_RE.finditer(text):
        body = m.group(1)
        dn = _DOCNO_RE.search(body)
        if dn is None:
            line = text[: m.start()].count("\n") + 1
            raise ValueError(f"{path}:{line}: <DOC> without <DOCNO>")
        docid = dn.group(1)
        if docid in corpus:
            raise ValueError(f"{path}: duplicate DOCNO {docid!r}")
        rest = body[: dn.start()] + " " + body[dn.end():]
        corpus[docid] = " ".join(_TAG_RE.sub(" ", rest).split())
    if not corpus and text.strip():
        raise ValueError(f"{path}: no <DOC> blocks found (not a TREC documents file?)")
    return corpus


def write_trec_docs(corpus: Mapping[str, str], path: PathLike) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for docid, text in corpus.items():
            _check_token(docid, "docid")
            fh.write(f"<DOC>\n<DOCNO>{docid}</DOCNO>\n{text}\n</DOC>\n")


# --------------------------------------------------------------------------- SMART


_SMART_FIELD = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def read_smart(path: PathLike, *, errors: str = "strict") -> list[dict[str, str]]:
    """SMART records (Cranfield, CACM, ...): ``.I id`` starts a record; ``.T``, ``.A``,
    ``.B``, ``.W`` (any capital letter) start a field whose text runs to the next marker.

    Returns records in file order as dicts ``{"I": id, "T": ..., "W": ..., ...}`` with
    whitespace-normalised text. Text before the first ``.I`` raises ``ValueError``.
    """
    records: list[dict[str, str]] = []
    cur: dict[str, list[str]] | None = None
    field: str | None = None
    for lineno, line in _lines(path, errors):
        m = _SMART_FIELD.match(line.rstrip())
        if m:
            tag, rest = m.group(1), (m.group(2) or "").strip()
            if tag == "I":
                if not rest:
                    raise ValueError(f"{path}:{lineno}: '.I' without a record id")
                if cur is not None:
                    records.append({k: " ".join(" ".join(v).split()) for k, v in cur.items()})
                cur = {"I": [rest]}
                field = None
                continue
            if cur is None:
                raise ValueError(f"{path}:{lineno}: field .{tag} before the first .I record")
            field = tag
            cur.setdefault(field, [])
            if rest:
                cur[field].append(rest)
            continue
        if cur is None:
            if line.strip():
                raise ValueError(f"{path}:{lineno}: text before the first .I record")
            continue
        if field is None:
            if line.strip():
                raise ValueError(f"{path}:{lineno}: text after .I but before a field marker")
            continue
        cur[field].append(line)
    if cur is not None:
        records.append({k: " ".join(" ".join(v).split()) for k, v in cur.items()})
    return records


# --------------------------------------------------------------------------- BEIR


def read_beir(folder: PathLike, split: str = "test", *, errors: str = "strict"
              ) -> tuple[Corpus, Topics, Qrels]:
    """A BEIR folder: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
    (``_id``, ``text``) and ``qrels/<split>.tsv``. Title and text are joined with a space.
    Only queries that appear in the split's qrels are returned (BEIR's convention)."""
    folder = Path(folder)
    corpus: Corpus = {}
    for lineno, obj in _jsonl(folder / "corpus.jsonl", errors):
        try:
            did = str(obj["_id"])
        except KeyError:
            raise ValueError(f"{folder / 'corpus.jsonl'}:{lineno}: missing '_id'") from None
        corpus[did] = " ".join(s for s in (obj.get("title") or "", obj.get("text") or "") if s)
    queries: Topics = {}
    for lineno, obj in _jsonl(folder / "queries.jsonl", errors):
        if "_id" not in obj:
            raise ValueError(f"{folder / 'queries.jsonl'}:{lineno}: missing '_id'")
        queries[str(obj["_id"])] = str(obj.get("text") or "")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv", errors=errors)
    queries = {q: t for q, t in queries.items() if q in qrels}
    return corpus, queries, qrels


def _jsonl(path: Path, errors: str) -> Iterator[tuple[int, dict]]:
    for lineno, line in _lines(path, errors):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, obj


def write_beir(folder: PathLike, corpus: Mapping[str, str], queries: Mapping[str, str],
               qrels: Mapping[str, Mapping[str, int]], split: str = "test") -> None:
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for did, text in corpus.items():
            fh.write(json.dumps({"_id": did, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["query-id", "corpus-id", "score"])
        for qid in qrels:
            for did, rel in qrels[qid].items():
                w.writerow([qid, did, int(rel)])


def iter_pairs(qrels: Qrels) -> Iterable[tuple[str, str, int]]:
    for qid, docs in qrels.items():
        for did, rel in docs.items():
            yield qid, did, rel
