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
  (trec_eval silently keeps one of them, which hides a broken run); so does an id
  repeated in a corpus or topics file (TREC, BEIR, SMART or tsv), naming the id and line;
- BEIR qrels (the ``query-id<TAB>corpus-id<TAB>score`` header): every row must have
  exactly 3 tab-separated fields, so an id with a tab in it is an error, not a TREC row;
- gzip is detected by its magic bytes, whatever the file's name;
- every writer writes a temporary file in the target's folder and renames it into
  place, so a failed write leaves the old file (or none), never a partial one.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TextIO

Corpus = dict[str, str]
Topics = dict[str, str]
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

PathLike = str | Path

__all__ = [
    "Corpus", "Qrels", "Run", "Topics",
    "read_beir", "read_beir_corpus", "read_beir_queries", "read_corpus", "read_qrels", "read_run",
    "read_smart", "read_topics", "read_trec_docs", "read_trec_topics", "read_tsv_corpus",
    "read_tsv_topics", "sniff_format", "write_beir", "write_qrels", "write_run",
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
    if p.is_dir():
        raise ValueError(f"{p}: is a folder, expected a file")
    with _open_binary(p) as fh:
        for lineno, raw in _numbered(fh, p):
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason}); the file is "
                                 "in another encoding (convert it to UTF-8, or decode it with the "
                                 "Python API's errors='replace')") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a UTF-8 byte-order mark (Windows editors) is not content
            yield lineno, line.rstrip("\r\n")


_GZIP_MAGIC = b"\x1f\x8b"


def _numbered(fh: IO[bytes], path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line); broken gzip data raises ``ValueError`` naming the file."""
    it = iter(fh)
    lineno = 0
    while True:
        try:
            raw = next(it)
        except StopIteration:
            return
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}:{lineno + 1}: broken gzip data ({exc})") from None
        lineno += 1
        yield lineno, raw


def _open_binary(p: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes (whatever its
    name); a ``.gz`` name without them is read as it is."""
    with open(p, "rb") as fh:
        head = fh.read(2)
    if head == _GZIP_MAGIC:
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb")


@contextmanager
def _atomic_write(path: PathLike, newline: str | None = None) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file in its folder, renamed into place on
    success: a failed write leaves any old file untouched and no partial file behind."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_text(path: PathLike, errors: str = "strict") -> str:
    return "\n".join(line for _, line in _lines(path, errors))


# --------------------------------------------------------------------------- qrels


def read_qrels(path: PathLike, *, errors: str = "strict") -> Qrels:
    """TREC qrels ``qid iter docno rel`` (whitespace separated; ``iter`` is ignored).

    Also accepts BEIR's 3-column tsv ``query-id corpus-id score`` with its header line:
    after that header every row must split on tabs into exactly 3 non-empty fields (ids
    may contain spaces; a row with a tab inside an id is an error, never re-read as TREC).
    Without the header, a line with tabs that splits into 3 or 4 non-empty tab-separated
    fields is split on tabs only; other lines on any whitespace.
    Relevance must be an integer; a malformed line or a pair judged twice raises
    ``ValueError`` with its line number.
    """
    qrels: Qrels = {}
    seen: dict[tuple[str, str], int] = {}
    beir = False
    for lineno, line in _lines(path, errors):
        if not line.strip():
            continue
        if lineno == 1 and [f.strip() for f in line.split("\t")][:2] == ["query-id", "corpus-id"]:
            beir = True
            continue
        if beir:
            parts = [f.strip() for f in line.split("\t")]
            while parts and not parts[-1]:
                parts.pop()  # trailing tabs
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"{path}:{lineno}: expected 3 tab-separated fields "
                                 f"'query-id<TAB>corpus-id<TAB>score' as the header says, got "
                                 f"{len(parts)} in {line!r}")
        else:
            parts = _fields(line)
        if len(parts) == 4 and not beir:
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
            raise ValueError(f"{path}:{lineno}: duplicate judgement for query {qid!r}, doc {docid!r} "
                             f"(first on line {seen[qid, docid]})")
        per_q[docid] = r
        seen[qid, docid] = lineno
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
    """Write TREC qrels (``qid 0 docno rel``), queries and documents in sorted order
    (through a temporary file renamed into place)."""
    with _atomic_write(path) as fh:
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
    docno descending (trec_eval's order), with ranks 1..n; ``depth`` keeps the top ones.
    The file is written to a temporary file and renamed into place: a failed write (a bad
    docid, a non-finite score) leaves no partial run."""
    _check_token(tag, "tag")
    with _atomic_write(path) as fh:
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
            line = text[: m.start()].count("\n") + 1
            raise ValueError(f"{path}:{line}: duplicate topic number {qid!r}")
        topics[qid] = " ".join(p for p in parts if p)
    if not topics and text.strip():
        raise ValueError(f"{path}: no <top> blocks found (not a TREC topics file?)")
    return topics


def write_trec_topics(topics: Mapping[str, str], path: PathLike) -> None:
    """TREC topics (``<top><num>..</num><title>..</title></top>``), atomically."""
    with _atomic_write(path) as fh:
        for qid, text in topics.items():
            _check_token(qid, "qid")
            fh.write(f"<top>\n<num>{qid}</num><title>\n{text}\n</title>\n</top>\n")


def read_tsv_topics(path: PathLike, *, errors: str = "strict") -> Topics:
    """``qid<TAB>text`` per line (MS MARCO style). A repeated or empty qid raises
    ``ValueError`` with its line number."""
    return _read_tsv_pairs(path, errors, "qid")


def read_tsv_corpus(path: PathLike, *, errors: str = "strict") -> Corpus:
    """``docid<TAB>text`` per line (MS MARCO's ``collection.tsv``); further tabs are read
    as spaces (``docid<TAB>title<TAB>text`` gives title and text joined). A repeated or
    empty docid raises ``ValueError`` with its line number."""
    return _read_tsv_pairs(path, errors, "docid")


def _read_tsv_pairs(path: PathLike, errors: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for lineno, line in _lines(path, errors):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{lineno}: expected '{what}<TAB>text', got {line!r}")
        key, text = line.split("\t", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"{path}:{lineno}: empty {what}")
        if key in out:
            raise ValueError(f"{path}:{lineno}: duplicate {what} {key!r} (first on line {first[key]})")
        out[key] = " ".join(text.split())
        first[key] = lineno
    return out


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
            line = text[: m.start()].count("\n") + 1
            raise ValueError(f"{path}:{line}: duplicate DOCNO {docid!r}")
        rest = body[: dn.start()] + " " + body[dn.end():]
        corpus[docid] = " ".join(_TAG_RE.sub(" ", rest).split())
    if not corpus and text.strip():
        raise ValueError(f"{path}: no <DOC> blocks found (not a TREC documents file?)")
    return corpus


def write_trec_docs(corpus: Mapping[str, str], path: PathLike) -> None:
    """TREC documents (``<DOC><DOCNO>..</DOCNO> text </DOC>``), atomically."""
    with _atomic_write(path) as fh:
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
    (``_id``, ``text``), either possibly ``.jsonl.gz``, and ``qrels/<split>.tsv``. Title and text are joined with a space.
    Only queries that appear in the split's qrels are returned (BEIR's convention)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such BEIR folder")
    qpath = folder / "qrels" / f"{split}.tsv"
    if not qpath.exists():
        have = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise ValueError(f"split: {folder} has no qrels/{split}.tsv (splits there: {have or 'none'})")
    corpus = read_beir_corpus(_beir_file(folder, "corpus"), errors=errors)
    queries = read_beir_queries(_beir_file(folder, "queries"), errors=errors)
    qrels = read_qrels(qpath, errors=errors)
    queries = {q: t for q, t in queries.items() if q in qrels}
    return corpus, queries, qrels


def _beir_file(folder: Path, name: str) -> Path:
    for suffix in (".jsonl", ".jsonl.gz"):
        if (folder / f"{name}{suffix}").exists():
            return folder / f"{name}{suffix}"
    raise FileNotFoundError(f"{folder}: no {name}.jsonl or {name}.jsonl.gz")


def read_beir_corpus(path: PathLike, *, errors: str = "strict") -> Corpus:
    """A BEIR ``corpus.jsonl`` (gzipped or not): ``_id``, ``title``, ``text`` per line;
    title and text joined with a space. A missing or repeated ``_id`` raises ``ValueError``
    naming the id and the line."""
    return {k: " ".join(s for s in (obj.get("title") or "", obj.get("text") or "") if s)
            for k, obj in _jsonl_by_id(Path(path), errors)}


def read_beir_queries(path: PathLike, *, errors: str = "strict") -> Topics:
    """A BEIR ``queries.jsonl`` (gzipped or not): ``_id``, ``text`` per line. A missing or
    repeated ``_id`` raises ``ValueError`` naming the id and the line."""
    return {k: str(obj.get("text") or "") for k, obj in _jsonl_by_id(Path(path), errors)}


def _jsonl_by_id(path: Path, errors: str) -> Iterator[tuple[str, dict]]:
    first: dict[str, int] = {}
    for lineno, obj in _jsonl(path, errors):
        if "_id" not in obj:
            raise ValueError(f"{path}:{lineno}: missing '_id'")
        key = str(obj["_id"])
        if key in first:
            raise ValueError(f"{path}:{lineno}: duplicate _id {key!r} (first on line {first[key]})")
        first[key] = lineno
        yield key, obj


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
    with _atomic_write(folder / "corpus.jsonl") as fh:
        for did, text in corpus.items():
            fh.write(json.dumps({"_id": did, "title": "", "text": text}) + "\n")
    with _atomic_write(folder / "queries.jsonl") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with _atomic_write(folder / "qrels" / f"{split}.tsv", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["query-id", "corpus-id", "score"])
        for qid in qrels:
            for did, rel in qrels[qid].items():
                w.writerow([qid, did, int(rel)])


# --------------------------------------------------------------------------- any format


def sniff_format(path: PathLike, *, errors: str = "strict") -> str:
    """The format of a corpus or topics file from its first non-blank line (gzip detected
    by its magic bytes): ``"trec"`` (``<DOC>``/``<top>`` SGML), ``"jsonl"`` (BEIR),
    ``"smart"`` (``.I id`` records) or ``"tsv"`` (``id<TAB>text``)."""
    for _, line in _lines(path, errors):
        head = line.lstrip()
        if not head:
            continue
        if head.startswith("<"):
            return "trec"
        if head.startswith("{"):
            return "jsonl"
        if _SMART_FIELD.match(head.rstrip()) and head.startswith(".I"):
            return "smart"
        if "\t" in line:
            return "tsv"
        raise ValueError(f"{path}: not a TREC, BEIR jsonl, SMART or tsv file "
                         f"(first line {line[:60]!r})")
    return "tsv"  # empty


def read_corpus(path: PathLike, *, errors: str = "strict") -> Corpus:
    """A corpus file in any of the formats :func:`sniff_format` detects: TREC documents,
    BEIR ``corpus.jsonl[.gz]``, SMART (``.T`` title + ``.W`` text, ids as in ``.I``) or
    ``docid<TAB>text``. Repeated docids raise ``ValueError`` naming the id and line."""
    fmt = sniff_format(path, errors=errors)
    if fmt == "trec":
        return read_trec_docs(path, errors=errors)
    if fmt == "jsonl":
        return read_beir_corpus(path, errors=errors)
    if fmt == "smart":
        return _smart_texts(path, errors, ("T", "W"))
    return read_tsv_corpus(path, errors=errors)


def read_topics(path: PathLike, field: str = "title", *, errors: str = "strict") -> Topics:
    """A topics file in any of the formats :func:`sniff_format` detects: TREC topics
    (``field`` as :func:`read_trec_topics`), BEIR ``queries.jsonl[.gz]``, SMART (``.W``) or
    ``qid<TAB>text``. Repeated qids raise ``ValueError`` naming the id and line."""
    fmt = sniff_format(path, errors=errors)
    if fmt == "trec":
        return read_trec_topics(path, field, errors=errors)
    if fmt == "jsonl":
        return read_beir_queries(path, errors=errors)
    if fmt == "smart":
        return _smart_texts(path, errors, ("W",))
    return read_tsv_topics(path, errors=errors)


def _smart_texts(path: PathLike, errors: str, fields: tuple[str, ...]) -> dict[str, str]:
    """``.I`` id -> the given fields joined with a space; a repeated id raises ValueError."""
    out: dict[str, str] = {}
    for rec in read_smart(path, errors=errors):
        if rec["I"] in out:
            raise ValueError(f"{path}: duplicate .I record {rec['I']!r}")
        out[rec["I"]] = " ".join(x for x in (rec.get(f, "") for f in fields) if x)
    return out


def iter_pairs(qrels: Qrels) -> Iterable[tuple[str, str, int]]:
    for qid, docs in qrels.items():
        for did, rel in docs.items():
            yield qid, did, rel
