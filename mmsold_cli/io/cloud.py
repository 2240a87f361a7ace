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
from .text import TEXT_EXTENSIONS

__all__ = ["PointCloud", "CloudWriter", "concat_clouds", "held_attributes", "read_cloud", "save_cloud", "write_cloud",
           "CLOUD_FORMATS"]

#: Extensions :func:`write_cloud` writes with attributes.
CLOUD_FORMATS = (".las", ".laz", ".ply", ".e57") + TEXT_EXTENSIONS


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
        ``ply_types`` (and its header's ``ply_comments``) for PLY.
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
    """Read a point cloud with its attributes (see the module docstring for formats); an empty one is refused."""
    path = Path(spec)
    ext = _ext(path)
    if ext in (".las", ".laz"):
        from .las import read_las as reader
    elif ext == ".ply":
        from .ply import read_ply as reader
    elif ext == ".e57":
        from .e57 import read_e57 as reader
    elif ext in TEXT_EXTENSIONS:
        from .text import read_text_cloud as reader
    else:
        from .arrays import split_path_key
        from .mesh import CLOUD_EXTENSIONS, read_point_cloud

        if split_path_key(spec)[0].suffix.lower() not in CLOUD_EXTENSIONS:  # name every format a cloud is read from
            known = dict.fromkeys(CLOUD_FORMATS + CLOUD_EXTENSIONS)
            raise MmsoldError(f"{path}: unknown point-cloud extension {ext or '(none)'!r}; expected one of "
                              f"{', '.join(known)}")
        return PointCloud(read_point_cloud(spec), {}, ext)
    cloud = reader(path)
    if len(cloud) == 0:  # a header with no points: nothing to fit
        raise MmsoldError(f"{path}: is empty (0 points)")
    return cloud


def held_attributes(ext: str, names) -> list:
    """The attributes among ``names`` a file of extension ``ext`` holds; writing it leaves the others out.

    PTS rows hold an intensity and a colour (:func:`mmsold_cli.io.text.pts_columns`), E57 scans the fields
    pye57 writes (:func:`mmsold_cli.io.e57.e57_attributes`), the other cloud formats everything, arrays
    (``.npy``, ``.h5``) positions only.
    """
    ext = ext.lower()
    if ext == ".pts":
        from .text import pts_columns

        return [a for a in pts_columns(names) if a not in ("x", "y", "z")]
    if ext == ".e57":
        from .e57 import e57_attributes

        return e57_attributes(names)
    return list(names) if ext in CLOUD_FORMATS else []


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
                        types=meta.get("ply_types"), comments=meta.get("ply_comments", ()))
    elif ext == ".e57":
        from .e57 import write_e57

        write_e57(path, cloud)
    elif ext in TEXT_EXTENSIONS:
        from .text import save_text_cloud

        save_text_cloud(path, cloud, like=like)
    else:
        save_points(path, cloud.positions, fmt=path.suffix)


class CloudWriter:
    """A cloud file of ``n`` points written part by part, in the format :func:`save_cloud` picks.

    LAS/LAZ (:class:`~mmsold_cli.io.las.LasWriter`), PLY
    (:class:`~mmsold_cli.io.ply.PlyWriter`), text
    (:class:`~mmsold_cli.io.text.TextCloudWriter`) and ``.npy``
    (:class:`~mmsold_cli.io.arrays.PointWriter`) go to disk as the parts come,
    so only one part is in memory; the other formats (HDF5, E57) gather the
    parts and are written at :meth:`close`.  PLY, text and ``.npy`` files have
    the bytes :func:`save_cloud` writes for the whole cloud; LAS/LAZ the same
    points, header and records, with laspy's per-dimension statistics of the
    extra bytes taken over the parts.  Parts must share their attributes.
    Writes in place: use it on a temporary path of
    :func:`mmsold_cli.io.arrays.atomic_paths`.

    Parameters
    ----------
    path : str or path
    n : int
        Points to come (the PLY and ``.npy`` headers carry the count).
    like : PointCloud, optional
        Format metadata (LAS header, PLY property types and encoding).
    bounds : (array of 3, float), optional
        Lowest corner and largest extent of the points, for a LAS/LAZ file
        without a header to take (:class:`~mmsold_cli.io.las.LasWriter`).
    ply_format : str, optional
    """

    def __init__(self, path: str | os.PathLike, n: int, *, like: PointCloud | None = None, bounds=None,
                 ply_format: str | None = None):
        from .arrays import STREAM_EXTENSIONS, PointWriter

        self.path, self.n, self.rows = Path(path), int(n), 0
        meta = like.meta if like is not None else {}
        ext = _ext(self.path)
        self._parts = None
        if ext in (".las", ".laz"):
            from .las import LasWriter

            self._w = LasWriter(self.path, header=meta.get("las_header"), bounds=bounds)
        elif ext == ".ply":
            from .ply import PlyWriter

            self._w = PlyWriter(self.path, self.n, fmt=ply_format or meta.get("ply_format", "binary_little_endian"),
                                types=meta.get("ply_types"), comments=meta.get("ply_comments", ()))
        elif ext in TEXT_EXTENSIONS:
            from .text import TextCloudWriter

            self._w = TextCloudWriter(self.path, self.n, like=like)
        elif ext in STREAM_EXTENSIONS:
            self._w = PointWriter(self.path, self.n, 3)
        else:
            self._w, self._parts = None, []
        self._like = like

    def write(self, part: PointCloud) -> None:
        """Append the points of ``part``."""
        if self.rows + len(part) > self.n:
            raise ValueError(f"{self.path}: more than the {self.n} points declared")
        if self._parts is not None:
            self._parts.append(part)
        elif hasattr(self._w, "write"):
            self._w.write(part)
        else:
            self._w[self.rows:self.rows + len(part)] = part.positions
        self.rows += len(part)

    def close(self) -> None:
        """Finish the file; raises ``ValueError`` unless all ``n`` points were written."""
        if self._parts is not None:
            parts, self._parts = self._parts, None
            if self.rows != self.n:
                raise ValueError(f"{self.path}: {self.rows} of {self.n} points written")
            save_cloud(self.path, concat_clouds(parts) if parts else PointCloud(np.zeros((0, 3))), like=self._like)
        elif self._w is not None:
            w, self._w = self._w, None
            w.close()
            if self.rows != self.n:
                raise ValueError(f"{self.path}: {self.rows} of {self.n} points written")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self._w is not None:  # the caller's error wins; its temporary file is removed by atomic_paths
            self._w.__exit__(exc_type, exc, tb)


def concat_clouds(parts) -> PointCloud:
    """The parts one after another (their attributes must have the same names); the first part's format."""
    first = parts[0]
    names = list(first.attributes)
    return PointCloud(np.concatenate([p.positions for p in parts]),
                      {k: np.concatenate([np.asarray(p.attributes[k]) for p in parts]) for k in names},
                      first.fmt, first.meta)


def write_cloud(path: str | os.PathLike, cloud: PointCloud, *, overwrite: bool = False, like: PointCloud | None = None,
                ply_format: str | None = None) -> Path:
    """Write a cloud atomically (temporary file beside ``path``, then ``os.replace``).

    Parameters
    ----------
    path : str or path
        ``.las``/``.laz``/``.ply``/``.e57`` and text (``.xyz``, ``.txt``,
        ``.csv``) keep the attributes; ``.npy`` and ``.h5`` write positions only.
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
