from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from certkit.core.modelio import ModelLoadError, check_num_classes, load_model


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def test_torchscript_and_factory_with_weights(tmp_path: Path) -> None:
    m = tiny()
    ts = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in 2.13
        torch.jit.save(torch.jit.script(m), str(ts))
    x = torch.randn(2, 1, 2, 2)
    assert torch.equal(load_model(str(ts))(x), m(x))
    w = tmp_path / "w.pth"
    torch.save(m.state_dict(), w)
    got = load_model(f"{__name__}:tiny", w)
    assert torch.equal(got(x), m(x))
    check_num_classes(got, x, 3)
    with pytest.raises(ModelLoadError, match="num_classes=5"):
        check_num_classes(got, x, 5)


def test_errors_name_the_argument(tmp_path: Path) -> None:
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelLoadError, match="model"):
        load_model(str(bad))
    with pytest.raises(ModelLoadError, match="model: no such file"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelLoadError, match="cannot import"):
        load_model("no_such_module_xyz:f")
    with pytest.raises(ModelLoadError, match="weights: no such file"):
        load_model(f"{__name__}:tiny", tmp_path / "nope.pth")
    pickled = tmp_path / "pickled.pth"
    torch.save({"obj": Path("not-a-tensor")}, pickled)
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_model(f"{__name__}:tiny", pickled)
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(5, 5).state_dict(), wrong)
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model(f"{__name__}:tiny", wrong)


def test_torch_export_program(tmp_path: Path) -> None:
    m = tiny()
    batch = torch.export.Dim("batch")
    ep = torch.export.export(m, (torch.randn(2, 1, 2, 2),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    x = torch.randn(5, 1, 2, 2)
    assert torch.allclose(load_model(str(tmp_path / "m.pt2"))(x), m(x))


def test_factory_module_in_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model mymod:factory`` finds ./mymod.py without PYTHONPATH (and leaves sys.path as it was)."""
    import sys

    (tmp_path / "certkit_user_cwd_model.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "certkit_user_cwd_model", raising=False)
    before = list(sys.path)
    try:
        model = load_model("certkit_user_cwd_model:make")
    finally:
        sys.modules.pop("certkit_user_cwd_model", None)
    assert model(torch.zeros(2, 1, 2, 2)).shape == (2, 3)
    assert sys.path == before
