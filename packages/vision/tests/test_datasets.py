"""CIFAR-10 (binary) and image-folder loaders on tiny files we make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from certkit.vision.data.datasets import load_cifar10, load_dataset, load_image_folder


def _cifar(tmp: Path, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    pix = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    (tmp / "cifar-10-batches-bin").mkdir()
    np.concatenate([labels[:, None], pix], 1).tofile(tmp / "cifar-10-batches-bin" / "test_batch.bin")
    return labels, pix


def test_cifar10_binary(tmp_path: Path) -> None:
    labels, pix = _cifar(tmp_path)
    split = load_cifar10(tmp_path, "test")
    assert split.x.shape == (5, 3, 32, 32) and split.y.tolist() == labels.tolist()
    # naive reference: record i, channel c, row r, col k = byte 1 + c*1024 + r*32 + k
    assert split.x[2, 1, 3, 4].item() == pytest.approx(pix[2, 1024 + 3 * 32 + 4] / 255.0)
    assert float(split.x.min()) >= 0 and float(split.x.max()) <= 1
    assert len(load_dataset("cifar10", tmp_path, limit=2)) == 2


def test_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_cifar10(tmp_path)
    _cifar(tmp_path)
    f = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "val")


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.new("RGB", (40 + 10 * i, 30), colour).save(tmp_path / c / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    split, classes = load_image_folder(tmp_path, size=16)
    assert classes == ["cat", "dog"]
    assert split.x.shape == (4, 3, 16, 16) and split.y.tolist() == [0, 0, 1, 1]
    assert split.x[0, 0].mean().item() == pytest.approx(1.0) and split.x[3, 2].mean().item() == pytest.approx(1.0)
    (tmp_path / "cat" / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_image_folder(tmp_path, size=16)


def test_imagenet_layout_via_load_dataset(tmp_path: Path) -> None:
    """ImageNet's val layout (synset folders, upper-case .JPEG) through load_dataset."""
    from PIL import Image

    for c, shade in (("n01440764", 40), ("n01443537", 200)):
        (tmp_path / c).mkdir()
        Image.new("RGB", (300, 260), (shade, shade, shade)).save(tmp_path / c / f"ILSVRC2012_val_{c}.JPEG",
                                                                 format="JPEG")
        Image.new("RGB", (256, 256), (shade, shade, shade)).save(tmp_path / c / "extra.PNG")
    split = load_dataset("imagenet", tmp_path)
    assert split.x.shape == (4, 3, 224, 224) and split.y.tolist() == [0, 0, 1, 1]
    assert split.x[0].mean().item() == pytest.approx(40 / 255, abs=0.02)
    assert split.x[3].mean().item() == pytest.approx(200 / 255, abs=0.02)


def test_digits_and_unknown() -> None:
    assert load_dataset("digits", limit=3).x.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="data"):
        load_dataset("mnist", "/nonexistent")
    with pytest.raises(ValueError, match="root"):
        load_dataset("cifar10")


def test_cifar100_binary_fine_and_coarse(tmp_path: Path) -> None:
    from certkit.vision.data.datasets import load_cifar100, load_data

    rng = np.random.default_rng(1)
    coarse, fine = rng.integers(0, 20, 4).astype(np.uint8), rng.integers(0, 100, 4).astype(np.uint8)
    pix = rng.integers(0, 256, (4, 3072)).astype(np.uint8)
    (tmp_path / "cifar-100-binary").mkdir()
    np.concatenate([coarse[:, None], fine[:, None], pix], 1).tofile(tmp_path / "cifar-100-binary" / "test.bin")
    split = load_cifar100(tmp_path)
    assert split.y.tolist() == fine.tolist() and split.x.shape == (4, 3, 32, 32)
    assert split.x[1, 2, 5, 6].item() == pytest.approx(pix[1, 2048 + 5 * 32 + 6] / 255.0)
    assert load_cifar100(tmp_path, labels="coarse").y.tolist() == coarse.tolist()
    assert load_data(tmp_path).y.tolist() == fine.tolist()  # a folder holding the release is recognised
    assert load_data("cifar100", root=tmp_path, limit=2).x.shape[0] == 2


def test_arrays_npz_pt_and_layouts(tmp_path: Path) -> None:
    import torch

    from certkit.vision.data.datasets import load_arrays, load_data

    x = np.random.default_rng(2).random((5, 3, 6, 4)).astype(np.float32)
    y = np.arange(5)
    np.savez(tmp_path / "d.npz", images=x.transpose(0, 2, 3, 1), labels=y)  # (N, H, W, C)
    got = load_data(tmp_path / "d.npz")
    assert torch.equal(got.x, torch.from_numpy(x)) and got.y.tolist() == y.tolist()
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    assert torch.equal(load_arrays(tmp_path / "d.pt").x, torch.from_numpy(x))
    torch.save((torch.from_numpy(x[:, :1, :, :3]), torch.from_numpy(y)), tmp_path / "pair.pt")
    assert load_arrays(tmp_path / "pair.pt").x.shape == (5, 1, 6, 3)
    np.savetxt(tmp_path / "y.txt", y, fmt="%d")
    np.save(tmp_path / "grey.npy", (x[:, 0] * 255).astype(np.uint8))  # (N, H, W) uint8: one channel, / 255
    grey = load_arrays(tmp_path / "grey.npy", tmp_path / "y.txt")
    assert grey.x.shape == (5, 1, 6, 4) and float(grey.x.max()) <= 1.0
    with pytest.raises(ValueError, match="channel axis"):
        load_data(_save(tmp_path / "odd.npy", np.zeros((2, 5, 6, 7))), labels=[0, 1])
    with pytest.raises(ValueError, match="NaN"):
        load_data(_save(tmp_path / "nan.npy", np.full((2, 1, 2, 2), np.nan)), labels=[0, 1])
    (tmp_path / "weird.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="data: cannot read"):
        load_data(tmp_path / "weird.pt")


def _save(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


def test_image_folder_keeps_size_or_resizes(tmp_path: Path) -> None:
    from PIL import Image

    from certkit.vision.data.datasets import load_data, parse_image_size

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.new("RGB", (32, 32), (10, 20, 30)).save(tmp_path / c / "0.png")
    assert load_data(tmp_path).x.shape == (2, 3, 32, 32)  # no forced 224
    assert load_data(tmp_path, image_size="16x24").x.shape == (2, 3, 16, 24)
    Image.new("RGB", (40, 30), (0, 0, 0)).save(tmp_path / "b" / "1.png")
    with pytest.raises(ValueError, match="different sizes"):
        load_data(tmp_path)
    assert load_data(tmp_path, image_size=8).x.shape == (3, 3, 8, 8)
    assert parse_image_size("32") == (32, 32) and parse_image_size("24x16") == (24, 16)
    with pytest.raises(ValueError, match="image_size"):
        parse_image_size("big")
