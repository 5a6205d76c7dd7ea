"""Readers for the user's data: arrays (``.npy`` / ``.npz`` / ``.pt``), image folders,
CIFAR-10 / CIFAR-100 (binary releases) and ImageNet-style ``val/`` folders, plus the
embedded digits default. Nothing is downloaded: point them at files you already have.
:func:`load_data` picks the reader from a name or a path; the ``certkit vision`` commands
call it with ``--data``, ``--labels``, ``--data-dir`` and ``--image-size``.

Every reader returns a :class:`certkit.vision.data.digits.Split` with x (N, C, H, W)
float32 in [0, 1] (the certkit pixel convention: smoothing noise and ε are in these units;
put any mean/std normalisation inside the model) and y (N,) int64.

- Arrays: x as (N, C, H, W) or (N, H, W, C) (C in 1, 3, 4; (N, H, W) is one channel);
  uint8 pixels are divided by 255, float pixels are kept as they are (a warning names
  their range when it is not [0, 1]). Labels come from the same file (``.npz`` keys
  ``y`` / ``labels`` / ``targets``; a ``.pt`` dict or (x, y) tuple) or from ``labels``.
  ``.pt`` files are read with ``torch.load(..., weights_only=True)``; ``.npy`` / ``.npz``
  with ``allow_pickle=False``.
- CIFAR-10, binary version (``cifar-10-batches-bin``): each record is 1 label byte
  followed by 3,072 bytes (1,024 R, then G, then B, row-major 32×32). CIFAR-100
  (``cifar-100-binary``): 1 coarse and 1 fine label byte, then the same 3,072 bytes. No
  pickle is read.
- Image folders (``<root>/<class>/<image>``): classes are the sorted sub-directory names.
  Without ``size`` the images keep their size (they must all have the same one); with
  ``size`` (H×W) each image is scaled to cover H×W and centre-cropped. ImageNet
  (``imagenet``) uses the standard shorter side 256, centre crop 224.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from certkit.core.validation import check_int
from certkit.vision.data.digits import Split, load_digits

__all__ = ["DATA_SETS", "IMAGE_EXTENSIONS", "load_arrays", "load_cifar10", "load_cifar100", "load_data",
           "load_dataset", "load_image_folder", "parse_image_size"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG")
ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
DATA_SETS = ("digits", "cifar10", "cifar100", "imagenet", "folder")
_CIFAR_RECORD = 1 + 3 * 32 * 32
_X_KEYS = ("x", "images", "data", "inputs", "X")
_Y_KEYS = ("y", "labels", "targets", "label", "Y")


def _read_cifar_bin(files: list[Path], label_bytes: int, label_at: int, classes: int,
                    limit: int | None) -> Split:
    record = label_bytes + 3 * 32 * 32
    xs, ys = [], []
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"root: {f} not found (expected the CIFAR-{classes} binary release)")
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(f"root: {f} is truncated or not a CIFAR-{classes} binary batch "
                             f"({raw.size} bytes is not a multiple of {record})")
        rec = raw.reshape(-1, record)
        if rec[:, label_at].max() >= classes:
            raise ValueError(f"root: {f} has labels outside 0..{classes - 1}; not a CIFAR-{classes} batch")
        ys.append(rec[:, label_at].astype(np.int64))
        xs.append(rec[:, label_bytes:].reshape(-1, 3, 32, 32))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
        x, y = x[:limit], y[:limit]
    return Split(torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y))


def load_cifar10(root: str | os.PathLike[str], split: str = "test", limit: int | None = None) -> Split:
    """CIFAR-10 from the binary release: ``root`` holds ``data_batch_{1..5}.bin`` and
    ``test_batch.bin`` (or is the ``cifar-10-batches-bin`` folder's parent).
    split: "train" or "test"; limit: keep the first ``limit`` images. x (N, 3, 32, 32)."""
    base = Path(root)
    if (base / "cifar-10-batches-bin").is_dir():
        base = base / "cifar-10-batches-bin"
    if split == "test":
        files = [base / "test_batch.bin"]
    elif split == "train":
        files = [base / f"data_batch_{i}.bin" for i in range(1, 6)]
    else:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return _read_cifar_bin(files, 1, 0, 10, limit)


def load_cifar100(root: str | os.PathLike[str], split: str = "test", limit: int | None = None, *,
                  labels: str = "fine") -> Split:
    """CIFAR-100 from the binary release: ``root`` holds ``train.bin`` and ``test.bin`` (or
    is the ``cifar-100-binary`` folder's parent). labels: "fine" (100 classes, default) or
    "coarse" (20 superclasses). x (N, 3, 32, 32)."""
    base = Path(root)
    if (base / "cifar-100-binary").is_dir():
        base = base / "cifar-100-binary"
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels: expected 'fine' or 'coarse', got {labels!r}")
    return _read_cifar_bin([base / f"{split}.bin"], 2, 1 if labels == "fine" else 0,
                           100 if labels == "fine" else 20, limit)


def parse_image_size(value: Any) -> tuple[int, int] | None:
    """``None``, an int, ``(H, W)`` or a string ``"H"`` / ``"HxW"`` → ``(H, W)`` or None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) not in (1, 2):
            raise ValueError(f"image_size: expected H or HxW (e.g. 32 or 224x224), got {value!r}")
        value = tuple(nums)
    if isinstance(value, int):
        value = (value, value)
    if not isinstance(value, tuple | list) or len(value) not in (1, 2):
        raise ValueError(f"image_size: expected H or (H, W), got {value!r}")
    h, w = (value[0], value[0]) if len(value) == 1 else value
    return check_int(h, "image_size", minimum=1), check_int(w, "image_size", minimum=1)


def load_image_folder(root: str | os.PathLike[str], size: int | tuple[int, int] | str | None = None,
                      resize: int | None = None, limit: int | None = None) -> tuple[Split, list[str]]:
    """Images under ``root/<class>/*`` → (Split, class names), RGB, x (N, 3, H, W).

    size: None keeps the images' own size (all must have the same one); ``H``, ``(H, W)``
    or ``"HxW"`` scales each image to cover H×W (aspect ratio kept), then crops the centre.
    resize: scale the shorter side to ``resize`` first instead (ImageNet: 256, then size
    224). limit: the first images in sorted order."""
    from PIL import Image, UnidentifiedImageError

    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"root: {base} is not a directory")
    hw = parse_image_size(size)
    if resize is not None:
        if hw is None:
            raise ValueError("resize: needs size (the crop after resizing)")
        resize = check_int(resize, "resize", minimum=max(hw))
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"root: {base} has no class sub-directories (expected <root>/<class>/<image>)")
    items = [(p, c) for c, name in enumerate(classes) for p in sorted((base / name).iterdir())
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if limit is not None:
        items = items[: check_int(limit, "limit", minimum=1)]
    if not items:
        raise ValueError(f"root: no images with extensions {IMAGE_EXTENSIONS} under {base}")
    images: list[np.ndarray] = []
    for p, _ in items:
        try:
            with Image.open(p) as src:
                im = src.convert("RGB")
                if hw is not None:
                    im = _cover_and_crop(im, hw, resize)
                elif images and images[0].shape[:2] != (im.size[1], im.size[0]):
                    h0, w0 = images[0].shape[:2]
                    raise ValueError(f"size: images under {base} have different sizes ({w0}x{h0} and "
                                     f"{im.size[0]}x{im.size[1]}, width x height); pass an image size "
                                     "(--image-size H[xW])")
                images.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"root: cannot read image {p}: {exc}") from exc
    x = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = np.array([c for _, c in items], dtype=np.int64)
    return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)), classes


def _cover_and_crop(im: Any, hw: tuple[int, int], resize: int | None) -> Any:
    from PIL import Image

    h, w = hw
    iw, ih = im.size
    scale = resize / min(iw, ih) if resize is not None else max(h / ih, w / iw)
    im = im.resize((max(w, round(iw * scale)), max(h, round(ih * scale))), Image.Resampling.BILINEAR)
    iw, ih = im.size
    left, top = (iw - w) // 2, (ih - h) // 2
    return im.crop((left, top, left + w, top + h))


def _pick(mapping: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in mapping:
            return mapping[k]
    return None


def _as_numpy(obj: Any, name: str) -> np.ndarray:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    try:
        return np.asarray(obj)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot read it as an array ({exc})") from exc


def _read_array_file(path: Path, name: str) -> tuple[Any, Any]:
    """(x or None, y or None) from a .npy / .npz / .pt / .pth file."""
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.keys())
                x, y = _pick(f, _X_KEYS), _pick(f, _Y_KEYS)
                if x is None and len(keys) == 1:
                    x = f[keys[0]]
                if x is None:
                    raise ValueError(f"{name}: {path} has arrays {keys}; expected one named "
                                     f"{' / '.join(_X_KEYS)} (and labels {' / '.join(_Y_KEYS)})")
                return np.asarray(x), None if y is None else np.asarray(y)
        if suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, torch.Tensor):
                return obj, None
            if isinstance(obj, dict):
                x = _pick(obj, _X_KEYS)
                if x is None:
                    raise ValueError(f"{name}: {path} holds a dict with keys {sorted(map(str, obj))}; "
                                     f"expected a tensor named {' / '.join(_X_KEYS)}")
                return x, _pick(obj, _Y_KEYS)
            if isinstance(obj, tuple | list) and len(obj) == 2:
                return obj[0], obj[1]
            raise ValueError(f"{name}: {path} holds a {type(obj).__name__}; expected a tensor, a dict "
                             "with x and y, or an (x, y) pair")
        if suffix in (".txt", ".csv"):
            return np.loadtxt(path, dtype=np.int64, delimiter="," if suffix == ".csv" else None, ndmin=1), None
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        if str(exc).startswith(f"{name}:"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{name}: cannot read {path} ({first})") from exc
    raise ValueError(f"{name}: expected a .npy, .npz, .pt or .pth file, got {path}")


def _images_nchw(x: Any, layout: str, name: str) -> torch.Tensor:
    arr = _as_numpy(x, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "uif":
        raise ValueError(f"{name}: expected numeric pixels, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None]
        layout = "nchw"
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected images (N, C, H, W) or (N, H, W, C), got shape {arr.shape}")
    if layout == "auto":
        if arr.shape[1] in (1, 3, 4):
            layout = "nchw"
        elif arr.shape[-1] in (1, 3, 4):
            layout = "nhwc"
        else:
            raise ValueError(f"{name}: cannot tell the channel axis of shape {arr.shape} (expected C in 1, 3 "
                             "or 4 at axis 1 or 3); pass layout='nchw' or 'nhwc' (--layout)")
    if layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    elif layout != "nchw":
        raise ValueError(f"layout: expected 'auto', 'nchw' or 'nhwc', got {layout!r}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: holds no images")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    else:
        out = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return torch.from_numpy(np.ascontiguousarray(out))


def load_arrays(path: str | os.PathLike[str], labels: Any = None, *, layout: str = "auto",
                limit: int | None = None) -> Split:
    """Images and labels from array files: ``path`` a ``.npy`` (images only), ``.npz`` or
    ``.pt`` / ``.pth`` file (images and, optionally, labels); ``labels`` a file
    (``.npy``, ``.pt``, ``.txt``, ``.csv``) or an array-like of N class indices when ``path``
    has none. layout: "auto" (channels at axis 1 when C in 1, 3, 4, else at axis 3),
    "nchw" or "nhwc". Returns x (N, C, H, W) float32 (uint8 / 255) and y (N,) int64."""
    x, y = _read_array_file(Path(path), "data")
    if labels is not None:
        if isinstance(labels, str | os.PathLike):
            y, _ = _read_array_file(Path(labels), "labels")
        else:
            y = labels
    if y is None:
        raise ValueError(f"labels: {path} holds no labels; pass a labels file (--labels) or array (labels=)")
    xt = _images_nchw(x, layout, "data")
    ya = _as_numpy(y, "labels")
    if ya.ndim == 2 and 1 in ya.shape:  # (N, 1) or (1, N) columns
        ya = ya.reshape(-1)
    if ya.ndim != 1 or ya.shape[0] != xt.shape[0]:
        raise ValueError(f"labels: expected ({xt.shape[0]},) class indices for {xt.shape[0]} images, "
                         f"got shape {ya.shape}")
    if ya.dtype.kind == "f" and np.all(np.mod(ya, 1) == 0):
        ya = ya.astype(np.int64)
    if ya.dtype.kind not in "ui":
        raise ValueError(f"labels: expected integer class indices, got dtype {ya.dtype}")
    if ya.size and ya.min() < 0:
        raise ValueError(f"labels: expected class indices >= 0, got {int(ya.min())}")
    yt = torch.from_numpy(ya.astype(np.int64))
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
        xt, yt = xt[:limit], yt[:limit]
    return Split(xt, yt)


def _dir_kind(path: Path) -> str | None:
    """What a folder holds: "cifar10" / "cifar100" (the binary releases) or "folder"."""
    if not path.is_dir():
        return None
    if (path / "cifar-10-batches-bin").is_dir() or (path / "test_batch.bin").is_file():
        return "cifar10"
    if (path / "cifar-100-binary").is_dir() or (path / "test.bin").is_file():
        return "cifar100"
    return "folder"


def load_data(data: str | os.PathLike[str] | None = "digits", *, labels: Any = None,
              root: str | os.PathLike[str] | None = None, split: str = "test",
              image_size: int | tuple[int, int] | str | None = None, layout: str = "auto",
              limit: int | None = None) -> Split:
    """The one reader behind ``--data``: a data set name or a path.

    - ``"digits"`` (default, embedded); ``"cifar10"``, ``"cifar100"``, ``"imagenet"``,
      ``"folder"`` with ``root`` (the ``--data-dir``);
    - a ``.npy`` / ``.npz`` / ``.pt`` / ``.pth`` file (see :func:`load_arrays`; ``labels``
      and ``layout`` apply);
    - a folder: the CIFAR-10 / CIFAR-100 binary release (``cifar-10-batches-bin``,
      ``cifar-100-binary`` or their contents) or an image folder ``<class>/<image>``
      (``image_size`` applies).

    Returns a Split with x (N, C, H, W) float in [0, 1] and y (N,) int64."""
    name = "digits" if data is None else os.fspath(data)
    is_array = Path(name).suffix.lower() in ARRAY_SUFFIXES
    if labels is not None and not is_array:
        raise ValueError(f"labels: only for array data (.npy, .npz, .pt); {name!r} has its own labels")
    kind = name if name in DATA_SETS else _dir_kind(Path(name))
    if image_size is not None and kind not in ("imagenet", "folder"):
        raise ValueError(f"image_size: only for image folders; {name!r} has a fixed image size")
    if name in DATA_SETS:
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
        if name == "cifar100":
            return load_cifar100(root, split, limit)
        if name == "imagenet":
            return load_image_folder(root, size=image_size or 224, resize=None if image_size else 256,
                                     limit=limit)[0]
        return load_image_folder(root, size=image_size, limit=limit)[0]
    path = Path(name)
    if path.is_file() or path.suffix.lower() in ARRAY_SUFFIXES:
        return load_arrays(path, labels, layout=layout, limit=limit)
    if kind == "cifar10":
        return load_cifar10(path, split, limit)
    if kind == "cifar100":
        return load_cifar100(path, split, limit)
    if kind == "folder":
        return load_image_folder(path, size=image_size, limit=limit)[0]
    raise ValueError(f"data: expected one of {', '.join(DATA_SETS)} or an existing file or folder "
                     "(.npy, .npz, .pt, CIFAR binaries, <class>/<image> folders), got " + repr(name))


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, split: str = "test",
                 limit: int | None = None) -> Split:
    """By name (``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder``) with its
    directory ``root``; :func:`load_data` also takes paths, labels and image sizes."""
    if name not in DATA_SETS:
        raise ValueError(f"data: expected one of {', '.join(DATA_SETS)}, got {name!r}")
    return load_data(name, root=root, split=split, limit=limit)
