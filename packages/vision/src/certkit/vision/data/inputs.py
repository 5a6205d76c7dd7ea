"""The user's model and data on the command line: the options every ``certkit vision``
command shares (``--model``, ``--weights``, ``--data``, ``--labels``, ``--data-dir``,
``--image-size``, ``--layout``, ``--num-classes``) and the loaders behind them.

Models: a TorchScript file, a ``torch.export`` ``.pt2`` program, or ``module:factory``
(the module importable or a ``.py`` file in the current directory) plus ``--weights``, a
state_dict read with ``weights_only=True`` (:func:`certkit.core.modelio.load_model`).
Without ``--model`` a command uses its embedded reference model on the digits data.
Data: see :func:`certkit.vision.data.datasets.load_data`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="TorchScript file, torch.export .pt2, or module:factory (./module.py works); "
                    "default: the embedded reference model.")]
WeightsOpt = Annotated[str | None, typer.Option(
    "--weights", help="state_dict for --model module:factory (read with weights_only=True).")]
DataOpt = Annotated[str, typer.Option(
    "--data", help="digits | cifar10 | cifar100 | imagenet | folder, or a path: .npy/.npz/.pt arrays "
                   "(N,C,H,W) or (N,H,W,C), a CIFAR binary folder, an image folder <class>/<image>.")]
LabelsOpt = Annotated[str | None, typer.Option(
    "--labels", help="Labels (N,) for array data without them: .npy, .pt, .txt or .csv.")]
DataDirOpt = Annotated[str | None, typer.Option(
    "--data-dir", help="Directory of a named data set (cifar10, cifar100, imagenet, folder).")]
ImageSizeOpt = Annotated[str | None, typer.Option(
    "--image-size", help="H or HxW: resize + centre-crop image folders (default: keep the size).")]
LayoutOpt = Annotated[str, typer.Option(
    "--layout", help="Array layout: auto | nchw | nhwc (auto: channels where the size is 1, 3 or 4).")]
NumClassesOpt = Annotated[int, typer.Option("--num-classes", help="Number of classes K of the model.")]
NewOpt = Annotated[bool, typer.Option(
    "--new", help="Start a new results file (the old one is moved aside) instead of resuming it.")]


def load_user_data(data: str, labels: str | None = None, data_dir: str | None = None,
                   image_size: str | None = None, layout: str = "auto", split: str = "test") -> Any:
    """The Split behind ``--data`` & co (x (N, C, H, W) in [0, 1], y (N,)); errors name the option."""
    from certkit.vision.data.datasets import load_data

    try:
        out = load_data(data, labels=labels, root=data_dir, split=split, image_size=image_size, layout=layout)
    except (ValueError, FileNotFoundError) as exc:
        msg = str(exc)
        for arg, opt in (("data:", "--data:"), ("labels:", "--labels:"), ("root:", "--data-dir:"),
                         ("image_size:", "--image-size:"), ("layout:", "--layout:"), ("size:", "--image-size:")):
            if msg.startswith(arg):
                msg = opt + msg[len(arg):]
                break
        raise type(exc)(msg) from exc
    _warn_range_once(out.x)
    return out


def _warn_range_once(x: Any) -> None:
    """Pixels outside [0, 1]: one ``certkit: warning:`` line on stderr, then the same
    warning from the samplers is silenced for the rest of the command."""
    import sys
    import warnings

    from certkit.vision.data.checks import PixelRangeWarning, check_pixel_range

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PixelRangeWarning)
        check_pixel_range(x, "--data")
    for w in caught:
        print(f"certkit: warning: {w.message}", file=sys.stderr)
    if caught:
        warnings.filterwarnings("ignore", category=PixelRangeWarning)


def load_user_model(model: str | None, weights: str | None, default: Any = None) -> Any:
    """``--model`` / ``--weights`` in eval mode, or ``default()`` without ``--model``."""
    if model is None:
        if weights is not None:
            raise ValueError("--weights: needs --model module:factory")
        return default() if default is not None else None
    from certkit.core.modelio import load_model

    return load_model(model, weights)


def check_user_model(net: Any, split: Any, num_classes: int, data: str) -> None:
    """The dry forward pass of :func:`~certkit.vision.data.checks.check_model_input` on the
    command line's data; errors name ``--data`` (with a hint when it is the default)."""
    from certkit.vision.data.checks import check_model_input

    try:
        check_model_input(net, split.x, num_classes, name="--data")
    except ValueError as exc:
        hint = " (the default --data is the embedded 1x8x8 digits; pass your data)" if data == "digits" else ""
        msg = str(exc)
        if msg.startswith("num_classes:"):
            msg = "--num-classes:" + msg[len("num_classes:"):]
        raise ValueError(msg + hint) from exc
