"""Cached reference models for the embedded digits data: a DigitsCNN trained with
Gaussian augmentation at noise level σ (Cohen et al. 2019 train the base classifier under
the smoothing noise), saved as a state_dict under the certkit cache and reloaded with
``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import torch

from certkit.core.cache import cache_dir as _cache_dir
from certkit.core.cache import load_state, save_state
from certkit.core.validation import check_int, check_sigma
from certkit.vision.data.digits import load_digits
from certkit.vision.data.models import DigitsCNN, train_classifier


def digits_cnn(sigma: float, *, epochs: int = 20, seed: int = 0,
               cache_dir: str | Path | None = None) -> DigitsCNN:
    """A DigitsCNN trained on the digits train split under N(0, σ²) noise; cached.

    Returns the model in eval mode on the CPU. (B, 1, 8, 8) in [0, 1] → (B, 10) logits.
    """
    sigma = check_sigma(sigma)
    epochs = check_int(epochs, "epochs", minimum=1)
    root = Path(cache_dir) if cache_dir is not None else _cache_dir("vision")
    path = root / f"digits_cnn_sigma{sigma:g}_e{epochs}_s{seed}.pt"
    model = DigitsCNN()
    if path.exists():
        try:
            model.load_state_dict(load_state(path))
            return model.eval()
        except (RuntimeError, EOFError, ValueError):  # a torn or stale file: retrain
            path.unlink(missing_ok=True)
    train, _ = load_digits()
    torch.manual_seed(seed)
    model = DigitsCNN()
    train_classifier(model, train.x, train.y, epochs=epochs, noise_sigma=sigma, seed=seed)
    save_state(model.state_dict(), path)
    return model.eval()
