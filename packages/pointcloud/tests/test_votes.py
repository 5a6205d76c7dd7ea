"""The shared vote counter: batch-size invariance, and a wrong-width model is an error
(the old per-module loops sliced bincount to num_classes and silently dropped votes)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from certkit.pointcloud import pointguard, rotation_smoothing, smoothing
from certkit.pointcloud._votes import count_votes


class Fixed(torch.nn.Module):
    """Always predicts class ``cls`` out of ``width`` logits."""

    def __init__(self, cls: int, width: int) -> None:
        super().__init__()
        self.cls, self.width = cls, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.width)
        out[:, self.cls] = 1.0
        return out


CLOUD = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)


def test_counts_independent_of_batch_size() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 4)

    def net(x: torch.Tensor) -> torch.Tensor:  # permutation-invariant: any number of points
        return lin(x.float().mean(1))

    assert np.array_equal(smoothing.sample_counts(net, CLOUD, 0.5, 37, 4, batch_size=5),
                          smoothing.sample_counts(net, CLOUD, 0.5, 37, 4, batch_size=37))
    assert np.array_equal(pointguard.vote_counts(net, CLOUD, 8, 37, 4, batch_size=5),
                          pointguard.vote_counts(net, CLOUD, 8, 37, 4, batch_size=37))
    c = count_votes(net, lambda s, b: np.stack([CLOUD + s + i for i in range(b)]), 37, 5, 4)
    assert c.sum() == 37


CALLS: list[Callable[[torch.nn.Module], object]] = [
    lambda m: smoothing.sample_counts(m, CLOUD, 0.1, 10, 4),
    lambda m: pointguard.vote_counts(m, CLOUD, 8, 10, 4),
    lambda m: rotation_smoothing.rotation_counts(m, CLOUD, 10, 4),
]


@pytest.mark.parametrize("call", CALLS, ids=["coordinate", "pointguard", "rotation"])
def test_wrong_output_width_is_an_error_not_a_miscount(call: Callable[[torch.nn.Module], object]) -> None:
    assert np.asarray(call(Fixed(2, 4))).tolist() == [0, 0, 10, 0]
    with pytest.raises(ValueError, match="num_classes"):
        call(Fixed(cls=5, width=6))  # votes for class 5 used to vanish
