"""Real-data loaders: CIFAR-10 (binary release) and ImageNet-style image folders, plus the
embedded digits default. Nothing is downloaded: point them at files you already have.

Every loader returns a :class:`certkit.vision.data.Split` with x (N, C, H, W) float32 in
[0, 1] (the certkit pixel convention: smoothing noise and ε are in these units; put any
mean/std normalisation inside the model) and y (N,) int64.

- CIFAR-10, binary version (``cifar-10-batches-bin``): each record is 1 label byte
  followed by 3,072 bytes (1,024 R, then G, then B, row-major 32×32). No pickle is read.
- Image folders (ImageNet ``val/`` laid out as ``<root>/<class>/<image>``): classes are the
  sorted sub-directory names; images are resized (shorter side) and centre-cropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from certkit.core.validation import check_int
from certkit.vision.data.digits import Split, load_digits

__all__ = ["IMAGE_EXTENSIONS", "load_cifar10", "load_dataset", "load_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG")
_CIFAR_RECORD = 1 + 3 * 32 * 32


def load_cifar10(root: str | os.PathLike[str], split: str = "test", limit: int | None = None) -> Split:
    """CIFAR-10 from the binary release: ``root`` holds ``data_batch_{1..5}.bin`` and
    ``test_batch.bin`` (or is the ``cifar-10-batches-bin`` folder's parent).
    split: "train" or "test"; limit: keep the first ``limit`` images."""
    base = Path(root)
    if (base / "cifar-10-batches-bin").is_dir():
        base = base / "cifar-10-batches-bin"
    if split == "test":
        files = [base / "test_batch.bin"]
    elif split == "train":
        files = [base / f"data_batch_{i}.bin" for i in range(1, 6)]
    else:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    xs, ys = [], []
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"root: {f} not found (expected the CIFAR-10 binary release)")
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % _CIFAR_RECORD:
            raise ValueError(f"root: {f} is truncated or not a CIFAR-10 binary batch "
                             f"({raw.size} bytes is not a multiple of {_CIFAR_RECORD})")
        rec = raw.reshape(-1, _CIFAR_RECORD)
        if rec[:, 0].max() > 9:
            raise ValueError(f"root: {f} has labels outside 0..9; not a CIFAR-10 batch")
        ys.append(rec[:, 0].astype(np.int64))
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
        x, y = x[:limit], y[:limit]
    return Split(torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y))


def load_image_folder(root: str | os.PathLike[str], size: int = 224, resize: int | None = None,
                      limit: int | None = None) -> tuple[Split, list[str]]:
    """Images under ``root/<class>/*`` → (Split, class names). Shorter side resized to
    ``resize`` (default size·8/7, i.e. 256 for 224), then a ``size``×``size`` centre crop,
    RGB. ``limit`` keeps the first images in sorted order."""
    from PIL import Image, UnidentifiedImageError

    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"root: {base} is not a directory")
    size = check_int(size, "size", minimum=1)
    resize = round(size * 8 / 7) if resize is None else check_int(resize, "resize", minimum=size)
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"root: {base} has no class sub-directories")
    items = [(p, c) for c, name in enumerate(classes) for p in sorted((base / name).iterdir())
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if limit is not None:
        items = items[: check_int(limit, "limit", minimum=1)]
    if not items:
        raise ValueError(f"root: no images with extensions {IMAGE_EXTENSIONS} under {base}")
    x = np.empty((len(items), 3, size, size), dtype=np.float32)
    for i, (p, _) in enumerate(items):
        try:
            with Image.open(p) as src:
                im = src.convert("RGB")
                w, h = im.size
                scale = resize / min(w, h)
                im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                               Image.Resampling.BILINEAR)
                w, h = im.size
                left, top = (w - size) // 2, (h - size) // 2
                im = im.crop((left, top, left + size, top + size))
                x[i] = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"root: cannot read image {p}: {exc}") from exc
    y = np.array([c for _, c in items], dtype=np.int64)
    return Split(torch.from_numpy(x), torch.from_numpy(y)), classes


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, split: str = "test",
                 limit: int | None = None) -> Split:
    """By name: ``digits`` (embedded), ``cifar10`` (binary release under ``root``) or
    ``folder``/``imagenet`` (an image folder at ``root``)."""
    if name == "digits":
        train, test = load_digits()
        out = test if split == "test" else train
        if limit is not None:
            limit = check_int(limit, "limit", minimum=1)
            out = Split(out.x[:limit], out.y[:limit])
        return out
    if root is None:
        raise ValueError(f"root: data set {name!r} needs a directory (--data-dir)")
    if name == "cifar10":
        return load_cifar10(root, split, limit)
    if name in ("folder", "imagenet"):
        return load_image_folder(root, limit=limit)[0]
    raise ValueError(f"data: expected 'digits', 'cifar10', 'imagenet' or 'folder', got {name!r}")
