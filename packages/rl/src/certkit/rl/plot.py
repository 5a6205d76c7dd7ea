"""Paper-style plot (Kumar et al. 2022, Fig. 2 style): certified expected reward vs the
total ℓ2 budget B, with the empirical attacked reward on the same axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certkit.rl.policy_smoothing import RewardCertificate


def plot_certificate(certs: Sequence[RewardCertificate],
                     attacked: Mapping[float, tuple[float, float]] | None = None,
                     title: str = "", ax: Any = None) -> Any:
    """certs: one curve each (labelled by bound); attacked: {B: (mean, margin)} markers.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
    else:
        fig = ax.figure
    for c in certs:
        ax.plot(c.budgets, c.expected, marker="o", ms=3, label=f"certified ({c.bound}, m={c.episodes})")
    if certs:
        ax.axhline(certs[0].clean_mean, color="gray", ls="--", lw=1, label="clean smoothed mean")
    if attacked:
        bs = sorted(attacked)
        ax.errorbar(bs, [attacked[b][0] for b in bs], yerr=[attacked[b][1] for b in bs], fmt="s",
                    color="crimson", capsize=3, label="adaptive attack (empirical)")
    ax.set_xlabel("total ℓ2 budget B")
    ax.set_ylabel("episode reward")
    if certs:
        c = certs[0]
        ax.set_title(title or f"{c.env}, σ = {c.sigma:g}, α = {c.alpha:g}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
