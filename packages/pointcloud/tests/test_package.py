import importlib

import certkit.pointcloud


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert certkit.pointcloud.__version__ == version("certkit-pointcloud")


def test_namespace_is_pep420() -> None:
    ns = importlib.import_module("certkit")
    assert getattr(ns, "__file__", None) is None, "certkit must be a PEP 420 namespace"
