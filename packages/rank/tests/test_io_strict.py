"""I/O that never silently misreads: duplicate ids, BEIR qrels column counts, gzip by
magic bytes, atomic writes, format detection of corpus and topics files."""

from __future__ import annotations

import gzip
import json

import pytest

from certkit.rank import io


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_duplicate_ids_are_errors_naming_id_and_line(tmp_path) -> None:
    # a duplicate _id in a BEIR corpus used to overwrite the first document silently
    (tmp_path / "qrels").mkdir()
    _jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "a"}, {"_id": "d2", "text": "b"},
                                       {"_id": "d1", "text": "c"}])
    _jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "a"}])
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(ValueError, match=r"corpus.jsonl:3: duplicate _id 'd1' \(first on line 1\)"):
        io.read_beir(tmp_path)
    _jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "a"}])
    _jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "a"}, {"_id": 1, "text": "x"},
                                        {"_id": "q1", "text": "b"}])
    with pytest.raises(ValueError, match=r"queries.jsonl:3: duplicate _id 'q1'"):
        io.read_beir(tmp_path)
    t = tmp_path / "topics.tsv"
    t.write_text("1\tfirst\n\n2\tsecond\n1\tagain\n")
    with pytest.raises(ValueError, match=r"topics.tsv:4: duplicate qid '1' \(first on line 1\)"):
        io.read_tsv_topics(t)
    c = tmp_path / "c.tsv"
    c.write_text("d1\tx\nd1\ty\n")
    with pytest.raises(ValueError, match=r"c.tsv:2: duplicate docid 'd1'"):
        io.read_corpus(c)
    d = tmp_path / "docs.trec"
    d.write_text("<DOC>\n<DOCNO>a</DOCNO>\nx\n</DOC>\n<DOC>\n<DOCNO>a</DOCNO>\ny\n</DOC>\n")
    with pytest.raises(ValueError, match=r"docs.trec:5: duplicate DOCNO 'a'"):
        io.read_corpus(d)
    tp = tmp_path / "t.trec"
    tp.write_text("<top>\n<num>1</num><title>x</title>\n</top>\n<top>\n<num>1</num><title>y</title></top>\n")
    with pytest.raises(ValueError, match=r"t.trec:4: duplicate topic number '1'"):
        io.read_topics(tp)
    q = tmp_path / "qrels.txt"
    q.write_text("1 0 d1 1\n1 0 d2 0\n1 0 d1 2\n")
    with pytest.raises(ValueError, match=r"qrels.txt:3: duplicate judgement .* \(first on line 1\)"):
        io.read_qrels(q)


def test_beir_qrels_rows_must_match_the_header(tmp_path) -> None:
    # a docid with a tab in a 3-column BEIR file used to be read as a TREC 4-column row
    p = tmp_path / "test.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td\t2\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.tsv:3: expected 3 tab-separated fields"):
        io.read_qrels(p)
    p.write_text("query-id\tcorpus-id\tscore\nq1 d1 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.tsv:2: expected 3 tab-separated"):
        io.read_qrels(p)
    p.write_text("query-id\tcorpus-id\tscore\nq 1\td 1\t1\t\n", encoding="utf-8")
    assert io.read_qrels(p) == {"q 1": {"d 1": 1}}


def test_gzip_detected_by_magic_bytes(tmp_path) -> None:
    # a gzipped file without .gz used to fail with an "invalid UTF-8" hint
    raw = b"q1 0 d1 1\nq1 0 d2 0\n"
    (tmp_path / "qrels").write_bytes(gzip.compress(raw))
    assert io.read_qrels(tmp_path / "qrels") == {"q1": {"d1": 1, "d2": 0}}
    (tmp_path / "plain.gz").write_bytes(raw)  # named .gz but not compressed: read as it is
    assert io.read_qrels(tmp_path / "plain.gz") == {"q1": {"d1": 1, "d2": 0}}
    corpus = b'{"_id": "d1", "title": "T", "text": "x"}\n'
    (tmp_path / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus))
    assert io.read_corpus(tmp_path / "corpus.jsonl.gz") == {"d1": "T x"}
    (tmp_path / "cut").write_bytes(gzip.compress("".join(f"q1 0 d{i} 1\n" for i in range(500)).encode())[:40])  # truncated download
    with pytest.raises(ValueError, match=r"cut:\d+: broken gzip data"):
        io.read_qrels(tmp_path / "cut")
    (tmp_path / "latin").write_bytes(b"q1 0 d\xe91 1\n")
    with pytest.raises(ValueError, match=r"latin:1: not valid UTF-8.*another encoding"):
        io.read_qrels(tmp_path / "latin")


def test_failed_writes_leave_no_partial_file(tmp_path) -> None:
    p = tmp_path / "run.trec"
    io.write_run({"q1": {"d1": 1.0}}, p)
    old = p.read_text()
    bad = {"q1": {"d1": 2.0, "d2": 1.0, "bad id": 0.5}}
    with pytest.raises(ValueError, match="docid"):
        io.write_run(bad, p)
    assert p.read_text() == old  # the old run is intact
    with pytest.raises(ValueError, match="not finite"):
        io.write_run({"q1": {"d1": 1.0, "d2": float("nan")}}, tmp_path / "new.trec")
    assert not (tmp_path / "new.trec").exists()
    with pytest.raises(ValueError, match="docid"):
        io.write_qrels({"q1": {"d1": 1, "d 2": 1}}, tmp_path / "qrels")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["run.trec"]  # no temporary left


def test_read_corpus_and_topics_detect_the_format(tmp_path) -> None:
    corpus = {"d1": "solar cells", "d2": "coral reef"}
    topics = {"1": "solar", "2": "reef fish"}
    io.write_trec_docs(corpus, tmp_path / "docs.trec")
    io.write_trec_topics(topics, tmp_path / "topics.trec")
    io.write_beir(tmp_path / "beir", corpus, topics, {"1": {"d1": 1}})
    (tmp_path / "docs.tsv").write_text("d1\tsolar cells\nd2\tcoral reef\n")
    (tmp_path / "topics.tsv").write_text("1\tsolar\n2\treef fish\n")
    (tmp_path / "docs.smart").write_text(".I 1\n.T\nsolar\n.W\ncells\n.I 2\n.W\ncoral reef\n")
    (tmp_path / "q.smart").write_text(".I 1\n.W\nsolar\n.I 2\n.W\nreef fish\n")
    for name in ("docs.trec", "beir/corpus.jsonl", "docs.tsv"):
        assert io.read_corpus(tmp_path / name) == corpus, name
    assert io.read_corpus(tmp_path / "docs.smart") == {"1": "solar cells", "2": "coral reef"}
    for name in ("topics.trec", "beir/queries.jsonl", "topics.tsv", "q.smart"):
        assert io.read_topics(tmp_path / name) == topics, name
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbf1\tsolar\n2\treef fish\n")  # a byte-order mark
    assert io.read_topics(tmp_path / "bom.tsv") == topics
    (tmp_path / "junk").write_text("just words\n")
    with pytest.raises(ValueError, match="not a TREC, BEIR jsonl, SMART or tsv file"):
        io.read_corpus(tmp_path / "junk")
    with pytest.raises(ValueError, match=r"split: .* no qrels/dev.tsv .*test"):
        io.read_beir(tmp_path / "beir", split="dev")
