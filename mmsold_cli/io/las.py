"""LAS and LAZ point clouds through laspy (LAZ compression by its lazrs backend).

LAS [1]_ stores positions as 32-bit integers with a per-axis scale and offset
in the header, :math:`x = X \\cdot s_x + o_x`, and every point record carries
the dimensions of its point format (intensity, return number, number of
returns, classification and its flags, scan angle, user data, point source,
GPS time, RGB, NIR …) plus any "extra bytes" dimensions a producer declared.
Reading keeps all of them as attributes (laspy's names) and keeps the header
(point format, version, scale, offset, VLRs/EVLRs such as the CRS) in
``meta["las_header"]``; writing reuses that header so the output has the
same point format, the same scale and offset (hence the same coordinate
grid), the same CRS records and the same extra-bytes dimensions.  An 8-bit
colour (a PLY's, an E57's, a text file's ``uint8`` channels) is written
multiplied by 257, as the specification asks LAS colours to span 16 bits.

Needs the ``scans`` extra: ``pip install "mmsold[scans]"``.

References
----------
.. [1] ASPRS, "LAS specification 1.4 – R15", 2019.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["read_las", "write_las", "LasWriter", "require_laspy"]

_COORDS = ("X", "Y", "Z")


def require_laspy(need_laz: bool = False):
    """Import laspy (and check a LAZ backend), or raise a one-line MmsoldError naming the extra."""
    try:
        import laspy
    except ImportError as exc:
        raise MmsoldError('reading or writing LAS/LAZ needs laspy: pip install "mmsold[scans]"') from exc
    if need_laz:
        try:
            import lazrs  # noqa: F401
        except ImportError as exc:
            raise MmsoldError('LAZ (compressed LAS) needs the lazrs backend: pip install "mmsold[scans]"') from exc
    return laspy


def read_las(spec: str | os.PathLike):
    """Read a LAS/LAZ file: positions in real coordinates, every other dimension as an attribute.

    Returns
    -------
    PointCloud
        ``meta["las_header"]`` is the file's ``laspy.LasHeader``.
    """
    from .cloud import PointCloud

    path = Path(spec)
    laspy = require_laspy(path.suffix.lower() == ".laz")
    if not path.is_file():
        raise MmsoldError(f"{path}: no such file")
    try:
        las = laspy.read(path)
    except (laspy.errors.LaspyException, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    pos = np.stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64),
                    np.asarray(las.z, dtype=np.float64)], axis=1)
    attrs = {}
    for name in las.point_format.dimension_names:
        if name in _COORDS:
            continue
        attrs[name] = np.array(las[name])  # bit fields come back as views: copy them to plain arrays
    return PointCloud(pos, attrs, path.suffix.lower(), {"las_header": las.header})


def _unreadable(path, exc) -> MmsoldError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MmsoldError(f"{path}: cannot read as LAS/LAZ ({first})")


#: Points a block when only the positions of a LAS/LAZ file are read.
_POSITION_BLOCK = 1 << 20


def read_las_positions(spec: str | os.PathLike) -> np.ndarray:
    """The (n, 3) real coordinates of a LAS/LAZ file, read block by block: what the commands other than
    densify need of a scan, without its other dimensions (a 4,000,000-point point-format-3 file: 96 MB of
    positions against about 300 MB more of attributes)."""
    path = Path(spec)
    laspy = require_laspy(path.suffix.lower() == ".laz")
    if not path.is_file():
        raise MmsoldError(f"{path}: no such file")
    try:
        with laspy.open(path) as fh:
            pos = np.empty((fh.header.point_count, 3))
            done = 0
            for block in fh.chunk_iterator(_POSITION_BLOCK):
                k = len(block)
                pos[done:done + k, 0], pos[done:done + k, 1], pos[done:done + k, 2] = block.x, block.y, block.z
                done += k
    except (laspy.errors.LaspyException, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    if done != len(pos):
        raise MmsoldError(f"{path}: the header promises {len(pos)} points, the file holds {done}")
    return pos


def write_las(path: str | os.PathLike, cloud, *, header=None) -> None:
    """Write a PointCloud as LAS or LAZ (by the extension), in place.

    Parameters
    ----------
    path : str or path
        ``.las`` or ``.laz`` (``.part.laz`` temporary names count as ``.laz``).
    cloud : PointCloud
    header : laspy.LasHeader, optional
        The input's header: its point format, version, scale, offset and VLRs
        (CRS, extra-bytes definitions) are reused.  Without one, point format
        3 (RGB + GPS time) at LAS 1.2 with a scale of 1e-7 of the extent is
        used and attributes it has no dimension for are added as extra bytes.
        Attributes the format has and the cloud lacks are written as zeros;
        attributes the format lacks are added as extra-bytes dimensions.
    """
    with LasWriter(path, header=header, bounds=_bounds(cloud.positions)) as w:
        w.write(cloud)


def _bounds(pos):
    """Lowest corner and largest extent of the points: where a header-less file puts its integer grid."""
    if not len(pos):
        return np.zeros(3), 1.0
    return pos.min(axis=0), float(np.ptp(pos, axis=0).max())


class LasWriter:
    """A LAS/LAZ file written block by block (laspy's chunked writer): the bytes of :func:`write_las`.

    The header is made with the first block, whose attributes fix the
    extra-bytes dimensions; later blocks must have the same attributes.  The
    point count and bounds in the header are laspy's, filled in at
    :meth:`close`.  Use it on a temporary path (it writes in place).

    Parameters
    ----------
    path : str or path
    header : laspy.LasHeader, optional
        As for :func:`write_las`.
    bounds : (array of 3, float)
        Without a header: the lowest corner and the largest extent of the
        points to come, from which the offset and the scale (1e-7 of the
        extent, a power of ten) are chosen.
    """

    def __init__(self, path: str | os.PathLike, *, header=None, bounds=None):
        self.path = Path(path)
        self._laspy = require_laspy(self.path.suffix.lower() == ".laz")
        self._given, self._bounds = header, bounds if bounds is not None else (np.zeros(3), 1.0)
        self.header, self._names, self._writer = None, None, None
        self.rows = 0

    def _open(self, cloud) -> None:
        laspy = self._laspy
        if self._given is not None:
            header = self._given.copy()
        else:
            header = laspy.LasHeader(point_format=3, version="1.2")
            lo, ext = self._bounds
            header.offsets = np.floor(lo)
            header.scales = np.full(3, 10.0 ** np.floor(np.log10(max(ext, 1e-9) * 1e-7)))
        have = set(header.point_format.dimension_names)
        # attributes the format has no dimension for (e.g. normals added by densify) become extra bytes
        extra = [laspy.ExtraBytesParams(name=name, type=np.asarray(a).dtype if np.asarray(a).dtype.kind in "iuf"
                                        else np.float64)
                 for name, a in cloud.attributes.items() if name not in have and np.asarray(a).ndim == 1]
        if extra:
            header.add_extra_dims(extra)
        self.header = header
        self._names = list(cloud.attributes)
        try:
            self._writer = laspy.LasWriter(open(self.path, "wb+"), header,
                                           do_compress=self.path.suffix.lower() == ".laz", closefd=True)
        except (laspy.errors.LaspyException, ValueError) as exc:
            raise MmsoldError(f"{self.path}: cannot write LAS/LAZ ({str(exc).strip().splitlines()[0]})") from exc

    def write(self, cloud) -> None:
        """Append the points of ``cloud`` (a PointCloud)."""
        laspy = self._laspy
        if self._writer is None:
            self._open(cloud)
        elif list(cloud.attributes) != self._names:
            raise ValueError(f"{self.path}: a block has attributes {list(cloud.attributes)}, the file {self._names}")
        header, pos = self.header, cloud.positions
        # the real coordinates must fit the integer grid: X = (x - offset) / scale in int32
        q = np.rint((pos - np.asarray(header.offsets)) / np.asarray(header.scales)) if len(pos) else np.zeros((0, 3))
        if len(pos) and (q.min() < np.iinfo(np.int32).min or q.max() > np.iinfo(np.int32).max):
            raise MmsoldError(f"{self.path}: points fall outside the LAS header's integer grid (scale "
                              f"{list(header.scales)}, offset {list(header.offsets)})")
        las = laspy.LasData(header=header.copy(), points=laspy.ScaleAwarePointRecord.zeros(len(pos), header=header))
        las.x, las.y, las.z = pos[:, 0], pos[:, 1], pos[:, 2]
        dims = set(header.point_format.dimension_names)
        for name, a in cloud.attributes.items():
            if name in dims:
                a = np.asarray(a)
                target = np.asarray(las[name]).dtype
                if name in ("red", "green", "blue") and a.dtype == np.uint8:
                    a = a.astype(np.uint16) * np.uint16(257)  # an 8-bit colour (PLY, E57, text): LAS's are 16-bit
                if target.kind in "iu" and a.dtype.kind == "f":
                    info = np.iinfo(target)
                    a = np.clip(np.rint(a), info.min, info.max)
                las[name] = a.astype(target, copy=False)
        try:
            self._writer.write_points(las.points)
        except (laspy.errors.LaspyException, ValueError) as exc:
            raise MmsoldError(f"{self.path}: cannot write LAS/LAZ ({str(exc).strip().splitlines()[0]})") from exc
        self.rows += len(pos)

    def close(self) -> None:
        """Finish the file: laspy writes the point count, the bounds and (LAS 1.4) the EVLRs."""
        if self._writer is None:  # no block came: an empty file with the given header
            from .cloud import PointCloud

            self.write(PointCloud(np.zeros((0, 3))))
        writer, self._writer = self._writer, False
        if writer:
            if self.header.version.minor >= 4 and self.header.evlrs:
                writer.write_evlrs(self.header.evlrs)
            writer.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self._writer:  # the caller's error wins; the half-written file is the caller's temporary to remove
            with contextlib.suppress(Exception):
                self._writer.close()
