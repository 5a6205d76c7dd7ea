"""Red-team tests (#18, session 5) of the bound and branch-and-bound code: half-precision
models against the same weights in float64, and the cases that broke a verifier (each such
test fails on the code before its fix)."""

from __future__ import annotations

import copy
import itertools
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from certkit.core.bounds import BoundedModel
from certkit.core.bounds.act_bab import act_split
from certkit.core.bounds.bab import input_split
from certkit.core.bounds.relu_bab import relu_split
from certkit.core.bounds.vnnlib import Clause, Property
from certkit.core.bounds.vnnlib_verify import verify_property

_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _net(seed: int, dt: torch.dtype, act: str = "relu", k: int = 3) -> tuple[nn.Module, nn.Module, int]:
    """A seeded random MLP in ``dt`` (weights up to 10x, biases up to 10) and the same weights
    in float64; returns (net, net64, inputs)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n = rng.randint(2, 6 if k == 3 else 5)
    widths, depths = ([4, 8, 16, 32], [1, 2, 3]) if k == 3 else ([4, 8, 16], [1, 2])
    sizes = [n, *(rng.choice(widths) for _ in range(rng.choice(depths))), k]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), _ACTS[act]()]
    net = nn.Sequential(*layers[:-1]).double()
    wsc = rng.choice([1.0, 3.0, 10.0])
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * wsc / m.in_features ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64) * rng.choice([0.0, 1.0, 10.0]))
    net = net.to(dt).eval().requires_grad_(False)
    return net, copy.deepcopy(net).double(), n


def _points(lo: Tensor, hi: Tensor, dt: torch.dtype, n: int, g: torch.Generator) -> Tensor:
    """n points of the box [lo, hi] (float64) representable in dt, a quarter of them vertices."""
    x = lo + (hi - lo) * torch.rand(n, lo.shape[-1], generator=g, dtype=torch.float64)
    x[: n // 4] = torch.where(torch.rand(n // 4, lo.shape[-1], generator=g) < 0.5, lo, hi)
    return x.to(dt).double().clamp(lo, hi)


# ---- half-precision models are bounded in float64 (half.py, model.py)

@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["IBP", "CROWN", "alpha-CROWN"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_half_model_bounds_hold_for_its_weights_in_float64(dt: torch.dtype, method: str, act: str) -> None:
    """A half model was bounded in its own arithmetic, rounded to nearest at every op: on these
    nets sampled points of the same weights evaluated in float64 lay outside the certified
    bounds by up to 0.56 (bfloat16 CROWN, seed 19; float16 0.125). Now bounded on a float64
    copy and rounded outward to the half dtype."""
    for seed in (1, 15, 19):
        net, net64, n = _net(seed, dt, act)
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(1, n, generator=g, dtype=torch.float64) * 2 - 1).to(dt)
        eps = (0.0, 0.01, 0.1)[seed % 3]
        with torch.enable_grad():
            lb, ub = BoundedModel(net, (n,)).compute_bounds(x, eps, method=method, alpha_iterations=5)
        assert lb.dtype == dt and ub.dtype == dt
        y = net64(_points(x.double() - eps, x.double() + eps, dt, 2000, g))
        assert bool((y >= lb.double()).all() and (y <= ub.double()).all()), (seed, (lb.double() - y).amax(),
                                                                          (y - ub.double()).amax())


def test_half_model_intermediate_bounds_hold_in_float64() -> None:
    """``intermediate_bounds`` of a bfloat16 model, against the float64 pre-activations."""
    net, net64, n = _net(19, torch.bfloat16)
    x = torch.zeros(1, n, dtype=torch.bfloat16)
    b = BoundedModel(net, (n,)).intermediate_bounds(x, 0.1, method="CROWN")
    z = _points(x.double() - 0.1, x.double() + 0.1, torch.bfloat16, 2000, torch.Generator().manual_seed(0))
    for i, m in enumerate(net64):
        if isinstance(m, nn.ReLU):
            lo, hi = b[str(i)]
            assert lo.dtype == torch.bfloat16
            assert bool((z >= lo.double()).all() and (z <= hi.double()).all()), i
        z = m(z)


def _half_case(seed: int, dt: torch.dtype, act: str = "relu") -> tuple[nn.Module, int, Tensor, Tensor, Tensor, Tensor]:
    """A 2-output half net, a box of half points and one row ``y0 - y1 <= d`` with d a hair
    above the float64 value at the best of 20,000 sampled half points of the box: a
    counterexample in real arithmetic on the model's weights, so ``unsat`` is wrong."""
    net, net64, n = _net(seed, dt, act, k=2)
    g = torch.Generator().manual_seed(seed)
    c0 = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    lo, hi = (c0 - 0.1).to(dt).double(), (c0 + 0.1).to(dt).double()
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    v = float((net64(_points(lo, hi, dt, 20000, g)) @ C.T).min())
    return net, n, lo, hi, C, torch.tensor([v + 1e-9 * (1 + abs(v))], dtype=torch.float64)


@pytest.mark.parametrize(("split", "seed", "act"), [(relu_split, 18, "relu"), (input_split, 29, "relu"),
                                                    (act_split, 6, "relu"), (act_split, 8, "relu")])
def test_half_model_split_is_never_unsat_with_a_float64_counterexample(split, seed: int, act: str) -> None:  # type: ignore[no-untyped-def]
    """relu_split / input_split / act_split on a bfloat16 net cast the threshold to bfloat16
    and bounded in bfloat16: ``unsat`` where a sampled point of the box meets the row in
    float64 (each case was unsat before the fix)."""
    net, n, lo, hi, C, d = _half_case(seed, torch.bfloat16, act)
    r = split(net, (n,), lo.to(torch.bfloat16), hi.to(torch.bfloat16), C.to(torch.bfloat16), d,
              deadline=time.perf_counter() + 3, pgd_steps=2)
    assert r.status != "unsat", r
    if r.status == "sat":  # a witness of the model's dtype, checked in its own arithmetic
        assert r.x.dtype == torch.bfloat16 and bool(((r.x >= lo) & (r.x <= hi)).all())
        assert float(C[0] @ net(r.x.reshape(1, n)).double().reshape(-1)) <= float(d)


def test_half_model_verify_property_is_never_unsat_with_a_float64_counterexample() -> None:
    """verify_property on a bfloat16 net answered ``unsat`` (by input splitting) where a
    sampled point of the box meets the disjunct in float64 (seed 18 of 30)."""
    net, n, lo, hi, C, d = _half_case(18, torch.bfloat16)
    prop = Property(n, 2, [Clause(lo.numpy(), hi.numpy(), C.numpy(), d.numpy())])
    r = verify_property(net, (n,), prop, timeout=5, pgd_steps=20)
    assert r.status != "unsat", r


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_half_model_witness_holds_in_its_own_arithmetic(dt: torch.dtype) -> None:
    """A sat witness of a half model is a point of its dtype inside the box whose own output
    meets the rows (the search runs on a float64 copy)."""
    net, n, lo, hi, C, d = _half_case(3, dt)
    prop = Property(n, 2, [Clause(lo.numpy(), hi.numpy(), C.numpy(), d.numpy() + 1.0)])
    r = verify_property(net, (n,), prop, timeout=5)
    assert r.status == "sat", r
    x = torch.as_tensor(r.x)
    assert torch.equal(x.to(dt).double(), x) and bool(((x >= lo) & (x <= hi)).all())
    y = net(x.to(dt).reshape(1, n)).double().reshape(-1)
    assert torch.equal(y, torch.as_tensor(r.y)) and float(C[0] @ y) <= float(d) + 1.0
    np.testing.assert_array_equal(r.y, y.numpy())


# ---- `certkit bounds vnncomp` result logs (vnncomp.py)

_VNNCOMP = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vnncomp2021"


@pytest.mark.shared_data
def test_vnncomp_log_is_not_resumed_after_an_input_file_changed(tmp_path: Path) -> None:
    """The run's settings fingerprinted the instances CSV only: after a network (or a
    property, which VNN-COMP regenerates from a seed under the same names) changed, a
    resumed run kept the old verdicts. Here ``test_unsat.onnx`` is replaced by a net with a
    counterexample: the resumed run reported the stale ``unsat``; now it is refused (a fresh
    run finds ``sat``)."""
    pytest.importorskip("onnx")
    from certkit.core.bounds.vnncomp import run_category
    from certkit.core.results import SettingsMismatchError

    if not (_VNNCOMP / "test").is_dir():
        pytest.skip("../shared/data/vnncomp2021 absent")
    d = tmp_path / "cat"
    d.mkdir()
    for f in ("test_sat.onnx", "test_unsat.onnx", "test_prop.vnnlib"):
        shutil.copy(_VNNCOMP / "test" / f, d / f)
    (d / "cat_instances.csv").write_text("test_unsat.onnx,test_prop.vnnlib,20\n")
    out = tmp_path / "r.csv"
    assert [r["result"] for r in run_category(d, out=out)] == ["unsat"]
    assert [r["result"] for r in run_category(d, out=out)] == ["unsat"]  # (a plain resume)
    shutil.copy(d / "test_sat.onnx", d / "test_unsat.onnx")
    with pytest.raises(SettingsMismatchError, match="files"):
        run_category(d, out=out)
    assert [r["result"] for r in run_category(d, out=out, new=True)] == ["sat"]


# ---- a BoundedModel follows changes to its model between calls (graph.py, model.py)

class _Flagged(nn.Module):
    """An MLP whose forward reads a plain flag (a skip of the middle block)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.act = nn.LeakyReLU(0.1)
        self.soft = nn.Softplus(beta=2.0)
        self.skip = False

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.a(x))
        if not self.skip:
            h = self.soft(self.b(h))
        return self.c(h)


def _mutate(net: _Flagged, how: str) -> None:
    if how == "slope":
        net.act.negative_slope = 0.5
    elif how == "beta":
        net.soft.beta = 0.5
    elif how == "module":
        net.b = nn.Linear(8, 8).to(net.a.weight.dtype)
    elif how == "activation":
        net.act = nn.Tanh()
    elif how == "flag":
        net.skip = True


@pytest.mark.parametrize("how", ["slope", "beta", "module", "activation", "flag"])
@pytest.mark.parametrize("method", ["IBP", "CROWN", "alpha-CROWN"])
def test_bounded_model_follows_attribute_and_module_changes(how: str, method: str) -> None:
    """The graph copied module attributes (LeakyReLU's slope, Softplus's β), submodules and
    the path ``forward`` took at capture: after ``net.act.negative_slope = 0.5``,
    ``net.b = nn.Linear(...)`` or a flag read in ``forward`` changed, the same BoundedModel
    kept bounding the old model (sampled outputs of the new one 0.04-2 outside). Parameter
    changes were followed already; now the rest is too (bounds equal a fresh wrapper's)."""
    torch.manual_seed(0)
    net = _Flagged().double().eval()
    bm = BoundedModel(net, (4,))
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.enable_grad():
        bm.compute_bounds(x, 0.3, method=method, alpha_iterations=3)
        _mutate(net, how)
        assert torch.equal(bm(x), net(x))  # the captured graph's forward follows too
        lb, ub = bm.compute_bounds(x, 0.3, method=method, alpha_iterations=3)
        lb2, ub2 = BoundedModel(net, (4,)).compute_bounds(x, 0.3, method=method, alpha_iterations=3)
    assert torch.equal(lb, lb2) and torch.equal(ub, ub2)
    with torch.no_grad():
        y = net(x.unsqueeze(1) + 0.3 * (2 * torch.rand(2, 500, 4, dtype=torch.float64) - 1))
    assert bool((y >= lb.unsqueeze(1) - 1e-9).all() and (y <= ub.unsqueeze(1) + 1e-9).all())


def test_bounded_model_refuses_dropout_switched_to_training() -> None:
    """A model with Dropout wrapped in eval mode and then put in train mode was bounded as if
    Dropout were the identity; it is refused as it is at construction."""
    from certkit.core.bounds.graph import UnsupportedLayerError

    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    bm = BoundedModel(net, (3,))
    x = torch.zeros(1, 3, dtype=torch.float64)
    bm.compute_bounds(x, 0.1)
    net.train()
    with pytest.raises(UnsupportedLayerError, match="Dropout"):
        bm.compute_bounds(x, 0.1)


# ---- bad output paths are refused before the run (cli.py, vnncomp.py)

@pytest.mark.shared_data
def test_bad_out_and_compare_paths_fail_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``certkit bounds vnncomp DIR --out <a folder>`` ran every instance and then exited 1
    with IsADirectoryError; ``--compare <missing file>`` ran every instance before its error;
    ``certkit bounds vnnlib --out <folder> / <missing folder>/x`` ran the verification first.
    Now each is one line, exit 2, before anything runs (no results log is written)."""
    pytest.importorskip("onnx")
    from certkit.core.cli import main

    test = _VNNCOMP / "test"
    if not test.is_dir():
        pytest.skip("../shared/data/vnncomp2021 absent")
    d = tmp_path / "cat"
    d.mkdir()
    for f in ("test_nano.onnx", "test_nano.vnnlib"):
        shutil.copy(test / f, d / f)
    (d / "cat_instances.csv").write_text("test_nano.onnx,test_nano.vnnlib,20\n")
    runs = [["bounds", "vnncomp", str(d), "--out", str(tmp_path)],
            ["bounds", "vnncomp", str(d), "--out", str(tmp_path / "r.csv"), "--compare", str(tmp_path / "none.csv")],
            ["bounds", "vnnlib", "--onnx", str(d / "test_nano.onnx"), "--vnnlib", str(d / "test_nano.vnnlib"),
             "--out", str(tmp_path)],
            ["bounds", "vnnlib", "--onnx", str(d / "test_nano.onnx"), "--vnnlib", str(d / "test_nano.vnnlib"),
             "--out", str(tmp_path / "no" / "r.txt")]]
    for argv in runs:
        capsys.readouterr()
        assert main(["-q", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(("certkit: error: out:", "certkit: error: compare:")), err
    assert not list(tmp_path.glob("*.jsonl"))


def test_result_log_on_a_folder_is_one_line(tmp_path: Path) -> None:
    """``--log <a folder>`` (``certkit bounds verify``, and every command writing a
    ResultLog) raised IsADirectoryError: exit 1 with 'rerun with --debug'. Now a ValueError
    naming the path: one line, exit 2."""
    from certkit.core.results import ResultLog

    with pytest.raises(ValueError, match="is a folder"):
        ResultLog(tmp_path, settings={"a": 1})


def test_bounds_attack_refuses_negative_n_and_steps(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``certkit bounds attack --n -5`` attacked all but the last 5 digits (a negative
    slice) and ``--steps -1`` ran, both exit 0; now one line, exit 2, before loading."""
    from certkit.core.bounds import cli as bcli
    from certkit.core.cli import main

    def no_model(*a: object) -> None:
        raise AssertionError("loaded the model before checking the arguments")

    monkeypatch.setattr(bcli, "load_bounds_model", no_model)
    for argv, opt in ((["--n", "-5"], "--n"), (["--steps", "-1"], "--steps")):
        capsys.readouterr()
        assert main(["-q", "bounds", "attack", "--eps", "0.1", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"certkit: error: {opt}:"), err


# ---- ReLU splitting on a conv net against an exact reference (relu_bab.py, patches.py)

def _conv_case(seed: int) -> tuple[nn.Module, nn.Sequential, int]:
    """A seeded conv net (Conv2d, ReLU, Flatten, Linear, ReLU, Linear) on 1×H×H in float64
    and the same function as a Linear/ReLU MLP (the conv written out as its matrix)."""
    pr = random.Random(seed)
    torch.manual_seed(seed)
    H = pr.choice([4, 5])
    conv = nn.Conv2d(1, pr.choice([2, 3]), 3, padding=pr.choice([0, 1]), stride=pr.choice([1, 2])).double()
    with torch.no_grad():
        conv.bias.mul_(pr.choice([0.3, 1.0]))
    n = H * H
    with torch.no_grad():
        zero = conv(torch.zeros(1, 1, H, H, dtype=torch.float64)).reshape(-1)
        W = (conv(torch.eye(n, dtype=torch.float64).reshape(n, 1, H, H)).reshape(n, -1) - zero).T
    dense = nn.Linear(n, W.shape[0]).double()
    with torch.no_grad():
        dense.weight.copy_(W)
        dense.bias.copy_(zero)
    fc1 = nn.Linear(W.shape[0], pr.choice([6, 8])).double()
    fc2 = nn.Linear(fc1.out_features, 3).double()
    cnet = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc1, nn.ReLU(), fc2).eval().requires_grad_(False)
    mlp = nn.Sequential(dense, nn.ReLU(), fc1, nn.ReLU(), fc2).eval().requires_grad_(False)
    return cnet, mlp, H


@pytest.mark.parametrize("seed", [5, 10, 24, 26])
def test_relu_split_on_a_conv_net_agrees_with_the_exact_reference(seed: int) -> None:
    """relu_split on a conv net (patches intermediate bounds, β on conv neurons) gives the
    verdict of the MILP on the same net written as an MLP, at a margin of 0.01; these seeds
    need 13-31 domains (the fuzz behind it: 110 nets at margins 1e-3..5e-2, no
    contradiction)."""
    from test_bounds_relu_bab import _best_slack  # isort: skip

    cnet, mlp, H = _conv_case(seed)
    x = torch.rand(3, H * H, dtype=torch.float64)
    assert torch.allclose(mlp(x), cnet(x.reshape(-1, 1, H, H)), atol=1e-12)
    rng = np.random.default_rng(seed)
    pr = random.Random(seed)
    c0 = rng.uniform(0, 1, H * H)
    r = pr.choice([0.05, 0.1, 0.2])
    C = rng.normal(size=(1, pr.choice([1, 2]), 3))
    # the exact best slack at d = 0, shifted by ±0.01 (every row's d by the same amount)
    d = np.full(C.shape[:2], -_best_slack(mlp, c0 - r, c0 + r, C, np.zeros(C.shape[:2])) + (0.01 if seed % 2 else -0.01))
    want = "sat" if seed % 2 else "unsat"
    res = relu_split(cnet, (1, H, H), torch.tensor(c0 - r), torch.tensor(c0 + r), torch.tensor(C), torch.tensor(d),
                     deadline=time.perf_counter() + 10, pgd_steps=0, attack_domains=1)
    assert res.status == want, (res, want)


@pytest.mark.parametrize("method", ["IBP", "CROWN", "CROWN-IBP", "alpha-CROWN"])
def test_overflowing_bounds_are_infinite_not_nan(method: str) -> None:
    """A float32 box so wide that the bound passes overflow (eps = 3e38) gave NaN bounds
    (0 * inf, inf - inf): no bound at all, and ``lb <= y <= ub`` false for every y. Now
    -inf / +inf, which are sound."""
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        net[2].weight[0, 0] = 0.0
    with torch.enable_grad():
        lb, ub = BoundedModel(net, (3,)).compute_bounds(torch.zeros(1, 3), 3e38, method=method)
    assert not bool(torch.isnan(lb).any() or torch.isnan(ub).any()), (lb, ub)
    assert bool((lb <= ub).all())


def test_verify_property_seed_out_of_range_names_the_argument() -> None:
    """``certkit bounds vnnlib --seed 99999999999999999999`` failed with torch's
    'Overflow when unpacking long long' (exit 2, but naming no argument)."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    prop = Property(2, 2, [Clause(-np.ones(2), np.ones(2), np.array([[1.0, -1.0]]), np.array([0.0]))])
    for bad in (2**70, -1):
        with pytest.raises(ValueError, match=r"^seed: "):
            verify_property(net, (2,), prop, timeout=5, seed=bad)
