"""certkit.pointcloud: Point-cloud and LiDAR robustness: spectral ops, 3DHacker, corruption suites, certification, INTACT."""

from certkit.pointcloud.version import __version__

__all__ = ["__version__"]
