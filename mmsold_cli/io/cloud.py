"""A point cloud with named per-point attributes, read from and written to scan formats.

:class:`PointCloud` holds what a scan file carries besides positions: one
array per attribute (colour channels, intensity, classification, return
numbers, GPS time, normals, user properties) and the format's own metadata
(for LAS/LAZ the header: point format, version, scale, offset, CRS records,
extra-bytes definitions).  :func:`read_cloud` picks the reader from the
extension and :func:`write_cloud` writes atomically, by default in the input's
format, so ``densify`` can hand back a file of the same kind as it was given.

Formats:

* ``.las`` / ``.laz`` — :mod:`mmsold_cli.io.las` (needs the ``scans`` extra:
  laspy, lazrs);
* ``.ply`` — :mod:`mmsold_cli.io.ply`, every scalar vertex property kept;
* ``.e57`` — :mod:`mmsold_cli.io.e57` (needs the ``e57`` extra: pye57;
  without it, refused with a one-line message);
* anything else :func:`mmsold_cli.io.mesh.read_point_cloud` reads — positions
  only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["PointCloud", "read_cloud", "save_cloud", "write_cloud", "CLOUD_FORMATS"]

#: Extensions :func:`write_cloud` writes with attributes.
CLOUD_FORMATS = (".las", ".laz", ".ply", ".e57")


@dataclass
class PointCloud:
    """Positions plus named per-point arrays.

    Attributes
    ----------
    positions : array of shape (n, 3), float64
    attributes : dict of str -> array of shape (n,) or (n, c)
        In file order.  LAS dimensions keep their laspy names (``intensity``,
        ``classification``, ``red``, …), PLY properties their property names.
    fmt : str
        The extension it was read from (``".las"``, ``".laz"``, ``".ply"``, …).
    meta : dict
        Format details a writer needs to reproduce the file: ``las_header``
        (a ``laspy.LasHeader``) for LAS/LAZ; ``ply_format`` and
        ``ply_types`` for PLY.
    """

    positions: np.ndarray
    attributes: dict = field(default_factory=dict)
    fmt: str = ".npy"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        n = self.positions.shape[0]
        for name, a in self.attributes.items():
            if len(a) != n:
                raise MmsoldError(f"attribute {name!r} has {len(a)} values for {n} points")

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def subset(self, idx) -> PointCloud:
        """The rows ``idx`` (indices or a boolean mask), same metadata."""
        return PointCloud(self.positions[idx], {k: v[idx] for k, v in self.attributes.items()}, self.fmt, self.meta)


def _ext(path: Path) -> str:
    return path.suffix.lower()


def read_cloud(spec: str | os.PathLike) -> PointCloud:
    """Read a point cloud with its attributes (see the module docstring for formats)."""
    path = Path(spec)
    ext = _ext(path)
    if ext in (".las", ".laz"):
        from .las import read_las

        return read_las(path)
    if ext == ".ply":
        from .ply import read_ply

        return read_ply(path)
    if ext == ".e57":
        from .e57 import read_e57

        return read_e57(path)
    from .mesh import read_point_cloud

    return PointCloud(read_point_cloud(spec), {}, ext)


def save_cloud(path: str | os.PathLike, cloud: PointCloud, *, like: PointCloud | None = None,
               ply_format: str | None = None) -> None:
    """Write a cloud to ``path`` directly (not atomically): the writer behind :func:`write_cloud`.

    Use it inside :func:`mmsold_cli.io.arrays.atomic_paths` to commit several
    outputs together.  Parameters as for :func:`write_cloud`.
    """
    from .arrays import save_points

    path = Path(path)
    ext = _ext(path)
    meta = (like if like is not None else cloud).meta
    if ext in (".las", ".laz"):
        from .las import write_las

        write_las(path, cloud, header=meta.get("las_header"))
    elif ext == ".ply":
        from .ply import write_ply_cloud

        write_ply_cloud(path, cloud, fmt=ply_format or meta.get("ply_format", "binary_little_endian"),
                        types=meta.get("ply_types"))
    elif ext == ".e57":
        from .e57 import write_e57

        write_e57(path, cloud)
    else:
        save_points(path, cloud.positions, fmt=path.suffix)


def write_cloud(path: str | os.PathLike, cloud: PointCloud, *, overwrite: bool = False, like: PointCloud | None = None,
                ply_format: str | None = None) -> Path:
    """Write a cloud atomically (temporary file beside ``path``, then ``os.replace``).

    Parameters
    ----------
    path : str or path
        ``.las``/``.laz``/``.ply`` keep the attributes; other extensions
        (``.npy``, ``.xyz``, ``.h5`` …) write positions only.
    cloud : PointCloud
    overwrite : bool
    like : PointCloud, optional
        Take the format metadata (LAS header, PLY property types) from this
        cloud, e.g. the input of densify; default ``cloud`` itself.
    ply_format : str, optional
        PLY encoding; default the input's, else binary little-endian.
    """
    from .arrays import atomic_path

    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_cloud(tmp, cloud, like=like, ply_format=ply_format)
    return path
