"""Resumable per-input results: one JSON object per line, keyed by ``idx``.

A long run writes each input's result as soon as it is known and flushes it (fsync on
close), so a crash loses at most the input in flight. On restart, :class:`ResultLog`
reads what is there, ignores a truncated last line (the crash signature), and
:meth:`ResultLog.todo` lists only the indices still missing: nothing lost, nothing
duplicated. Writes of an index already present raise, so a bug cannot duplicate rows.

Two guards keep one file to one run:

* **Settings.** ``ResultLog(path, settings=...)`` records the run's settings (model and
  data fingerprints, every parameter that changes a result, the seed, the certkit
  version: see :func:`run_settings` and :func:`fingerprint`) as the file's first line,
  ``{"_settings": {...}}``. Resuming a file with other settings raises
  :class:`SettingsMismatchError` naming each differing setting, instead of silently mixing
  two runs under one summary; ``new=True`` (``--new`` on the command line) moves the old
  file aside and starts afresh.
* **Lock.** A writer holds an exclusive ``flock`` on the file from construction to
  :meth:`ResultLog.close`; a second process opening the same file for writing gets
  :class:`LogLockedError` at once instead of writing duplicate rows. Readers use
  :meth:`ResultLog.read`, which takes no lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

try:  # POSIX advisory locks; elsewhere the lock is a no-op
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

SETTINGS_KEY = "_settings"


class SettingsMismatchError(ValueError):
    """A results file holds a run with other settings than the one trying to resume it."""


class LogLockedError(RuntimeError):
    """Another process is writing the results file."""


# realpath -> [fd, users]: one flock per file per process, shared by its ResultLogs.
_LOCKS: dict[str, list[int]] = {}


def _acquire(path: Path) -> str:
    key = os.path.realpath(path)
    held = _LOCKS.get(key)
    if held is not None:
        held[1] += 1
        return key
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogLockedError(
                f"{path}: another run is writing this results file; wait for it to finish "
                "or write to another file") from None
    _LOCKS[key] = [fd, 1]
    return key


def _release(key: str) -> None:
    held = _LOCKS.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _LOCKS[key]
        os.close(held[0])  # closing the descriptor drops the flock


def _normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as they read back from JSON (tuples -> lists, numpy scalars -> numbers)."""
    out = json.loads(json.dumps(dict(settings), sort_keys=True, default=_json_default))
    if not isinstance(out, dict):  # pragma: no cover - dict in, dict out
        raise TypeError("settings: expected a mapping")
    return out


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two settings mappings, one entry per key."""
    missing = object()
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, missing), new.get(k, missing)
        if a != b:
            fa = "(absent)" if a is missing else json.dumps(a)
            fb = "(absent)" if b is missing else json.dumps(b)
            out.append(f"{k} {fa} in the file, {fb} now")
    return out


def run_settings(**settings: Any) -> dict[str, Any]:
    """The settings of a run, with the certkit version added, normalised for JSON.

    Put in every value that changes a result: model and data :func:`fingerprint`, noise
    level, sample sizes, confidence level, seed, mode. Keys are free-form.
    """
    from certkit.core.version import __version__

    return _normalise({"certkit_version": __version__, **settings})


def fingerprint(obj: Any) -> str:
    """Content hash (``sha256:`` + 16 hex digits) of a model, an array, bytes or a file.

    * ``torch.nn.Module``: its ``repr`` (the architecture) and every parameter and buffer
      (name, dtype, shape, bytes), so a change of any weight changes the fingerprint;
    * ``torch.Tensor`` / ``numpy.ndarray``: dtype, shape and bytes;
    * ``bytes``; a path to a file (its bytes) or a folder (relative names and bytes);
    * anything else: its JSON form (or ``repr``).
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return "sha256:" + h.hexdigest()[:16]


def _feed(h: Any, obj: Any) -> None:
    import numpy as np

    torch = _maybe_torch()
    if torch is not None and isinstance(obj, torch.nn.Module):
        h.update(b"module\0" + repr(obj).encode())
        for name, t in sorted(obj.state_dict(keep_vars=False).items()):
            h.update(f"\0{name}\0".encode())
            _feed(h, t)
        return
    if torch is not None and isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"array\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
        return
    if isinstance(obj, bytes | bytearray | memoryview):
        h.update(b"bytes\0" + bytes(obj))
        return
    if isinstance(obj, os.PathLike) or (isinstance(obj, str) and os.path.exists(obj)):
        p = Path(obj)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                h.update(f"\0file\0{f.relative_to(p).as_posix()}\0".encode())
                _feed_file(h, f)
            return
        if p.is_file():
            h.update(b"file\0")
            _feed_file(h, p)
            return
        raise FileNotFoundError(f"fingerprint: no such file or folder: {p}")
    try:
        h.update(b"json\0" + json.dumps(obj, sort_keys=True, default=_json_default).encode())
    except TypeError:
        h.update(b"repr\0" + repr(obj).encode())


def _feed_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def _maybe_torch() -> Any:
    import sys

    return sys.modules.get("torch")  # a torch object can only exist if torch is imported


class ResultLog:
    """Append-only JSON-lines log of results keyed by an integer ``idx`` field.

    path: the ``.jsonl`` file (created with its parent directory when missing).
    key: the field holding the work-unit index (default ``"idx"``).
    settings: the run's settings (see :func:`run_settings`). Written as the first line of a
        new file; an existing file must hold the same settings, else
        :class:`SettingsMismatchError` names the ones that differ. An existing file with
        rows but no recorded settings is refused too (it cannot be checked). ``None``:
        no check (the file's own settings, if any, are kept and exposed as ``.settings``).
    new: move an existing non-empty file aside (to ``<path>.<time>.bak``, kept in
        ``.moved_to``) and start a new one.

    The writer holds an exclusive lock on the file until :meth:`close` (or the end of a
    ``with`` block); another process constructing a ``ResultLog`` on it raises
    :class:`LogLockedError`. Use :meth:`read` to read a file without locking it.
    """

    def __init__(self, path: str | os.PathLike[str], key: str = "idx",
                 settings: Mapping[str, Any] | None = None, new: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():  # (was an IsADirectoryError traceback, exit 1, from the commands' --log)
            raise ValueError(f"path: {self.path} is a folder; expected a results file (.jsonl)")
        self.key = key
        self.moved_to: Path | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[int, dict[str, Any]] = {}
        self._fh: TextIO | None = None
        self._lock: str | None = None
        self.settings: dict[str, Any] | None = None
        if new and self.path.exists() and self.path.stat().st_size > 0:
            self.moved_to = self.path.with_name(
                f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.bak")
            # take the lock first, so a running writer is not robbed of its file
            probe = _acquire(self.path)
            try:
                os.replace(self.path, self.moved_to)
            finally:
                _release(probe)
        self._lock = _acquire(self.path)
        try:
            self._load()
            if settings is not None:
                wanted = _normalise(settings)
                if self.settings is None:
                    if self._rows:
                        raise SettingsMismatchError(
                            f"{self.path}: holds {len(self._rows)} results without recorded "
                            "settings, so resuming cannot be checked; start a new file "
                            "(--new) or write elsewhere")
                    self._append(json.dumps({SETTINGS_KEY: wanted}, sort_keys=True))
                    self.settings = wanted
                elif self.settings != wanted:
                    diff = "; ".join(settings_diff(self.settings, wanted))
                    raise SettingsMismatchError(
                        f"{self.path}: was written with other settings ({diff}); resume with "
                        "the same settings, or start a new file (--new)")
        except BaseException:
            self.close()
            raise

    @classmethod
    def read(cls, path: str | os.PathLike[str], key: str = "idx") -> list[dict[str, Any]]:
        """All results of a file, sorted by index, without taking the lock."""
        log = cls.__new__(cls)
        log.path, log.key, log._rows, log.settings = Path(path), key, {}, None
        log._fh, log._lock, log.moved_to = None, None, None
        log._load(repair=False)
        return log.rows()

    @classmethod
    def read_settings(cls, path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The settings recorded in a file's first line (``None`` when there are none)."""
        log = cls.__new__(cls)
        log.path, log.key, log._rows, log.settings = Path(path), "idx", {}, None
        log._fh, log._lock, log.moved_to = None, None, None
        log._load(repair=False)
        return log.settings

    def _load(self, repair: bool = True) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good_end = 0
        first = True
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # truncated by a crash mid-write: drop it
            text = line.decode("utf-8").strip()
            if text:
                try:
                    row = json.loads(text)
                except json.JSONDecodeError:
                    break
                if first and isinstance(row, dict) and SETTINGS_KEY in row and self.key not in row:
                    self.settings = row[SETTINGS_KEY]
                elif not isinstance(row, dict) or self.key not in row:
                    raise ValueError(f"{self.path}: line without an integer {self.key!r} field")
                else:
                    self._rows[int(row[self.key])] = row
                first = False
            good_end += len(line)
        if repair and good_end != len(raw):
            with open(self.path, "r+b") as fh:  # cut the torn tail so appends stay valid
                fh.truncate(good_end)

    def __contains__(self, idx: int) -> bool:
        return int(idx) in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[dict[str, Any]]:
        """All results, sorted by index (the settings line is not a result)."""
        return [self._rows[k] for k in sorted(self._rows)]

    def todo(self, indices: Iterable[int]) -> list[int]:
        """The indices of ``indices`` that have no result yet, in the given order."""
        return [int(i) for i in indices if int(i) not in self._rows]

    def _append(self, text: str) -> None:
        if self._lock is None:
            raise ValueError(f"{self.path}: this ResultLog is closed")
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(text + "\n")
        self._fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Append one result (must carry ``key``) and flush it to disk."""
        if self.key not in row:
            raise ValueError(f"row: missing the {self.key!r} field")
        idx = int(row[self.key])
        if idx in self._rows:
            raise ValueError(f"row: index {idx} already has a result in {self.path}")
        self._append(json.dumps(row, sort_keys=True, default=_json_default))
        self._rows[idx] = row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        if self._lock is not None:
            _release(self._lock)
            self._lock = None

    def __del__(self) -> None:  # a forgotten close() must not keep the file locked
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

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
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def merge_logs(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str],
               key: str = "idx") -> int:
    """Join shard logs into one, sorted by ``key``; duplicate indices must agree, and so
    must the shards' recorded settings (kept as the merged file's first line).
    Returns the number of rows written."""
    merged: dict[int, dict[str, Any]] = {}
    settings: dict[str, Any] | None = None
    first: str | None = None
    for p in paths:
        s = ResultLog.read_settings(p)
        if s is not None:
            if settings is None:
                settings, first = s, os.fspath(p)
            elif s != settings:
                raise SettingsMismatchError(
                    f"{p}: settings differ from {first}'s ({'; '.join(settings_diff(settings, s))})")
        for row in ResultLog.read(p, key):
            i = int(row[key])
            if i in merged and _strip_time(merged[i]) != _strip_time(row):
                raise ValueError(f"{p}: index {i} disagrees with another shard")
            merged[i] = row
    tmp = Path(str(out) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        if settings is not None:
            fh.write(json.dumps({SETTINGS_KEY: settings}, sort_keys=True) + "\n")
        for i in sorted(merged):
            fh.write(json.dumps(merged[i], sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, out)
    return len(merged)


def _strip_time(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seconds", "time", "host", "worker")}
