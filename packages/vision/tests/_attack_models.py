"""The digits CNN the attack tests share (imported through conftest's sys.path)."""
from __future__ import annotations

from functools import lru_cache

import torch

from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, train_classifier


@lru_cache(maxsize=2)
def trained_digits(epochs: int = 10) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(DigitsCNN in eval mode trained for ``epochs`` with seed 0, test images, test labels)."""
    torch.manual_seed(0)
    tr, te = load_digits()
    return train_classifier(DigitsCNN(), tr.x, tr.y, epochs=epochs, seed=0).eval(), te.x, te.y
