"""Stable-baselines3 zip files, read without running their pickled code.

An SB3 zip (``model.save``) holds ``data`` (JSON; some entries cloudpickled: the policy
class, the spaces, schedules) and ``policy.pth`` (a state dict). SB3's own ``load``
unpickles every entry, which runs whatever code the file names. Here each pickled entry
goes through :class:`_SafeUnpickler`: it may name only classes of stable-baselines3,
gymnasium.spaces, torch.nn activations and torch.optim, numpy's array/dtype/generator
reconstructors and a few builtins, and may call only those reconstructors. Entries that
need anything else are replaced (schedules: a constant, unused by inference); the policy
class, the spaces and the policy kwargs must pass, or the file is refused. The tensors go
through SB3's ``torch.load(weights_only=True)``.

The algorithm is read from the zip (the policy class's package: DQN, SAC, TD3; an
actor-critic policy with a ``clip_range`` is PPO, without one A2C) or given as ``algo``.
"""

from __future__ import annotations

import base64
import copyreg
import enum
import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar

SB3_ALGOS = ("PPO", "A2C", "DQN", "SAC", "TD3")
_BY_PACKAGE = {"stable_baselines3.dqn": "DQN", "stable_baselines3.sac": "SAC",
               "stable_baselines3.td3": "TD3"}
# entries a policy cannot be rebuilt without
_ESSENTIAL = ("policy_class", "observation_space", "action_space", "policy_kwargs")
# what replaces an entry that does not unpickle safely (schedules, training settings)
_PLACEHOLDERS: dict[str, Any] = {"clip_range": 0.2, "clip_range_vf": None, "train_freq": 1,
                                 "learning_rate": 0.0}
_CLASS_MODULES = ("stable_baselines3.", "gymnasium.spaces.", "torch.nn.modules.activation", "numpy.random.",
                  "torch.optim.", "numpy.dtypes")
# numpy's reconstructors (files pickled by numpy 1 name ``numpy.core``, numpy 2's is ``_core``)
_NUMPY_CALLS = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                ("numpy._core.numeric", "_frombuffer"), ("numpy", "dtype"), ("numpy", "ndarray"),
                ("numpy.random._pickle", "__generator_ctor"),
                ("numpy.random._pickle", "__bit_generator_ctor"),
                ("numpy.random._pickle", "__randomstate_ctor"),
                ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence")}
_BUILTINS = {"set", "frozenset", "tuple", "list", "dict", "slice", "complex", "bytearray",
             "int", "float", "bool", "str", "bytes", "range", "object"}


def is_sb3_zip(path: str | Path) -> bool:
    """True for a zip holding SB3's ``data`` and ``policy.pth`` entries."""
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    with zipfile.ZipFile(p) as z:
        names = set(z.namelist())
    return "data" in names and "policy.pth" in names


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be vetted
    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        if "." in name:
            raise pickle.UnpicklingError(f"{module}.{name}: dotted names are refused")
        if module == "builtins" and name in _BUILTINS:
            return getattr(__import__("builtins"), name)
        if (module, name) in (("copyreg", "_reconstructor"), ("collections", "OrderedDict")):
            return copyreg._reconstructor if module == "copyreg" else __import__("collections").OrderedDict
        if module.startswith("numpy.core.") and hasattr(importlib.import_module("numpy"), "_core"):
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) in _NUMPY_CALLS:
            return getattr(importlib.import_module(module), name)
        if module.startswith(_CLASS_MODULES):
            obj = getattr(importlib.import_module(module), name, None)
            if isinstance(obj, type) and str(getattr(obj, "__module__", "")).startswith(_CLASS_MODULES):
                return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

    def _load_reduce(self) -> None:
        func, args = self.stack[-2], self.stack[-1]
        if func is copyreg._reconstructor:
            # _reconstructor(cls, base, state) calls base.__init__(obj, state): only for
            # builtin bases, never an allowed class's constructor (which may open files)
            base = args[1] if isinstance(args, tuple) and len(args) == 3 else None
            if not (isinstance(base, type) and base.__module__ == "builtins"):
                raise pickle.UnpicklingError(f"copyreg._reconstructor with base {base!r} "
                                             f"is not allowed")
        ok = (func is copyreg._reconstructor
              or any(func is getattr(importlib.import_module(m), n, None) for m, n in _NUMPY_CALLS)
              or (isinstance(func, type) and (func.__module__ in ("builtins", "collections", "numpy")
                                              or issubclass(func, enum.Enum))))
        if not ok:
            raise pickle.UnpicklingError(f"calling {func!r} is not allowed")
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]

    def _load_build(self) -> None:
        if isinstance(self.stack[-2], type):  # BUILD on a class would set class attributes
            raise pickle.UnpicklingError(f"setting attributes of {self.stack[-2]!r} is not allowed")
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    def _refuse(self) -> None:
        raise pickle.UnpicklingError("INST/OBJ opcodes are not allowed")

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.INST[0]] = _refuse
    dispatch[pickle.OBJ[0]] = _refuse


def safe_unpickle(blob: bytes) -> Any:
    """Unpickle ``blob`` with :class:`_SafeUnpickler` (UnpicklingError when it names or
    calls anything outside the allow-list)."""
    return _SafeUnpickler(io.BytesIO(blob)).load()


def read_data(path: str | Path) -> dict[str, Any]:
    """The zip's ``data`` JSON (pickled entries left as stored)."""
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("data"))  # type: ignore[no-any-return]


def _unpickled(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            continue
        try:
            out[key] = safe_unpickle(base64.b64decode(item[":serialized:"]))
        except Exception as exc:
            if key in _ESSENTIAL:
                raise ValueError(f"model: {path}: the SB3 entry {key!r} needs code outside "
                                 f"stable-baselines3/gymnasium/numpy/torch to load ({exc}); "
                                 f"refusing to unpickle it") from exc
            out[key] = _PLACEHOLDERS.get(key)  # unused by inference
    return out


def detect_algo(data: dict[str, Any], path: str | Path = "") -> str:
    """The algorithm of an SB3 zip's ``data``: PPO, A2C, DQN, SAC or TD3."""
    pc = data.get("policy_class")
    module = str(pc.get("__module__", "")) if isinstance(pc, dict) else ""
    for pkg, algo in _BY_PACKAGE.items():
        if module.startswith(pkg):
            return algo
    if module.startswith("stable_baselines3.common.policies"):
        return "PPO" if "clip_range" in data else "A2C"
    raise ValueError(f"model: {path} is an SB3 zip of an unknown algorithm (policy class from "
                     f"{module or 'nowhere'!r}); supported: {', '.join(SB3_ALGOS)}; pass "
                     f"--algo if it is one of them")


def load_sb3(path: str | Path, algo: str | None = None) -> Any:
    """Load an SB3 zip on the CPU without unpickling untrusted code (see the module doc).

    algo: one of :data:`SB3_ALGOS` (case-insensitive), or None to read it from the zip."""
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:  # pragma: no cover - the sb3 extra is in the test extra
        raise ValueError("model: loading an SB3 zip needs stable-baselines3 "
                         "(pip install certkit-rl[sb3])") from exc
    data = read_data(path)
    name = detect_algo(data, path) if algo is None else str(algo).upper()
    if name not in SB3_ALGOS:
        raise ValueError(f"algo: expected one of {', '.join(SB3_ALGOS)}, got {algo!r}")
    custom = _unpickled(data, path)
    cls = getattr(sb3, name)
    try:
        return cls.load(path, device="cpu", custom_objects=custom)
    except (AssertionError, KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"model: {path} does not load as an SB3 {name} model: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
