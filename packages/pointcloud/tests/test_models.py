"""Tiny model smoke tests: shapes, permutation invariance, training step, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from certkit.core.cache import save_state
from certkit.pointcloud.data import make_shapes
from certkit.pointcloud.models import accuracy, build_model, load_model, predict, train


@pytest.mark.parametrize("arch", ["pointnet", "dgcnn"])
def test_model_shapes_and_permutation_invariance(arch: str) -> None:
    torch.manual_seed(0)
    m = build_model(arch, 4).eval()
    x = torch.randn(3, 64, 3)
    out = m(x)
    assert out.shape == (3, 4)
    perm = torch.randperm(64)
    torch.testing.assert_close(m(x[:, perm]), out, atol=1e-5, rtol=1e-5)


def test_training_learns_and_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    X, y = make_shapes(96, 64, num_classes=3, seed=1)
    m = train(build_model("pointnet", 3), X, y, epochs=6, batch_size=16, lr=3e-3)
    assert accuracy(m, X, y) > 0.6  # chance is 1/3
    save_state(m.state_dict(), tmp_path / "pn.pt")
    m2 = load_model(f"pointnet:{tmp_path / 'pn.pt'}")
    np.testing.assert_array_equal(predict(m2, X), predict(m, X))
    with pytest.raises(ValueError):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError):
        build_model("resnet", 3)
