import importlib
from pathlib import Path


def test_namespace_is_pep420() -> None:
    ns = importlib.import_module("certkit")
    assert getattr(ns, "__file__", None) is None


def test_no_namespace_init_anywhere() -> None:
    root = Path(__file__).resolve().parents[3]
    offenders = [p for p in root.glob("packages/*/src/certkit/__init__.py")]
    assert not offenders, f"certkit/__init__.py breaks the PEP 420 namespace: {offenders}"
