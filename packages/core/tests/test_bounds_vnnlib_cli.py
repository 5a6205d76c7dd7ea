"""`certkit bounds vnnlib --onnx M --vnnlib P`: VNN-COMP result (sat with counterexample /
unsat), the result file, and one-line errors (exit 2) for malformed inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from certkit.core.cli import main  # noqa: E402


def _model(path: Path) -> None:
    """y = W2 relu(x W1 + b1) + b2 on 2 inputs, 2 outputs (weights chosen by hand)."""
    W1 = np.array([[1.0, -1.0], [0.5, 1.0]], np.float32)
    b1 = np.array([0.0, 0.1], np.float32)
    W2 = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    b2 = np.array([0.0, -0.2], np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m"]), helper.make_node("Add", ["m", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=inits)
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def _prop(lo: float, hi: float, out: str) -> str:
    return ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
            f"(assert (>= X_0 {lo}))\n(assert (<= X_0 {hi}))\n(assert (>= X_1 {lo}))\n(assert (<= X_1 {hi}))\n"
            f"(assert {out})\n")


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["--json", "bounds", "vnnlib", *argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])  # type: ignore[no-any-return]


def test_vnnlib_cli_unsat_sat_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.onnx"
    _model(m)
    p = tmp_path / "p.vnnlib"
    # on [0, 1]^2: Y_0 = relu(x0 + 0.5 x1) >= 0, so Y_0 <= -0.5 is impossible → unsat
    p.write_text(_prop(0.0, 1.0, "(<= Y_0 -0.5)"))
    res = tmp_path / "res.txt"
    r = _run(capsys, ["--onnx", str(m), "--vnnlib", str(p), "--out", str(res), "--timeout", "30"])
    assert r["status"] == "unsat" and res.read_text() == "unsat\n"
    # Y_0 >= 1.2 is reached at x = (1, 1) (Y_0 = 1.5) → sat, with a witness that checks out
    p.write_text(_prop(0.0, 1.0, "(>= Y_0 1.2)"))
    r = _run(capsys, ["--onnx", str(m), "--vnnlib", str(p), "--out", str(res)])
    assert r["status"] == "sat"
    x = np.array(r["counterexample"]["x"])  # type: ignore[index]
    assert (x >= 0).all() and (x <= 1).all() and max(0.0, x[0] + 0.5 * x[1]) >= 1.2 - 1e-6
    assert res.read_text().startswith("sat\n((X_0 ")
    # malformed property: one line, exit 2, with the line number
    p.write_text(_prop(0.0, 1.0, "(>= Y_0 1.2").rstrip() + "\n")
    capsys.readouterr()
    assert main(["bounds", "vnnlib", "--onnx", str(m), "--vnnlib", str(p)]) == 2
    assert "line 9" in capsys.readouterr().err
    m.write_bytes(b"not an onnx file")
    assert main(["bounds", "vnnlib", "--onnx", str(m), "--vnnlib", str(p)]) == 2
    assert "not a valid ONNX" in capsys.readouterr().err
