"""Every module of every installed certkit distribution imports with only its declared
dependencies (run in each package's isolated venv by ``nox -s "isolated(<pkg>)"``, and in the
dev venv). A module may fail to import only for a missing package that its distribution
declares as an extra (e.g. open3d for certkit-pointcloud[io]); anything else is an undeclared
import."""

from __future__ import annotations

import importlib
import pkgutil
import re
from importlib.metadata import PackageNotFoundError, distribution

import pytest

DISTS = {"core": "certkit-core", "vision": "certkit-vision", "pointcloud": "certkit-pointcloud",
         "rl": "certkit-rl", "rank": "certkit-rank", "theory": "certkit-theory", "report": "certkit"}
# import name -> distribution name, where they differ beyond case and "_" / "-"
ALIASES = {"PIL": "pillow", "sklearn": "scikit-learn", "open3d": "open3d-cpu", "yaml": "pyyaml"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras_requirements(dist: str) -> set[str]:
    out = set()
    for req in distribution(dist).requires or []:
        if "extra ==" in req:
            out.add(_norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return out


def _installed() -> list[str]:
    out = []
    for pkg, dist in DISTS.items():
        try:
            distribution(dist)
        except PackageNotFoundError:
            continue
        out.append(pkg)
    return out


@pytest.mark.parametrize("pkg", _installed())
def test_every_module_imports(pkg: str) -> None:
    root = importlib.import_module(f"certkit.{pkg}")
    optional = _extras_requirements(DISTS[pkg])
    names = [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"certkit.{pkg}.")]
    assert names or pkg == "report", f"certkit.{pkg}: no modules found"
    bad = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if _norm(ALIASES.get(missing, missing)) not in optional:
                bad.append(f"{name}: {exc}")
    assert not bad, f"{DISTS[pkg]} imports undeclared packages:\n" + "\n".join(bad)
