"""The user's own runs, topics and corpora in ``certkit rank certify|attack|retrieve``, and
query independence: a query's certificate depends only on that query, its candidates,
the ranker and the settings."""

from __future__ import annotations

import json


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
