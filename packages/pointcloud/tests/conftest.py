"""Shared fixtures: one tiny PointNet trained once per session on the embedded dataset."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from certkit.pointcloud.data import make_shapes
from certkit.pointcloud.models import build_model, train


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Our tests use one torch thread (restored after): tiny models gain nothing from more,
    and oversubscribed CI cores make multi-threaded small ops far slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _cli_state() -> Iterator[None]:
    """The command's global options (--json, --quiet) are module state: a test that runs
    ``main(["--json", ...])`` must not change how later tests' commands print."""
    from certkit.core.cli import STATE

    old = dict(STATE)
    yield
    STATE.clear()
    STATE.update(old)


@pytest.fixture(scope="session")
def tiny() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """(model, test clouds (24, 64, 3), labels) for a 4-class PointNet on 64-point clouds."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, y = make_shapes(160, 64, num_classes=4, seed=5)
    m = train(build_model("pointnet", 4), X, y, epochs=6, batch_size=16, lr=3e-3)
    torch.set_num_threads(old)
    Xt, yt = make_shapes(24, 64, num_classes=4, seed=5, split="test")
    return m, Xt, yt
