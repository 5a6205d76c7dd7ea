"""Check that this venv's torch is the local CPU wheel of the given find-links folders, file
for file.

Usage: ``python tools/check_cpu_torch.py [FIND_LINKS_DIR ...]`` (nox's fresh venvs run it after
their installs; uv reads no pip configuration, so this is the proof that it took the local CPU
wheel and not PyPI's CUDA build). Where a folder holds a ``torch-*.whl`` (the development and
CI machines): ``torch.version.cuda`` is None, no ``nvidia-*`` distribution is installed, the
installed version is that wheel's and every file its RECORD lists is installed with the same
sha256. Without a local wheel it only reports which torch is installed. Exit status 1 with one
line naming what differs.
"""

from __future__ import annotations

import glob
import os
import sys
import zipfile
from importlib import metadata


def _fail(msg: str) -> int:
    print(f"check_cpu_torch: {msg}", file=sys.stderr)
    return 1


def main(dirs: list[str]) -> int:
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        print("check_cpu_torch: torch is not installed in this venv: nothing to check")
        return 0
    local = sorted(w for d in dirs for w in glob.glob(os.path.join(d, "torch-*.whl")))
    if not local:
        print(f"check_cpu_torch: torch {dist.version} (no local torch wheel in {dirs or 'no find-links'} "
              "to compare with)")
        return 0
    nvidia = sorted(d.metadata["Name"] for d in metadata.distributions()
                    if (d.metadata["Name"] or "").lower().startswith("nvidia-"))
    import torch

    if torch.version.cuda is not None or nvidia:
        return _fail(f"torch {dist.version} is a CUDA build (cuda {torch.version.cuda}; "
                     f"{', '.join(nvidia) or 'no nvidia packages'}), not the local {os.path.basename(local[0])}")
    wheels = [w for w in local if os.path.basename(w).startswith(f"torch-{dist.version}-")]
    if not wheels:
        return _fail(f"torch {dist.version} is installed, not one of the local wheels "
                     f"({', '.join(os.path.basename(w) for w in local)})")
    with zipfile.ZipFile(wheels[0]) as zf:
        record = zf.read(f"torch-{dist.version}.dist-info/RECORD").decode()
    wanted = {line.split(",")[0]: line.split(",")[1] for line in record.splitlines()
              if line.count(",") >= 2 and line.split(",")[1]}
    have = {line.split(",")[0]: line.split(",")[1] for line in (dist.read_text("RECORD") or "").splitlines()
            if line.count(",") >= 2}
    differ = [p for p, h in wanted.items() if have.get(p) != h]
    if differ:
        return _fail(f"{len(differ)} of {len(wanted)} files of {os.path.basename(wheels[0])} are not "
                     f"installed as in the wheel, e.g. {differ[0]}")
    print(f"check_cpu_torch: torch {dist.version} is {os.path.basename(wheels[0])} "
          f"({len(wanted)} files, sha256 as in its RECORD)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
