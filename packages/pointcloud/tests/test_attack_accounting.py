"""Attack figures count the right cases and distances have no float32 floor (issue #23).

`certkit pointcloud attack` used to attack every cloud and count the ones the model already
misclassifies as successes with distance 0 and one query (CD, HD and queries read ~5% low);
GSDA and PGD reported float32 distances with a cancellation floor (HD ~1e-3 for identical
clouds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from certkit.core.cache import save_state
from certkit.core.cli import main
from certkit.pointcloud import io
from certkit.pointcloud.cli import attack_summary
from certkit.pointcloud.distances import chamfer, hausdorff
from certkit.pointcloud.gsda import gsda_attack
from certkit.pointcloud.models import predict
from certkit.pointcloud.pgd import pgd_attack


def _naive(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float((d.min(1) ** 2).mean() + (d.min(0) ** 2).mean()), float(max(d.min(1).max(), d.min(0).max()))


def test_distances_exact_in_float64() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 3)).astype(np.float32)
    assert chamfer(a, a) == 0.0 and hausdorff(a, a) == 0.0
    for sigma in (1e-4, 1e-2):
        b = (a + sigma * rng.standard_normal(a.shape)).astype(np.float32)
        cd, hd = _naive(a, b)
        assert chamfer(a, b) == pytest.approx(cd, rel=1e-9)
        assert hausdorff(a, b) == pytest.approx(hd, rel=1e-9)
    batch = np.stack([a, a + 1e-3])
    assert np.allclose(chamfer(batch, np.stack([a, a])), [0.0, 2 * 3e-6], rtol=1e-6)


def test_gsda_and_pgd_report_float64_distances(tiny: tuple) -> None:
    model, X, y = tiny
    X, y = X[:4], y[:4]
    for r in (gsda_attack(model, X, y, steps=3), pgd_attack(model, X, y, eps=0.02, steps=2)):
        for i in range(len(X)):
            cd, hd = _naive(r.adv[i], X[i])
            if r.success[i]:
                assert r.chamfer[i] == pytest.approx(cd, rel=1e-9, abs=1e-15)
            assert r.hausdorff[i] == pytest.approx(hd, rel=1e-9, abs=1e-15)


def test_attack_summary_counts() -> None:
    s = np.array([True, False, True])
    out = attack_summary("pgd", 5, s, np.array([1.0, 9.0, 3.0]), np.array([2.0, 9.0, 4.0]), np.array([10.0, 20.0, 30.0]))
    assert out == {"method": "pgd", "n": 5, "n_attacked": 3, "n_success": 2, "success": 2 / 3, "chamfer": 2.0,
                   "hausdorff": 3.0, "queries": 20.0}
    none = attack_summary("pgd", 2, np.zeros(0, bool), np.zeros(0), np.zeros(0), np.zeros(0))
    assert none["n_attacked"] == 0 and none["success"] is None and none["chamfer"] is None


@pytest.mark.parametrize("method", ["hacker3d", "pgd"])
def test_cli_attacks_only_correctly_classified_clouds(tmp_path: Path, tiny: tuple, method: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    model, X, _ = tiny
    pred = predict(model, X[:3])
    spec = tmp_path / "pn.pt"
    save_state(model.state_dict(), spec)
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"c{i}.ply"))
        io.write_ply(files[-1], X[i].astype(np.float64))
    labels = [int(pred[0]), (int(pred[1]) + 1) % 4, int(pred[2])]     # cloud 1: the model is wrong
    torch.manual_seed(0)
    rc = main(["--json", "--quiet", "pointcloud", "attack", *files, "--labels", ",".join(map(str, labels)),
               "--method", method, "--model", f"pointnet:{spec}", "--points", "64", "--max-queries", "40",
               "--steps", "3"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 3 and out["n_attacked"] == 2
    assert out["success"] == out["n_success"] / 2
    if out["n_success"]:
        assert out["chamfer"] > 0 and out["hausdorff"] > 0
