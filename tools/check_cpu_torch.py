"""Check that this venv's torch is the CPU wheel of the given find-links folders, file for file.

Usage: ``python tools/check_cpu_torch.py [FIND_LINKS_DIR ...]`` (nox's fresh venvs run it after
their installs; uv reads no pip configuration, so this is the proof that it took the local CPU
wheel and not PyPI's CUDA build). Checks: ``torch.version.cuda`` is None, no ``nvidia-*``
distribution is installed and, when a folder holds ``torch-<installed version>-*.whl``, every
file that wheel's RECORD lists is installed with the same sha256 (the installed RECORD holds
the wheel's lines). Exit status 1 with one line naming what differs.
"""

from __future__ import annotations

import glob
import os
import sys
import zipfile
from importlib import metadata


def main(dirs: list[str]) -> int:
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        print("check_cpu_torch: torch is not installed in this venv: nothing to check")
        return 0
    nvidia = sorted(d.metadata["Name"] for d in metadata.distributions()
                    if (d.metadata["Name"] or "").lower().startswith("nvidia-"))
    import torch

    if torch.version.cuda is not None or nvidia:
        print(f"check_cpu_torch: torch {dist.version} is a CUDA build (cuda {torch.version.cuda}; "
              f"{', '.join(nvidia) or 'no nvidia packages'}): give the installer the CPU wheel's folder",
              file=sys.stderr)
        return 1
    wheels = [w for d in dirs for w in glob.glob(os.path.join(d, f"torch-{dist.version}-*.whl"))]
    if not wheels:
        print(f"check_cpu_torch: torch {dist.version}, CPU build (no local wheel of it to compare)")
        return 0
    with zipfile.ZipFile(wheels[0]) as zf:
        record = zf.read(f"torch-{dist.version}.dist-info/RECORD").decode()
    wanted = {line.split(",")[0]: line.split(",")[1] for line in record.splitlines()
              if line.count(",") >= 2 and line.split(",")[1]}
    have = {line.split(",")[0]: line.split(",")[1] for line in (dist.read_text("RECORD") or "").splitlines()
            if line.count(",") >= 2}
    differ = [p for p, h in wanted.items() if have.get(p) != h]
    if differ:
        print(f"check_cpu_torch: {len(differ)} of {len(wanted)} files of {os.path.basename(wheels[0])} "
              f"are not installed as in the wheel, e.g. {differ[0]}", file=sys.stderr)
        return 1
    print(f"check_cpu_torch: torch {dist.version} is {os.path.basename(wheels[0])} "
          f"({len(wanted)} files, sha256 as in its RECORD)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
