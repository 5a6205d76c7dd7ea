import importlib

import certkit.rank


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert certkit.rank.__version__ == version("certkit-rank")


def test_namespace_is_pep420() -> None:
    ns = importlib.import_module("certkit")
    assert getattr(ns, "__file__", None) is None, "certkit must be a PEP 420 namespace"


def _rank_imports(module: str) -> set[str]:
    """certkit.rank modules imported anywhere in ``module``'s source (top level or local)."""
    import ast
    from pathlib import Path

    src = Path(importlib.import_module(f"certkit.rank.{module}").__file__).read_text(encoding="utf-8")
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("certkit.rank."):
            out.add(node.module.rsplit(".", 1)[1])
    return out


def test_certificates_share_candidates_and_do_not_import_each_other() -> None:
    assert "masking" not in _rank_imports("certdr")
    assert "certdr" not in _rank_imports("masking")
    assert "candidates" in _rank_imports("certdr") & _rank_imports("masking")
    assert not {"certdr", "masking", "certify"} & _rank_imports("candidates")
