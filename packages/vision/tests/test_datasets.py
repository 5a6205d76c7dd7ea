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
