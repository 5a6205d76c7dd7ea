"""certkit-rl policy checkpoints: the trained actor's weights and metadata, written with
:func:`certkit.core.cache.save_state` and read back with ``torch.load(weights_only=True)``.

A checkpoint holds ``{"state_dict": ..., "meta": {"obs_dim", "n_actions", "hidden", ...}}``;
the actor is the tanh MLP of :func:`certkit.rl.policies.mlp`, (N, obs_dim) → (N, n_actions)
logits. The built-in trainer (:mod:`certkit.rl.train`) writes them; loading needs nothing
from training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from certkit.core.cache import load_state, save_state
from certkit.rl.policies import TorchPolicy, mlp


@dataclass
class TrainedPolicy:
    """A trained actor. module: (N, obs_dim) → (N, n_actions) logits."""

    module: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> TorchPolicy:
        return TorchPolicy(self.module, discrete=True)


def save_trained(tp: TrainedPolicy, path: str | Path) -> None:
    """Save actor weights and metadata (loadable with weights_only=True)."""
    meta = {k: v for k, v in tp.meta.items() if k != "history"}
    meta["history"] = [[int(s), float(r)] for s, r in tp.meta.get("history", [])]
    save_state({"state_dict": tp.module.state_dict(), "meta": meta}, path)


def load_trained(path: str | Path) -> TrainedPolicy:
    """Load a policy written by :func:`save_trained`."""
    try:
        blob = load_state(path)
        meta = dict(blob["meta"])
        module = mlp(int(meta["obs_dim"]), int(meta["n_actions"]), tuple(meta["hidden"]))
        module.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise ValueError(f"path: {path} is not a certkit-rl policy checkpoint ({exc})") from exc
    return TrainedPolicy(module.eval(), meta)
