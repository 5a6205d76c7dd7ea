"""ONNX import of general graphs (issue 17 section 3): DAGs built here with onnx.helper
(residual Add of two branches, Transpose, MatMul with the weight on the left of a rank-1
input, Pad + AveragePool, asymmetric conv padding, Concat, Sigmoid / Tanh / LeakyRelu,
normalisation by Sub / Div, BatchNormalization, ReduceMean, a Reshape target computed by
Shape / Gather / Concat) are checked against onnxruntime on random inputs and for sound
IBP / CROWN bounds by sampling; refusals name the ONNX node and op; every network of the
VNN-COMP 2021 data loads (gzipped ones too) and agrees with onnxruntime (shared data)."""

from __future__ import annotations

import gzip
import math
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from certkit.core.bounds import BoundedModel, UnsupportedLayerError  # noqa: E402
from certkit.core.bounds.onnx_import import OPS, load_onnx  # noqa: E402

VNN = Path(__file__).resolve().parents[4] / "shared" / "data" / "vnncomp2021"
R = np.random.default_rng(0)


def _w(*shape: int, s: float = 0.5) -> np.ndarray:
    return R.normal(0, s, shape).astype(np.float32)


def _model(nodes: list, inits: dict[str, np.ndarray], in_shape: list[int], out_shape: list[int],
           opset: int = 13) -> bytes:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _resnet_block() -> bytes:
    """conv → relu → {conv → relu → conv (asymmetric pads)} + {1x1 conv}: a residual Add of two branches."""
    N = helper.make_node
    nodes = [N("Sub", ["x", "mean"], ["s"], name="norm_sub"), N("Div", ["s", "std"], ["d"], name="norm_div"),
             N("Conv", ["d", "W0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1], strides=[2, 2]),
             N("BatchNormalization", ["c0", "g0", "be0", "m0", "v0"], ["n0"], name="bn0"),
             N("Relu", ["n0"], ["r0"], name="relu0"),
             N("Conv", ["r0", "W1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             N("Relu", ["c1"], ["r1"], name="relu1"),
             N("Conv", ["r1", "W2", "b2"], ["c2"], name="conv2", pads=[0, 0, 1, 1]),
             N("Pad", ["r0", "pads"], ["p0"], name="pad_short", mode="constant"),
             N("AveragePool", ["p0"], ["a0"], name="avg_short", kernel_shape=[2, 2], strides=[1, 1]),
             N("Add", ["c2", "a0"], ["res"], name="residual"), N("Relu", ["res"], ["r2"], name="relu2"),
             N("Shape", ["r2"], ["shp"], name="shape"),
             N("Gather", ["shp", "zero_s"], ["bdim"], name="gather", axis=0),
             N("Unsqueeze", ["bdim", "zero"], ["bdim1"], name="unsq"),
             N("Concat", ["bdim1", "minus1"], ["tgt"], name="cat_shape", axis=0),
             N("Reshape", ["r2", "tgt"], ["flat"], name="flatten"),
             N("Gemm", ["flat", "Wf", "bf"], ["y"], name="fc", transB=1)]
    inits = {"mean": np.array([0.5, 0.4], np.float32).reshape(1, 2, 1, 1),
             "std": np.array([0.25, 0.3], np.float32).reshape(1, 2, 1, 1),
             "W0": _w(4, 2, 3, 3), "b0": _w(4), "g0": 1 + _w(4, s=0.1), "be0": _w(4), "m0": _w(4, s=0.1),
             "v0": 1 + np.abs(_w(4, s=0.2)), "W1": _w(4, 4, 3, 3), "b1": _w(4), "W2": _w(4, 4, 2, 2), "b2": _w(4),
             "pads": np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "zero": np.array([0], np.int64),
             "minus1": np.array([-1], np.int64), "zero_s": np.array(0, np.int64), "Wf": _w(3, 4 * 4 * 4), "bf": _w(3)}
    return _model(nodes, inits, [1, 2, 8, 8], [1, 3])


def _vector_left_matmul() -> bytes:
    """nn4sys style: a rank-1 input, MatMul(W, x) with the weight on the left, Sigmoid/Tanh/LeakyRelu."""
    N = helper.make_node
    nodes = [N("MatMul", ["W0", "x"], ["m0"], name="mm0"), N("Add", ["m0", "b0"], ["h0"], name="add0"),
             N("Sigmoid", ["h0"], ["s0"], name="sig"), N("MatMul", ["W1", "s0"], ["m1"], name="mm1"),
             N("Tanh", ["m1"], ["t1"], name="tanh"), N("LeakyRelu", ["t1"], ["l1"], name="leaky", alpha=0.1),
             N("MatMul", ["W2", "l1"], ["y"], name="mm2")]
    return _model(nodes, {"W0": _w(6, 3), "b0": _w(6), "W1": _w(5, 6), "W2": _w(2, 5)}, [3], [2])


def _transpose_concat() -> bytes:
    """Transpose (marabou style), MatMul with a constant on the right of a matrix, Concat, ReduceMean."""
    N = helper.make_node
    nodes = [N("Transpose", ["x"], ["t"], name="tr", perm=[0, 2, 1]),  # (1, 4, 3) -> (1, 3, 4)
             N("MatMul", ["t", "W"], ["m"], name="mm"),  # (1, 3, 5)
             N("Relu", ["m"], ["r"], name="relu"),
             N("ReduceMean", ["r"], ["rm"], name="mean", axes=[2], keepdims=1),  # (1, 3, 1)
             N("Concat", ["r", "rm"], ["c"], name="cat", axis=2),  # (1, 3, 6)
             N("Flatten", ["c"], ["f"], name="flat", axis=1),
             N("Gemm", ["f", "Wf"], ["y"], name="fc")]
    return _model(nodes, {"W": _w(4, 5), "Wf": _w(18, 2)}, [1, 4, 3], [1, 2])


GRAPHS = {"resnet_block": _resnet_block, "vector_left_matmul": _vector_left_matmul,
          "transpose_concat": _transpose_concat}


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    return s.run(None, {i.name: x.astype(np.float64 if "double" in i.type else np.float32)})[0]


@pytest.mark.parametrize("name", list(GRAPHS))
def test_dag_import_matches_onnxruntime_and_bounds_are_sound(name: str) -> None:
    data = GRAPHS[name]()
    om = load_onnx(data, dtype=torch.float64)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.uniform(0, 1, (1, *om.input_shape))
        ref = _ort(data, x.reshape(-1) if len(om.input_shape) == 1 and name == "vector_left_matmul" else x)
        ours = om.module(torch.as_tensor(x)).detach().numpy()
        np.testing.assert_allclose(ours.reshape(-1), ref.reshape(-1), rtol=1e-5, atol=1e-5)
    bm = BoundedModel(om.module, om.input_shape)
    x = torch.as_tensor(rng.uniform(0, 1, (2, *om.input_shape)))
    for method in ("IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"):
        with torch.no_grad():
            lo, up = bm.compute_bounds(x, 0.05, method=method, alpha_iterations=3)
            u = torch.rand(2, 300, *om.input_shape, dtype=torch.float64) * 2 - 1
            u[:, :80] = u[:, :80].sign()
            y = om.module((x.unsqueeze(1) + 0.05 * u).reshape(-1, *om.input_shape)).reshape(2, 300, -1)
        assert bool((y >= lo.unsqueeze(1) - 1e-7).all()) and bool((y <= up.unsqueeze(1) + 1e-7).all()), method


def test_registry_one_function_per_op_and_refusals_name_the_node() -> None:
    for op in ("Gemm", "MatMul", "Conv", "Add", "Relu", "Sigmoid", "Pad", "Transpose", "Concat", "Reshape"):
        assert callable(OPS[op])
    N = helper.make_node
    bad = _model([N("Sin", ["x"], ["y"], name="my_sin")], {}, [1, 3], [1, 3])
    with pytest.raises(UnsupportedLayerError, match=r"'my_sin' \(Sin\)"):
        load_onnx(bad)
    prod = _model([N("Relu", ["x"], ["r"], name="r"), N("Mul", ["x", "r"], ["y"], name="square")], {}, [1, 3], [1, 3])
    with pytest.raises(UnsupportedLayerError, match=r"'square' \(Mul\)"):
        load_onnx(prod)
    # a capture-level refusal names the ONNX node too (the fx nodes carry ONNX names)
    mp = _model([N("MaxPool", ["x"], ["y"], name="pool7", kernel_shape=[2, 2], pads=[1, 1, 1, 1])], {},
                [1, 1, 4, 4], [1, 1, 3, 3])
    with pytest.raises(UnsupportedLayerError, match=r"'pool7' \(MaxPool\)"):
        load_onnx(mp)
    gz = gzip.compress(_vector_left_matmul())
    assert load_onnx(gz).input_shape == (3,)


def _vnn_files() -> list[Path]:
    return sorted(p for p in VNN.rglob("*.onnx*") if p.suffix in (".onnx", ".gz"))


@pytest.mark.shared_data
@pytest.mark.skipif(not VNN.is_dir(), reason="../shared/data/vnncomp2021 is absent")
def test_every_vnncomp2021_network_loads_matches_onnxruntime_and_bounds_hold() -> None:
    """Every network loads; outputs equal onnxruntime's on random inputs; IBP and CROWN
    bounds at a small radius are never escaped by sampled points (ACAS Xu: 3 of 45 nets and
    nn4sys: 2 of 6 checked, the rest share their architecture and only load;
    cifar10_resnet: IBP only, CROWN takes many seconds there)."""
    files = _vnn_files()
    assert len(files) >= 60
    acas = 0
    for f in files:
        acas += "acasxu" in str(f)
        if ("acasxu" in str(f) and acas > 3) or ("nn4sys" in str(f) and not f.name.startswith("normal_")):
            load_onnx(f)  # every one loads
            continue
        om = load_onnx(f)
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        dt = next(om.module.parameters()).dtype
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (1, *om.input_shape))
        s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        ref = s.run(None, {i.name: x.reshape([d if isinstance(d, int) else 1 for d in i.shape])
                           .astype(np.float64 if dt == torch.float64 else np.float32)})[0]
        xt = torch.as_tensor(x, dtype=dt)
        ours = om.module(xt).detach().numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(ours.reshape(-1), ref.reshape(-1), atol=1e-4 * scale, err_msg=str(f))
        bm = BoundedModel(om.module, om.input_shape)
        methods = ("IBP",) if "resnet" in f.name else ("IBP", "CROWN")
        for m in methods:
            with torch.no_grad():
                lo, up = bm.compute_bounds(xt, 0.01, method=m)
                u = torch.rand(64, *om.input_shape, dtype=dt) * 2 - 1
                u[:16] = u[:16].sign()
                y = om.module(xt + 0.01 * u)
            tol = 1e-4 * max(1.0, float(up.abs().max()))
            assert bool((y >= lo - tol).all()) and bool((y <= up + tol).all()), (str(f), m)
    assert math.isfinite(float(acas)) and acas == 45


def _mutate(data: bytes, rnd: random.Random, seed: int) -> bytes:
    m = onnx.load_from_string(data)
    g = m.graph
    kind = rnd.choice(["attr", "init", "input", "dims", "drop"])
    if kind == "attr":
        n = rnd.choice(list(g.node))
        if n.attribute:
            a = rnd.choice(list(n.attribute))
            if a.type == onnx.AttributeProto.INTS:
                a.ints[:] = [rnd.randint(-2, 4) for _ in range(rnd.randint(0, 5))]
            elif a.type == onnx.AttributeProto.INT:
                a.i = rnd.randint(-3, 5)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rnd.choice([0.0, -1.0, float("nan"), 2.5])
    elif kind == "init":
        t = rnd.choice(list(g.initializer))
        arr = numpy_helper.to_array(t)
        if arr.dtype.kind == "f":
            shape = tuple(max(1, d + rnd.randint(-1, 1)) for d in arr.shape)
            t.CopyFrom(numpy_helper.from_array(np.random.default_rng(seed).normal(size=shape).astype(arr.dtype), t.name))
    elif kind == "input":
        n = rnd.choice(list(g.node))
        if n.input:
            n.input[rnd.randrange(len(n.input))] = rnd.choice([o for nn in g.node for o in nn.output] + ["x"])
    elif kind == "dims":
        d = g.input[0].type.tensor_type.shape.dim
        d[rnd.randrange(len(d))].dim_value = rnd.randint(1, 9)
    elif len(g.node) > 1:
        del g.node[rnd.randrange(len(g.node))]
    return m.SerializeToString()  # type: ignore[no-any-return]


def test_mutated_models_give_one_line_errors_only() -> None:
    """Random mutations of the test graphs (attributes, initializer shapes, rewired inputs,
    input dims, dropped nodes) either load and bound, or raise a one-line ValueError /
    UnsupportedLayerError: never a KeyError, IndexError or a shape error from inside torch."""
    rnd = random.Random(0)
    base = {k: f() for k, f in GRAPHS.items()}
    refused = 0
    for trial in range(150):
        data = _mutate(base[rnd.choice(list(base))], rnd, trial)
        try:
            om = load_onnx(data, dtype=torch.float64)
            bm = BoundedModel(om.module, om.input_shape)
            with torch.no_grad():
                bm.compute_bounds(torch.rand(1, *om.input_shape, dtype=torch.float64), 0.01, method="CROWN")
        except ValueError as exc:  # UnsupportedLayerError is a ValueError
            assert "\n" not in str(exc), str(exc)
            refused += 1
    assert refused >= 20  # the mutations do break models


@pytest.mark.shared_data
@pytest.mark.skipif(not VNN.is_dir(), reason="../shared/data/vnncomp2021 is absent")
def test_vnncomp2021_verdicts_agree_with_published_results() -> None:
    """The test/ category and quick mnistfc / eran instances (a sat, a ReLU unsat, a Sigmoid
    unsat): every sat / unsat we return agrees with α-β-CROWN's published result (nano and
    small are unpublished: on [-1, 1] nano's Y = relu(.) >= 0 never reaches Y <= -1, and
    small's Y stays in [30.5, 78.5] on a 200 001-point grid, below Y >= 100)."""
    from certkit.core.bounds.vnnlib_verify import verify_onnx_vnnlib

    cases = [("test", "test_nano.onnx", "test_nano.vnnlib", "unsat"),
             ("test", "test_tiny.onnx", "test_tiny.vnnlib", "unsat"),
             ("test", "test_small.onnx", "test_small.vnnlib", "unsat"),
             ("test", "test_sat.onnx", "test_prop.vnnlib", "sat"),
             ("test", "test_unsat.onnx", "test_prop.vnnlib", "unsat"),
             ("mnistfc", "mnist-net_256x2.onnx", "prop_12_0.05.vnnlib", "sat"),
             ("mnistfc", "mnist-net_256x4.onnx", "prop_8_0.03.vnnlib", "unsat"),
             ("eran", "nets/ffnnSIGMOID__Point_6x200.onnx", "specs/mnist/mnist_spec_idx_8754_eps_0.01200.vnnlib",
              "unsat")]
    for cat, net, prop, want in cases:
        r = verify_onnx_vnnlib(VNN / cat / net, VNN / cat / prop, timeout=60)
        assert r.status == want, (cat, net, prop, r.status, r.method)
