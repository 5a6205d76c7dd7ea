"""The ``certkit`` command's dispatcher.

Subcommands come from the entry-point group ``certkit.commands``: each entry point names a
``typer.Typer`` app, mounted under the entry point's name. So ``pip install certkit-vision``
alone gives ``certkit vision ...``; the ``certkit`` distribution adds ``report``, ``merge``
and the distributed backends. The dispatcher lives in certkit-core, which every domain
package depends on, so the command exists whatever subset is installed.

Errors a user can fix (:class:`UsageError`, ``ValueError``, ``TypeError``,
``FileNotFoundError``) print one line and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Annotated, Any

import typer

from certkit.core import progress
from certkit.core.results import LogLockedError


class UsageError(Exception):
    """A user-fixable problem: printed as one line, exit code 2."""


STATE: dict[str, Any] = {"json": False, "debug": False, "quiet": False}

# Shared options for every certify-style command (distributed runs, see certkit.core.distributed).
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="serial | process | ray (default: $CERTKIT_BACKEND or serial).")]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", help="Run shard k/n (0 <= k < n) of the inputs, for SLURM-style arrays; join with `certkit merge`.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Worker processes / Ray actors.")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", help="Connect to this Ray cluster.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="TorchScript file, torch.export .pt2, or module:factory (default: the embedded reference model).")]
WeightsOpt = Annotated[str | None, typer.Option("--weights", help="state_dict for module:factory (read with weights_only=True).")]

def _discard_result(value: Any, **_params: Any) -> None:
    """Drop whatever a command returns: with ``standalone_mode=False`` click hands a command's
    return value back as the result of ``app(...)``, where it would be indistinguishable from
    the exit code of a ``typer.Exit``. After this, an ``int`` coming back is always an exit code."""
    return None


app = typer.Typer(
    name="certkit",
    help="Certify and attack ML models: vision, point clouds, RL, ranking, theory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    result_callback=_discard_result,
    context_settings={"help_option_names": ["-h", "--help"]},  # (inherited by every subcommand)
)


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    STATE.update(quiet=quiet, json=json_out, debug=debug)
    progress.set_quiet(quiet)


@app.command("info")
def info() -> None:
    """Print build_info() of the compiled core and the installed certkit packages."""
    import certkit.core as core

    data = {"build_info": core.build_info(), "packages": installed_packages()}
    if STATE["json"]:
        echo_json(data)
        return
    for k, v in data["build_info"].items():
        typer.echo(f"{k:>16}: {v}")
    for name, ver in data["packages"].items():
        typer.echo(f"{name:>16}: {ver}")


def installed_packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("certkit-core", "certkit-vision", "certkit-pointcloud", "certkit-rl",
                 "certkit-rank", "certkit-theory", "certkit"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def echo_json(obj: Any) -> None:
    from certkit.core.results import _json_default

    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _mount_plugins() -> None:
    for ep in entry_points(group="certkit.commands"):
        try:
            sub = ep.load()
        except Exception as exc:  # a broken plugin must not break the whole command
            print(f"certkit: could not load command {ep.name!r}: {exc}", file=sys.stderr)
            continue
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=ep.name)
        elif callable(sub):
            app.command(ep.name)(sub)


def main(argv: list[str] | None = None) -> int:
    _mount_plugins()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # standalone_mode=False makes click *return* the code of typer.Exit / ctx.exit(n)
        # (and 130 for Ctrl-C) instead of exiting: it must be passed on, not dropped.
        rv = app(args=args, prog_name="certkit", standalone_mode=False)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        return _exit_code(exc.code)
    except (UsageError, ValueError, TypeError, FileNotFoundError, ImportError,
            LogLockedError) as exc:
        if debug:
            raise
        print(f"certkit: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # typer vendors its own click: recognise its exceptions by their interface
        if type(exc).__name__ == "Abort":
            return 130
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return 2
        if debug:
            raise
        print(f"certkit: error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return _exit_code(rv)


def _exit_code(code: object) -> int:
    """``sys.exit`` semantics: None is 0, an int is itself, anything else (a message) is 1."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
