"""Bound propagation on torch models (needs the ``torch`` extra: ``certkit-core[torch]``).

``BoundedModel(model, input_shape).compute_bounds(x, eps, norm, method, C, x_L, x_U, y=)``
returns certified lower/upper bounds on ``C @ model(x')`` over an ℓ∞/ℓ2 ball, by IBP,
CROWN, CROWN-IBP or α-CROWN (auto_LiRPA-compatible names). Inference-only CPU calls on
Linear/Conv/ReLU chains run in the compiled kernels (``certkit.core._core.bounds``).
See :mod:`certkit.core.bounds.model` for the guarantee and the intermediate-bound policy.

VNN-COMP inputs (``onnx`` extra, ``certkit-core[onnx]``): :mod:`~certkit.core.bounds.onnx_import`
(``load_onnx``), :mod:`~certkit.core.bounds.vnnlib` (``parse_vnnlib``, no dependency) and
:mod:`~certkit.core.bounds.vnnlib_verify` (``verify_property``, ``verify_onnx_vnnlib``;
``load_instance`` / ``run_instance``, VNN-COMP's untimed prepare and timed run steps:
sat / unsat / unknown / timeout, PGD first). Deadlines (``compute_bounds(deadline=)``,
``timeout=``): every long loop starts a step only when its measured cost fits in the time
left (:mod:`~certkit.core.bounds.deadline`).

The names below are imported lazily (PEP 562), so ``certkit.core.bounds.cli`` can be
imported, and the ``certkit bounds`` command skipped, where torch is absent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certkit.core.bounds.graph import UnsupportedLayerError
    from certkit.core.bounds.loss_fusion import robust_ce_upper
    from certkit.core.bounds.model import BoundedModel, margin_spec
    from certkit.core.bounds.tightness import ibp_tightness

__all__ = ["BoundedModel", "UnsupportedLayerError", "ibp_tightness", "margin_spec", "robust_ce_upper"]
_HOME = {"BoundedModel": "model", "margin_spec": "model", "UnsupportedLayerError": "graph",
         "robust_ce_upper": "loss_fusion", "ibp_tightness": "tightness"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"certkit.core.bounds.{_HOME[name]}"), name)
    raise AttributeError(f"module 'certkit.core.bounds' has no attribute {name!r}")
