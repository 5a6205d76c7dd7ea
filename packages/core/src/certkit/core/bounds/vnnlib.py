"""VNN-LIB property files (the VNN-COMP format, an SMT-LIB subset) → input boxes and
linear output constraints. Our own small s-expression parser; no dependency.

Semantics (VNN-COMP): the assertions describe a *counterexample*. The property is
violated (``sat``) iff some input satisfying the input constraints produces outputs
satisfying the output constraints; it holds (``unsat``) iff no such input exists.

Supported:

- ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)`` (inputs X_0..X_{n-1} in the
  model's flattened input order, outputs Y_0..Y_{K-1});
- ``(assert E)`` with E built from ``and``, ``or`` and comparisons ``<=``, ``>=``, ``<``,
  ``>`` between linear terms: numbers, variables, ``(+ ...)``, ``(- a b)``, ``(- a)``,
  ``(* c t)`` with a constant factor. Strict comparisons are treated as non-strict (sound
  for ``unsat``: proving the closed set empty proves the open one empty; a ``sat``
  counterexample may lie on the boundary, as in VNN-COMP's tolerance check);
- each comparison mentions only inputs (then exactly one X with constants: a bound of
  that input) or only outputs (a row ``c·Y <= d``).

The conjunction of all assertions is expanded to disjunctive normal form: a list of
:class:`Clause` (input box + output rows). Errors are :class:`VnnlibError` (a
``ValueError``) with the line number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_MAX_CLAUSES = 100_000
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_VAR = re.compile(r"^([XY])_(\d+)$")


class VnnlibError(ValueError):
    """A malformed or unsupported VNN-LIB file; the message starts with the line number."""


@dataclass
class _Tok:
    text: str
    line: int


@dataclass
class _List:
    items: list[_List | _Tok]
    line: int


@dataclass
class Clause:
    """One disjunct: ``lo <= X <= hi`` (each (n,)) and ``C @ Y <= d`` (C (S, K), d (S,))."""

    lo: np.ndarray
    hi: np.ndarray
    C: np.ndarray
    d: np.ndarray


@dataclass
class Property:
    """A parsed property: ``n_inputs``, ``n_outputs`` and the DNF ``clauses``."""

    n_inputs: int
    n_outputs: int
    clauses: list[Clause] = field(default_factory=list)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    for ln, line in enumerate(text.splitlines(), start=1):
        line = line.split(";", 1)[0]
        for m in re.finditer(r"\(|\)|[^\s()]+", line):
            toks.append(_Tok(m.group(0), ln))
    return toks


def _parse_sexprs(text: str) -> list[_List]:
    toks = _tokenize(text)
    out: list[_List] = []
    stack: list[_List] = []
    for t in toks:
        if t.text == "(":
            stack.append(_List([], t.line))
        elif t.text == ")":
            if not stack:
                raise VnnlibError(f"line {t.line}: unbalanced ')'")
            done = stack.pop()
            if stack:
                stack[-1].items.append(done)
            else:
                out.append(done)
        else:
            if not stack:
                raise VnnlibError(f"line {t.line}: unexpected token {t.text!r} outside parentheses")
            stack[-1].items.append(t)
    if stack:
        raise VnnlibError(f"line {stack[-1].line}: '(' is never closed (file truncated?)")
    return out


# a linear term: ({("X"|"Y", index): coef}, constant)
_Lin = tuple[dict[tuple[str, int], float], float]


class _Parser:
    def __init__(self) -> None:
        self.declared: dict[tuple[str, int], int] = {}

    def head(self, e: _List) -> str:
        if not e.items or not isinstance(e.items[0], _Tok):
            raise VnnlibError(f"line {e.line}: expected an operator after '('")
        return e.items[0].text

    def term(self, e: _List | _Tok) -> _Lin:
        if isinstance(e, _Tok):
            if _NUM.match(e.text):
                v = float(e.text)
                if not math.isfinite(v):
                    raise VnnlibError(f"line {e.line}: non-finite number {e.text!r}")
                return {}, v
            m = _VAR.match(e.text)
            if m is None:
                raise VnnlibError(f"line {e.line}: expected a number or a variable X_i / Y_j, got {e.text!r}")
            key = (m.group(1), int(m.group(2)))
            if key not in self.declared:
                raise VnnlibError(f"line {e.line}: variable {e.text} is used before its declare-const")
            return {key: 1.0}, 0.0
        op = self.head(e)
        args = [self.term(a) for a in e.items[1:]]
        if op == "+" and args:
            return self._sum(args, [1.0] * len(args))
        if op == "-" and len(args) == 1:
            return self._sum(args, [-1.0])
        if op == "-" and len(args) >= 2:
            return self._sum(args, [1.0] + [-1.0] * (len(args) - 1))
        if op == "*" and len(args) == 2:
            (ca, ka), (cb, kb) = args
            if ca and cb:
                raise VnnlibError(f"line {e.line}: product of two variables is not linear")
            coef, k = (ka, args[1]) if not ca else (kb, args[0])
            return {v: coef * w for v, w in k[0].items()}, coef * k[1]
        raise VnnlibError(f"line {e.line}: unsupported term operator {op!r} with {len(args)} operand(s)")

    @staticmethod
    def _sum(args: list[_Lin], signs: list[float]) -> _Lin:
        coefs: dict[tuple[str, int], float] = {}
        const = 0.0
        for (c, k), s in zip(args, signs):
            for v, w in c.items():
                coefs[v] = coefs.get(v, 0.0) + s * w
            const += s * k
        return coefs, const

    def formula(self, e: _List | _Tok) -> list[list[tuple[_Lin, int]]]:
        """DNF: a list of clauses, each a list of atoms (lin, line) meaning lin <= 0."""
        if isinstance(e, _Tok):
            raise VnnlibError(f"line {e.line}: expected a formula '(...)', got {e.text!r}")
        op = self.head(e)
        args = e.items[1:]
        if op in ("<=", ">=", "<", ">"):
            if len(args) != 2:
                raise VnnlibError(f"line {e.line}: {op} expects 2 operands, got {len(args)}")
            a, b = self.term(args[0]), self.term(args[1])
            lin = self._sum([a, b], [1.0, -1.0] if op in ("<=", "<") else [-1.0, 1.0])
            return [[(lin, e.line)]]
        if op == "and":
            if not args:
                raise VnnlibError(f"line {e.line}: empty 'and'")
            clauses: list[list[tuple[_Lin, int]]] = [[]]
            for a in args:
                sub = self.formula(a)
                if len(clauses) * len(sub) > _MAX_CLAUSES:
                    raise VnnlibError(f"line {e.line}: the formula expands to more than {_MAX_CLAUSES} clauses")
                clauses = [c + s for c in clauses for s in sub]
            return clauses
        if op == "or":
            if not args:
                raise VnnlibError(f"line {e.line}: empty 'or'")
            out: list[list[tuple[_Lin, int]]] = []
            for a in args:
                out += self.formula(a)
            if len(out) > _MAX_CLAUSES:
                raise VnnlibError(f"line {e.line}: the formula expands to more than {_MAX_CLAUSES} clauses")
            return out
        raise VnnlibError(f"line {e.line}: unsupported formula operator {op!r} (expected and, or, <=, >=, <, >)")


def parse_vnnlib(source: str | Path, n_inputs: int | None = None, n_outputs: int | None = None) -> Property:
    """Parse VNN-LIB text, or a file when ``source`` is a ``Path`` (or an existing path
    string ending in ``.vnnlib``). ``n_inputs`` / ``n_outputs``, when given, must equal the
    declared counts (the model's flattened input size and output size)."""
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".vnnlib") and "\n" not in source):
        p = Path(source)
        if not p.is_file():
            raise VnnlibError(f"vnnlib: no such file: {p}")
        try:
            text = p.read_text()
        except UnicodeDecodeError as exc:
            raise VnnlibError(f"vnnlib: {p} is not a text file") from exc
    elif isinstance(source, str):
        text = source
    else:
        raise TypeError(f"source: expected str or Path, got {type(source).__name__}")
    ps = _Parser()
    asserts: list[_List] = []
    for e in _parse_sexprs(text):
        op = ps.head(e)
        if op == "declare-const":
            if len(e.items) != 3 or not all(isinstance(i, _Tok) for i in e.items[1:]):
                raise VnnlibError(f"line {e.line}: expected (declare-const NAME Real)")
            name, typ = e.items[1].text, e.items[2].text  # type: ignore[union-attr]
            m = _VAR.match(name)
            if m is None:
                raise VnnlibError(f"line {e.line}: variable names must be X_i or Y_j, got {name!r}")
            if typ != "Real":
                raise VnnlibError(f"line {e.line}: only Real variables are supported, got {typ!r}")
            key = (m.group(1), int(m.group(2)))
            if key in ps.declared:
                raise VnnlibError(f"line {e.line}: {name} is declared twice")
            ps.declared[key] = e.line
        elif op == "assert":
            if len(e.items) != 2:
                raise VnnlibError(f"line {e.line}: assert takes exactly one formula")
            asserts.append(e)
        else:
            raise VnnlibError(f"line {e.line}: unsupported command {op!r} (expected declare-const or assert)")
    xs = sorted(i for v, i in ps.declared if v == "X")
    ys = sorted(i for v, i in ps.declared if v == "Y")
    if not xs or not ys:
        raise VnnlibError("vnnlib: no X_i or no Y_j declared")
    for kind, idx in (("X", xs), ("Y", ys)):
        if idx != list(range(len(idx))):
            missing = next(i for i in range(len(idx) + 1) if i not in idx)
            raise VnnlibError(f"vnnlib: {kind}_{missing} is not declared (variables must be numbered from 0)")
    n, k = len(xs), len(ys)
    if n_inputs is not None and n != n_inputs:
        raise VnnlibError(f"vnnlib: declares {n} inputs X_i, the model has {n_inputs}")
    if n_outputs is not None and k != n_outputs:
        raise VnnlibError(f"vnnlib: declares {k} outputs Y_j, the model has {n_outputs}")
    if not asserts:
        raise VnnlibError("vnnlib: no assert")
    clauses: list[list[tuple[_Lin, int]]] = [[]]
    for e in asserts:
        sub = ps.formula(e.items[1])
        if len(clauses) * len(sub) > _MAX_CLAUSES:
            raise VnnlibError(f"line {e.line}: the assertions expand to more than {_MAX_CLAUSES} clauses")
        clauses = [c + s for c in clauses for s in sub]
    prop = Property(n, k)
    for atoms in clauses:
        lo = np.full(n, -np.inf)
        hi = np.full(n, np.inf)
        rows: list[np.ndarray] = []
        ds: list[float] = []
        infeasible = False
        for (coefs, const), line in atoms:
            coefs = {v: w for v, w in coefs.items() if w != 0.0}
            kinds = {v[0] for v in coefs}
            if not coefs:
                if const > 0:
                    infeasible = True  # a constant comparison that is false
                continue
            if kinds == {"X"}:
                if len(coefs) != 1:
                    raise VnnlibError(f"line {line}: input constraints must bound one X_i by a constant")
                ((_, i), w), = coefs.items()
                # w * x + const <= 0
                if w > 0:
                    hi[i] = min(hi[i], -const / w)
                else:
                    lo[i] = max(lo[i], -const / w)
            elif kinds == {"Y"}:
                row = np.zeros(k)
                for (_, j), w in coefs.items():
                    row[j] = w
                rows.append(row)
                ds.append(-const)
            else:
                raise VnnlibError(f"line {line}: a constraint mixing inputs X and outputs Y is not supported")
        for i in range(n):
            if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
                side = "lower" if not np.isfinite(lo[i]) else "upper"
                raise VnnlibError(f"vnnlib: X_{i} has no {side} bound (every input needs a box)")
        if infeasible or bool((lo > hi).any()):
            continue  # an empty disjunct cannot produce a counterexample
        C = np.stack(rows) if rows else np.zeros((0, k))
        prop.clauses.append(Clause(lo, hi, C, np.asarray(ds, dtype=np.float64)))
    return prop
