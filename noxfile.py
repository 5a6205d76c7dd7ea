"""nox sessions for the certkit monorepo.

The sessions run inside the development venv that ``tools/setup.sh`` builds (torch pinned
to the local CPU wheel, the compiled core built once), instead of one fresh venv per
session: reinstalling torch and rebuilding the core per package would cost minutes and
gigabytes for no isolation we need. ``nox -s "tests(core)"`` etc. runs one package.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = False

PACKAGES = ["core", "vision", "pointcloud", "rl", "rank", "theory", "certkit"]
ROOT = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


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
