"""PLY reading: certkit's numpy reader (``certkit.pointcloud.io.read_ply``) vs open3d's
``read_triangle_mesh`` on the same files, in one process.

Files: the shared data's Stanford bunny (ASCII, 8,171 vertices, 16,301 triangles, as
shipped), the same mesh written by open3d as binary little-endian PLY (a foreign writer's
layout), and ``fuze.ply`` (binary, two lists per face: vertex indices and texture
coordinates, plus per-face colours). Both readers must return the same vertices and
triangles (checked). Timings: minimum wall time over repeats; one thread. Prints a table and
one JSON line per file (ratio = open3d / ours, > 1: we are faster).
Needs open3d (the ``io`` extra) and the shared data (skips otherwise).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import best_time, emit, print_table  # noqa: E402

from certkit.pointcloud.io import read_ply  # noqa: E402

MESHES = Path(os.environ.get("CERTKIT_SHARED_DATA", "/work/shared/data")) / "pointcloud" / "meshes"


def main() -> None:
    try:
        import open3d as o3d
    except ImportError:
        print("open3d not installed: skipped")
        return
    if not (MESHES / "bunny.ply").is_file():
        print(f"shared meshes not found at {MESHES}: skipped")
        return
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    tmp = Path(tempfile.mkdtemp())
    bunny_bin = tmp / "bunny_binary.ply"
    o3d.io.write_triangle_mesh(str(bunny_bin), o3d.io.read_triangle_mesh(str(MESHES / "bunny.ply")),
                               write_ascii=False)
    files = [("bunny ascii", MESHES / "bunny.ply"), ("bunny binary (open3d-written)", bunny_bin),
             ("fuze binary (uv lists, face colours)", MESHES / "fuze.ply")]
    rows = []
    for label, path in files:
        pts, faces, _ = read_ply(path)
        mesh = o3d.io.read_triangle_mesh(str(path))
        same = bool(np.allclose(pts, np.asarray(mesh.vertices), rtol=1e-6)
                    and np.array_equal(faces, np.asarray(mesh.triangles)))
        t_ours = best_time(lambda p=path: read_ply(p), repeat=15, warmup=2)
        t_o3d = best_time(lambda p=path: o3d.io.read_triangle_mesh(str(p)), repeat=15, warmup=2)
        size_kb = path.stat().st_size / 1024
        rows.append([label, len(pts), len(faces), round(size_kb), t_ours * 1e3, t_o3d * 1e3,
                     t_o3d / t_ours, same])
        emit(f"pointcloud_read_ply_{path.stem}", t_ours, t_o3d, vertices=len(pts), triangles=len(faces),
             same_output=same, load=round(os.getloadavg()[0], 2))
    print(f"load average: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print_table("PLY read: certkit numpy reader vs open3d.read_triangle_mesh (min wall, ms)",
                ["file", "vertices", "triangles", "KiB", "ours ms", "open3d ms", "open3d/ours", "same"], rows)


if __name__ == "__main__":
    main()
