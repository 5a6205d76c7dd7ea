from __future__ import annotations

from pathlib import Path

import pytest

import certkit.core as ck
from certkit.core import cuda
from certkit.core.cli import main


def test_build_info_fields() -> None:
    info = ck.build_info()
    for key in ("version", "compiler", "flags", "openmp", "openmp_threads", "simd", "cuda", "cuda_arch"):
        assert key in info
    assert info["version"] == ck.__version__
    assert "-O3" in info["flags"]
    assert {"rng", "votes"} <= set(info["ops"])
    assert isinstance(info["cuda"], bool)


@pytest.mark.skipif(cuda.is_built(), reason="this build has CUDA")
def test_clear_error_without_cuda() -> None:
    assert not cuda.is_available()
    with pytest.raises(ck.CudaUnavailableError, match="built without CUDA"):
        cuda.require()


def test_no_namespace_init_anywhere_in_repo() -> None:
    root = Path(__file__).resolve().parents[3]
    bad = [p for p in root.rglob("certkit/__init__.py") if ".venv" not in p.parts and "build" not in p.parts]
    assert not bad, f"PEP 420: remove {bad}"


def test_stub_file_ships_with_the_extension() -> None:
    pkg = Path(ck.__file__).parent
    assert (pkg / "_core.pyi").exists()
    assert (pkg / "py.typed").exists()


def test_cli_info_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "info"]) == 0
    out = capsys.readouterr().out
    assert '"simd"' in out
    assert main(["no-such-command"]) == 2
