"""VNN-LIB parsing, ONNX import and VNN-COMP-style verification (certkit.core.bounds).

ONNX models are built in the test with ``onnx.helper`` and checked against a naive numpy
evaluation of the same graph. Verification is checked for soundness by brute force:
on random small nets and boxes, an ``unsat`` answer is never contradicted by dense
sampling, every ``sat`` witness is re-checked, and a property that sampling violates is
never called ``unsat``. Malformed property files give a VnnlibError with the line number;
random mutations of a valid file never raise anything else.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from certkit.core.bounds import UnsupportedLayerError  # noqa: E402
from certkit.core.bounds.onnx_import import load_onnx  # noqa: E402
from certkit.core.bounds.vnnlib import VnnlibError, parse_vnnlib  # noqa: E402
from certkit.core.bounds.vnnlib_verify import verify_onnx_vnnlib, verify_property  # noqa: E402

# ------------------------------------------------------------------ ONNX models built here


def _mlp_onnx(seed: int, d: int = 5, h: int = 8, k: int = 3, gemm: bool = True) -> tuple[bytes, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0, 0.6, (d, h)).astype(np.float32)
    b1 = rng.normal(0, 0.3, h).astype(np.float32)
    W2 = rng.normal(0, 0.6, (k, h)).astype(np.float32)  # Gemm with transB=1
    b2 = rng.normal(0, 0.3, k).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1")]
    if gemm:
        nodes.append(helper.make_node("Gemm", ["r1", "W2", "b2"], ["y"], name="gemm2", transB=1))
    else:
        nodes.append(helper.make_node("Sin", ["r1"], ["y"], name="weird"))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return m.SerializeToString(), [W1, b1, W2, b2]


def _np_mlp(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Naive reference: the same graph evaluated with numpy loops."""
    W1, b1, W2, b2 = (p.astype(np.float64) for p in params)
    out = np.zeros((x.shape[0], W2.shape[0]))
    for n in range(x.shape[0]):
        h = [max(0.0, sum(x[n, i] * W1[i, j] for i in range(W1.shape[0])) + b1[j]) for j in range(W1.shape[1])]
        for c in range(W2.shape[0]):
            out[n, c] = sum(W2[c, j] * h[j] for j in range(len(h))) + b2[c]
    return out


def _cnn_onnx(seed: int) -> bytes:
    """Sub/Div normalisation, Conv (pads 1, stride 2) + bias, Relu, Flatten, Gemm."""
    rng = np.random.default_rng(seed)
    Wc = rng.normal(0, 0.5, (3, 1, 3, 3)).astype(np.float32)
    bc = rng.normal(0, 0.2, 3).astype(np.float32)
    Wf = rng.normal(0, 0.4, (27, 4)).astype(np.float32)
    bf = rng.normal(0, 0.2, 4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (np.array([0.25], np.float32), "mean"), (np.array([0.5], np.float32), "std"), (Wc, "Wc"), (bc, "bc"),
        (Wf, "Wf"), (bf, "bf"))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"]), helper.make_node("Div", ["s", "std"], ["n"]),
             helper.make_node("Conv", ["n", "Wc", "bc"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "Wf", "bf"], ["y"])]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _np_cnn(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    m = onnx.load_from_string(model_bytes)
    c = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    xn = (x - c["mean"]) / c["std"]
    xp = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], 3, 3, 3))
    for n in range(x.shape[0]):
        for o in range(3):
            for i in range(3):
                for j in range(3):
                    out[n, o, i, j] = (xp[n, 0, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * c["Wc"][o, 0]).sum() + c["bc"][o]
    f = np.maximum(out, 0).reshape(x.shape[0], -1)
    return f @ c["Wf"] + c["bf"]


def test_onnx_import_matches_numpy_reference() -> None:
    data, params = _mlp_onnx(0)
    om = load_onnx(data, dtype=torch.float64)
    assert om.input_shape == (5,) and om.num_outputs == 3
    x = np.random.default_rng(1).normal(size=(6, 5))
    y = om.module(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(y, _np_mlp(params, x), atol=1e-5)
    cnn = _cnn_onnx(2)
    om = load_onnx(cnn, dtype=torch.float64)
    assert om.input_shape == (1, 5, 5) and om.num_outputs == 4
    x = np.random.default_rng(3).uniform(size=(4, 1, 5, 5))
    np.testing.assert_allclose(om.module(torch.as_tensor(x)).numpy(), _np_cnn(cnn, x), atol=1e-5)


def test_onnx_bad_files(tmp_path: Path) -> None:
    data, _ = _mlp_onnx(0, gemm=False)
    with pytest.raises(UnsupportedLayerError, match="'weird' \\(Sin\\)"):
        load_onnx(data)
    good, _ = _mlp_onnx(0)
    trunc = tmp_path / "t.onnx"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a valid ONNX"):
        load_onnx(trunc)
    with pytest.raises(ValueError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


# ------------------------------------------------------------------ VNN-LIB parsing

_PROP = """; a robustness-style property (comments are ignored)
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 -5e-1))
(assert (and (>= X_1 0.0) (<= X_1 1.0)))
(assert (or (and (>= Y_1 Y_0)) (and (<= (- Y_0 Y_2) -0.25) (< Y_2 (* 2 Y_1)))))
"""


def test_parse_property() -> None:
    p = parse_vnnlib(_PROP, n_inputs=2, n_outputs=3)
    assert (p.n_inputs, p.n_outputs, len(p.clauses)) == (2, 3, 2)
    c0, c1 = p.clauses
    np.testing.assert_allclose(c0.lo, [-0.5, 0.0])
    np.testing.assert_allclose(c0.hi, [0.5, 1.0])
    # Y_1 >= Y_0  ⇔  Y_0 - Y_1 <= 0
    np.testing.assert_allclose(c0.C, [[1, -1, 0]])
    np.testing.assert_allclose(c0.d, [0])
    # Y_0 - Y_2 <= -0.25 ; Y_2 - 2 Y_1 <= 0
    np.testing.assert_allclose(c1.C, [[1, 0, -1], [0, -2, 1]])
    np.testing.assert_allclose(c1.d, [-0.25, 0])


def test_parse_disjunctive_input_boxes_and_empty_clause() -> None:
    text = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
            "(assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 0)) (and (>= X_0 2) (<= X_0 1) (<= Y_0 0))"
            " (and (>= X_0 -3) (<= X_0 -2) (>= Y_0 1))))\n")
    p = parse_vnnlib(text)
    assert len(p.clauses) == 2  # the middle box [2, 1] is empty
    np.testing.assert_allclose([c.lo[0] for c in p.clauses], [0, -3])
    np.testing.assert_allclose(p.clauses[1].C, [[-1]])
    np.testing.assert_allclose(p.clauses[1].d, [-1])


_BAD = [
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1)\n", "line 3: '\\(' is never closed"),
    ("(declare-const X_0 Real))\n", "line 1: unbalanced"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 0))\n"
     "(assert (<= Y_1 0))\n", "line 5: variable Y_1 is used before"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 Y_0))\n", "line 3: .*mixing"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n(assert (<= Y_0 0))\n",
     "X_0 has no lower bound"),
    ("(declare-const X_0 Int)\n", "line 1: only Real"),
    ("(declare-const X_0 Real)\n(declare-const X_0 Real)\n", "line 2: X_0 is declared twice"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (or))\n", "line 3: empty 'or'"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n\n(assert (<= (* X_0 X_0) 1))\n",
     "line 4: product of two variables"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (== Y_0 1))\n", "line 3: unsupported formula"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= Y_0 1e999))\n", "line 3: non-finite"),
    ("(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(assert (<= Y_0 1))\n", "X_0 is not declared"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(check-sat)\n", "line 3: unsupported command"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\nfoo\n", "line 3: unexpected token"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= Y_0 1 2))\n", "line 3: <= expects 2"),
]


@pytest.mark.parametrize(("text", "msg"), _BAD)
def test_malformed_vnnlib_names_the_line(text: str, msg: str) -> None:
    with pytest.raises(VnnlibError, match=msg):
        parse_vnnlib(text)


def test_vnnlib_counts_and_files(tmp_path: Path) -> None:
    with pytest.raises(VnnlibError, match="declares 2 inputs X_i, the model has 3"):
        parse_vnnlib(_PROP, n_inputs=3)
    with pytest.raises(VnnlibError, match="no such file"):
        parse_vnnlib(tmp_path / "none.vnnlib")
    f = tmp_path / "p.vnnlib"
    f.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(VnnlibError, match="not a text file"):
        parse_vnnlib(f)
    f.write_text(_PROP[: len(_PROP) - 5])  # truncated
    with pytest.raises(VnnlibError, match="never closed"):
        parse_vnnlib(f)
    with pytest.raises(TypeError, match="source"):
        parse_vnnlib(3)  # type: ignore[arg-type]


def test_vnnlib_fuzz_only_vnnlib_errors() -> None:
    """Random deletions / insertions / truncations of a valid file: the parser either
    succeeds or raises VnnlibError, never another exception."""
    rnd = random.Random(0)
    alphabet = "()XY_0123456789.-+ e\n;<>=andor"
    raised = 0
    for _ in range(400):
        s = list(_PROP)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            pos = rnd.randrange(len(s))
            if op < 0.4:
                del s[pos]
            elif op < 0.8:
                s.insert(pos, rnd.choice(alphabet))
            else:
                s = s[:pos]
            if not s:
                s = ["("]
        try:
            parse_vnnlib("".join(s))
        except VnnlibError:
            raised += 1
    assert raised > 100


# ------------------------------------------------------------------ verification


def _robust_prop(x0: np.ndarray, eps: float, label: int, k: int) -> str:
    """Counterexample: an input in the box whose label is not the top class (one
    disjunct per other class j: Y_j >= Y_label)."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(x0))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(k)]
    for i, v in enumerate(x0):
        lines.append(f"(assert (>= X_{i} {float(v - eps)!r}))")
        lines.append(f"(assert (<= X_{i} {float(v + eps)!r}))")
    ors = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(k) if j != label)
    lines.append(f"(assert (or {ors}))")
    return "\n".join(lines) + "\n"


def _brute_force_violated(model: torch.nn.Module, prop: object, n: int, gen: torch.Generator) -> bool:
    for c in prop.clauses:  # type: ignore[attr-defined]
        lo, hi = torch.as_tensor(c.lo), torch.as_tensor(c.hi)
        u = torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64)
        u[: n // 4] = u[: n // 4].round()  # box vertices
        x = lo + u * (hi - lo)
        with torch.no_grad():
            y = model(x)
        v = y @ torch.as_tensor(c.C).T - torch.as_tensor(c.d)
        if bool((v <= 0).all(1).any()):
            return True
    return False


def test_verify_sound_by_brute_force() -> None:
    gen = torch.Generator().manual_seed(5)
    seen = {"sat": 0, "unsat": 0, "unknown": 0}
    for seed in range(16):
        data, _ = _mlp_onnx(seed)
        om = load_onnx(data, dtype=torch.float64)
        x0 = torch.rand(5, generator=gen, dtype=torch.float64).numpy()
        with torch.no_grad():
            label = int(om.module(torch.as_tensor(x0).unsqueeze(0)).argmax())
        eps = [0.02, 0.1, 0.4, 1.0][seed % 4]
        prop = parse_vnnlib(_robust_prop(x0, eps, label, 3), n_inputs=5, n_outputs=3)
        violated = _brute_force_violated(om.module, prop, 4000, gen)
        # bounds alone (no PGD, only the box centre is tried) must never claim unsat wrongly
        rb = verify_property(om.module, om.input_shape, prop, pgd_steps=0, pgd_restarts=0, alpha_iterations=5)
        assert not (violated and rb.status == "unsat"), f"seed {seed}: bounds prove a violated property"
        r = verify_property(om.module, om.input_shape, prop, timeout=60, pgd_steps=20, pgd_restarts=3,
                            alpha_iterations=5, seed=seed)
        seen[r.status] += 1
        if r.status == "unsat":
            assert not violated, f"seed {seed}: unsat but sampling finds a counterexample"
        if r.status == "sat":
            assert r.x is not None and r.y is not None
            y = om.module(torch.as_tensor(r.x).unsqueeze(0))[0].detach().numpy()
            np.testing.assert_allclose(y, r.y)
            ok = any(bool((c.lo <= r.x).all() and (r.x <= c.hi).all() and (c.C @ y <= c.d).all())
                     for c in prop.clauses)
            assert ok, "the sat witness does not satisfy any disjunct"
            assert r.to_vnncomp().startswith("sat\n((X_0 ")
        if violated:
            assert r.status != "unsat"
    assert seen["sat"] > 0 and seen["unsat"] > 0


def test_verify_onnx_vnnlib_files_cnn_and_timeout(tmp_path: Path) -> None:
    cnn = tmp_path / "cnn.onnx"
    cnn.write_bytes(_cnn_onnx(1))
    om = load_onnx(cnn, dtype=torch.float64)
    x0 = np.full(25, 0.5)
    with torch.no_grad():
        label = int(om.module(torch.as_tensor(x0).reshape(1, 1, 5, 5)).argmax())
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_robust_prop(x0, 1e-4, label, 4))
    r = verify_onnx_vnnlib(cnn, prop, timeout=60, pgd_steps=5)
    assert r.status == "unsat" and r.method in ("IBP", "CROWN") and r.to_vnncomp() == "unsat\n"
    # a property that holds for every input (label vs itself is always >=) is sat at once
    prop.write_text(_robust_prop(x0, 0.1, label, 4).replace(f"(>= Y_{(label + 1) % 4} Y_{label})",
                                                            f"(>= Y_{label} Y_{label})"))
    assert verify_onnx_vnnlib(cnn, prop, timeout=60).status == "sat"
    prop.write_text(_robust_prop(x0, 0.3, label, 4))
    assert verify_onnx_vnnlib(cnn, prop, timeout=1e-9).status == "timeout"
    with pytest.raises(ValueError, match="timeout"):
        verify_onnx_vnnlib(cnn, prop, timeout=-1)
    with pytest.raises(ValueError, match="pgd_steps"):
        verify_onnx_vnnlib(cnn, prop, pgd_steps=-2)
    bad = tmp_path / "q.vnnlib"
    bad.write_text(_robust_prop(np.zeros(3), 0.1, 0, 4))
    with pytest.raises(VnnlibError, match="declares 3 inputs X_i, the model has 25"):
        verify_onnx_vnnlib(cnn, bad)
    assert math.isfinite(r.time_s)


# ------------------------------------------------------------------ disjuncts sharing a box


def _label_disjuncts(lo: np.ndarray, his: list[np.ndarray], label: int, k: int) -> object:
    """One disjunct ``Y_j >= Y_label`` per other label j, the j-th over ``los``/``his[j]``."""
    from certkit.core.bounds.vnnlib import Clause, Property

    clauses = []
    for n, j in enumerate(j for j in range(k) if j != label):
        C = np.zeros((1, k))
        C[0, label], C[0, j] = 1.0, -1.0  # Y_label - Y_j <= 0
        clauses.append(Clause(lo.copy(), his[n].copy(), C, np.zeros(1)))
    return Property(len(lo), k, clauses)


def _open_after_bounds(monkeypatch: pytest.MonkeyPatch, net: object, shape: tuple[int, ...], prop: object,
                       calls: list[int]) -> list[int]:
    """The disjuncts verify_property leaves open after IBP / CROWN / α-CROWN (the ReLU-split
    entry is replaced by a recorder), and the batch size of each bound pass in ``calls``."""
    import certkit.core.bounds.vnnlib_verify as vv
    from certkit.core.bounds.model import BoundedModel

    seen: list[int] = []

    def record(model, input_shape, open_idx, lo, hi, C, d, valid, deadline, violation, done, N, kw):  # type: ignore[no-untyped-def]
        seen.extend(sorted(open_idx.tolist()))
        return done("unknown", "recorded", N - open_idx.numel())

    real = BoundedModel.compute_bounds

    def counted(self, x, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(int(x.shape[0]))
        return real(self, x, *a, **k)

    monkeypatch.setattr(vv, "_relu_split_open", record)
    monkeypatch.setattr(BoundedModel, "compute_bounds", counted)
    r = verify_property(net, shape, prop, pgd_steps=0, pgd_restarts=0, alpha_iterations=5,
                        input_split_max_dims=0, relu_split=True)
    assert r.status in ("unknown", "unsat")
    return seen


def test_disjuncts_over_one_box_are_bounded_as_one_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """VNN-COMP robustness properties are 9 disjuncts over one box: one bound pass of batch 1
    (their intermediate bounds are the same), and the disjuncts left open are exactly those
    each one, bounded alone, leaves open (rows mapped back to their own disjunct)."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(20, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10)).double()
    x0 = torch.rand(20, dtype=torch.float64)
    label = int(net(x0[None]).argmax())
    eps = 0.2  # CROWN proves 3 of the 9 here
    lo, hi = (x0 - eps).numpy(), (x0 + eps).numpy()
    prop = _label_disjuncts(lo, [hi] * 9, label, 10)
    calls: list[int] = []
    open_all = _open_after_bounds(monkeypatch, net, (20,), prop, calls)
    assert calls and all(b == 1 for b in calls), calls
    alone = []
    for i, c in enumerate(prop.clauses):
        one = type(prop)(prop.n_inputs, prop.n_outputs, [c])
        if _open_after_bounds(monkeypatch, net, (20,), one, []):
            alone.append(i)
    assert 0 < len(alone) < 9, "the case must mix proven and open disjuncts"
    assert open_all == alone


def test_disjuncts_over_different_boxes_are_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two disjuncts whose boxes differ: Y_1 >= Y_0 means x_0 >= 1 here; it is empty over
    x_0 in [-0.5, 0.5] and not over [-1.5, 1.5]. Bounding the second over the first's box
    would prove the property wrongly."""
    from certkit.core.bounds.vnnlib import Clause, Property

    net = torch.nn.Sequential(torch.nn.Linear(2, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
        net[0].bias.copy_(torch.tensor([1.0, 0.0], dtype=torch.float64))
    C, d = np.array([[1.0, -1.0]]), np.zeros(1)  # Y_0 - Y_1 <= 0
    prop = Property(2, 2, [Clause(np.array([-0.5, 0.0]), np.array([0.5, 0.0]), C, d),
                           Clause(np.array([-1.5, 0.0]), np.array([1.5, 0.0]), C, d)])
    r = verify_property(net, (2,), prop, pgd_steps=0, pgd_restarts=0, input_split_max_dims=0, relu_split=False)
    assert r.status == "unknown" and r.proven == 1
    assert _open_after_bounds(monkeypatch, net, (2,), prop, []) == [1]


def test_next_pass_cost_counts_boxes_not_disjuncts(monkeypatch: pytest.MonkeyPatch) -> None:
    """After CROWN leaves 6 of 9 disjuncts over one box open, α-CROWN still bounds one
    example: the cost the deadline check is given for it is CROWN's whole pass, not 6/9 of
    it (an underestimate lets a pass start that cannot end in time)."""
    import certkit.core.bounds.vnnlib_verify as vv
    from certkit.core.bounds.model import BoundedModel

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(20, 40), torch.nn.ReLU(), torch.nn.Linear(40, 10)).double()
    x0 = torch.rand(20, dtype=torch.float64)
    label = int(net(x0[None]).argmax())
    prop = _label_disjuncts((x0 - 0.2).numpy(), [(x0 + 0.2).numpy()] * 9, label, 10)
    asked: list[float | None] = []
    spent: dict[str, float] = {}
    real = BoundedModel.compute_bounds

    def timed(self, x, *a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = real(self, x, *a, **k)
        spent[k["method"]] = time.perf_counter() - t
        return out

    def fits(deadline: float | None, seconds: float | None = None) -> bool:
        asked.append(seconds)
        return True

    monkeypatch.setattr(BoundedModel, "compute_bounds", timed)
    monkeypatch.setattr(vv, "fits", fits)
    verify_property(net, (20,), prop, pgd_steps=0, pgd_restarts=0, alpha_iterations=2, input_split_max_dims=0,
                    relu_split=False, methods=("CROWN", "alpha-CROWN"))
    # fits() calls: the PGD witness check (None), CROWN (None), α-CROWN (CROWN's measured cost)
    assert "alpha-CROWN" in spent and asked[-1] is not None
    assert asked[-1] >= 0.95 * spent["CROWN"], (asked, spent)
