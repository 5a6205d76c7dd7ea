"""Monte-Carlo vote counting shared by the point-cloud smoothing certificates."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch


def count_votes(model: Callable[[torch.Tensor], torch.Tensor], draw: Callable[[int, int], np.ndarray], n: int,
                batch_size: int, num_classes: int) -> npt.NDArray[np.int64]:
    """Class counts (C,) of ``model`` over ``n`` randomised inputs.

    draw(start, b) returns draws ``start .. start + b - 1`` as a (b, N, 3) array, so the
    counts do not depend on ``batch_size``. A model with more than ``num_classes`` outputs
    raises: its votes for the extra classes would otherwise be dropped from the counts.
    """
    counts = np.zeros(num_classes, np.int64)
    done = 0
    with torch.no_grad():
        while done < n:
            b = min(batch_size, n - done)
            logits = model(torch.from_numpy(draw(done, b)))
            if logits.ndim != 2 or logits.shape[1] > num_classes:
                raise ValueError(f"model: output shape {tuple(logits.shape)} does not match "
                                 f"num_classes={num_classes}")
            counts += np.bincount(logits.argmax(1).numpy(), minlength=num_classes)
            done += b
    return counts
