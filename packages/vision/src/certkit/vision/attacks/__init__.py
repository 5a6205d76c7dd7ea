"""Adversarial attacks on image classifiers: a functional API.

Every attack takes ``model`` ((B, C, H, W) → logits (B, K), any torch module or callable),
``x`` (B, C, H, W) inside ``bounds`` (default [0, 1]) and ``y`` (B,) labels, and returns
adversarial inputs of x's shape, dtype and device. Models in train mode are switched to
eval for the attack (with a :class:`TrainModeWarning`) and restored after.

- :func:`fgsm`, :func:`pgd`: FGSM / PGD, ℓ∞ and ℓ2, random start, restarts, targeted.
- :func:`apgd`, :func:`apgd_ensemble`: APGD-CE / APGD-DLR / APGD-T (Croce & Hein 2020).
- :func:`cw_l2`: Carlini-Wagner ℓ2 with a binary search on c.
- :func:`lbfgs_attack`: the box-constrained L-BFGS attack of Szegedy et al. 2013.
- :func:`quadattack`: ordered top-K targeted attack via a QP in logit/feature space.
- :func:`smoothadv_pgd`: SmoothAdv PGD on a Gaussian-smoothed soft classifier.

The ``certkit vision attack ...`` command is :mod:`~certkit.vision.attacks.cli`, the report
section :mod:`~certkit.vision.attacks.report`.
"""

from certkit.vision.attacks._common import (
    TrainModeWarning,
    distance,
    dlr_loss,
    margin_loss,
    predict,
    robust_accuracy,
)
from certkit.vision.attacks.apgd import apgd, apgd_ensemble
from certkit.vision.attacks.cw import cw_l2
from certkit.vision.attacks.lbfgs import lbfgs_attack
from certkit.vision.attacks.pgd import fgsm, pgd
from certkit.vision.attacks.quadattack import quadattack, topk_qp
from certkit.vision.attacks.smooth import smoothadv_pgd, smoothed_log_probs

__all__ = [
    "TrainModeWarning",
    "apgd",
    "apgd_ensemble",
    "cw_l2",
    "distance",
    "dlr_loss",
    "fgsm",
    "lbfgs_attack",
    "margin_loss",
    "pgd",
    "predict",
    "quadattack",
    "robust_accuracy",
    "smoothadv_pgd",
    "smoothed_log_probs",
    "topk_qp",
]
