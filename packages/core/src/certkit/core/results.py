"""Resumable per-input results: one JSON object per line, keyed by ``idx``.

A long run writes each input's result as soon as it is known and flushes it (fsync on
close), so a crash loses at most the input in flight. On restart, :class:`ResultLog`
reads what is there, ignores a truncated last line (the crash signature), and
:meth:`ResultLog.todo` lists only the indices still missing: nothing lost, nothing
duplicated. Writes of an index already present raise, so a bug cannot duplicate rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO


class ResultLog:
    """Append-only JSON-lines log of results keyed by an integer ``idx`` field.

    path: the ``.jsonl`` file (created with its parent directory when missing).
    key: the field holding the work-unit index (default ``"idx"``).
    """

    def __init__(self, path: str | os.PathLike[str], key: str = "idx") -> None:
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[int, dict[str, Any]] = {}
        self._load()
        self._fh: TextIO | None = None

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good_end = 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # truncated by a crash mid-write: drop it
            text = line.decode("utf-8").strip()
            if text:
                try:
                    row = json.loads(text)
                except json.JSONDecodeError:
                    break
                if not isinstance(row, dict) or self.key not in row:
                    raise ValueError(f"{self.path}: line without an integer {self.key!r} field")
                self._rows[int(row[self.key])] = row
            good_end += len(line)
        if good_end != len(raw):
            with open(self.path, "r+b") as fh:  # cut the torn tail so appends stay valid
                fh.truncate(good_end)

    def __contains__(self, idx: int) -> bool:
        return int(idx) in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[dict[str, Any]]:
        """All results, sorted by index."""
        return [self._rows[k] for k in sorted(self._rows)]

    def todo(self, indices: Iterable[int]) -> list[int]:
        """The indices of ``indices`` that have no result yet, in the given order."""
        return [int(i) for i in indices if int(i) not in self._rows]

    def write(self, row: dict[str, Any]) -> None:
        """Append one result (must carry ``key``) and flush it to disk."""
        if self.key not in row:
            raise ValueError(f"row: missing the {self.key!r} field")
        idx = int(row[self.key])
        if idx in self._rows:
            raise ValueError(f"row: index {idx} already has a result in {self.path}")
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(row, sort_keys=True, default=_json_default) + "\n")
        self._fh.flush()
        self._rows[idx] = row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def merge_logs(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str],
               key: str = "idx") -> int:
    """Join shard logs into one, sorted by ``key``; duplicate indices must agree.
    Returns the number of rows written."""
    merged: dict[int, dict[str, Any]] = {}
    for p in paths:
        for row in ResultLog(p, key).rows():
            i = int(row[key])
            if i in merged and _strip_time(merged[i]) != _strip_time(row):
                raise ValueError(f"{p}: index {i} disagrees with another shard")
            merged[i] = row
    tmp = Path(str(out) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in sorted(merged):
            fh.write(json.dumps(merged[i], sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, out)
    return len(merged)


def _strip_time(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seconds", "time", "host", "worker")}
