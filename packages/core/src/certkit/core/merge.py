"""``certkit merge``: join the JSON-lines outputs of a sharded run (``--shard k/n``).

Part of certkit-core (it needs only :mod:`certkit.core.results`), so a cluster job that
installs one domain package can merge its shards without the umbrella ``certkit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certkit.core.cli import STATE, echo_json


def merge_command(
    shards: Annotated[list[Path], typer.Argument(help="Shard result files (.jsonl).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged .jsonl file.")],
) -> None:
    """Join the JSON-lines outputs of a sharded run (--shard k/n) into one file."""
    from certkit.core.results import merge_logs

    for p in shards:
        if not p.exists():
            raise FileNotFoundError(f"shards: no such file {p}")
    n = merge_logs(shards, out)
    if STATE["json"]:
        echo_json({"out": str(out), "rows": n})
    else:
        typer.echo(f"merged {n} rows into {out}")
