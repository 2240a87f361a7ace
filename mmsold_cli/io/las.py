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
grid), the same CRS records and the same extra-bytes dimensions (less those
the cloud no longer carries, e.g. dropped by ``--drop-attributes``).  An 8-bit
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
import re
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["read_las", "write_las", "LasWriter", "require_laspy", "check_las_grid"]

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
    except _read_errors(laspy) as exc:
        raise _unreadable(path, exc) from exc
    pos = np.stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64),
                    np.asarray(las.z, dtype=np.float64)], axis=1)
    attrs = {}
    for name in las.point_format.dimension_names:
        if name in _COORDS:
            continue
        attrs[name] = np.array(las[name])  # bit fields come back as views: copy them to plain arrays
    return PointCloud(pos, attrs, path.suffix.lower(), {"las_header": las.header})


def _read_errors(laspy) -> tuple:
    """What a damaged file raises while it is read: laspy's errors, and lazrs's for a LAZ file's compressed
    chunks (a truncated download)."""
    kinds = [laspy.errors.LaspyException, OSError, ValueError]
    try:
        import lazrs

        kinds.append(lazrs.LazrsError)
    except (ImportError, AttributeError):
        pass
    return tuple(kinds)


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
    except _read_errors(laspy) as exc:
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
        Attributes the point format has and the cloud lacks are written as
        zeros, extra-bytes dimensions of the header the cloud lacks are left
        out; attributes the format lacks are added as extra-bytes dimensions.
    """
    with LasWriter(path, header=header, bounds=_bounds(cloud.positions)) as w:
        w.write(cloud)


#: A temporary of :func:`mmsold_cli.io.arrays.atomic_paths`: ``.NAME.XXXXXXXX.part.EXT`` (mkstemp's 8 characters)
#: next to its target NAME, which ends in .EXT.
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.part(?P<ext>\.[^.]*)$")


def _shown(path) -> Path:
    """The name to put in a message about ``path``: its target when it is a temporary of ``atomic_paths``.

    The writers only see the temporary, whose hidden name means nothing to the user."""
    path = Path(path)
    m = _PARTIAL.match(path.name)
    if m and m["name"].endswith(m["ext"]):
        return path.with_name(m["name"])
    return path


def _num(v) -> str:
    """A plain number for a message (``0.001``, ``2147483.647``), never a numpy repr."""
    return format(float(v), ".12g")


def check_las_grid(header, lo, hi, path, *, what: str = "the points") -> None:
    """Refuse coordinates from ``lo`` to ``hi`` (per axis) that ``header``'s integer grid cannot hold.

    LAS stores ``X = round((x - offset) / scale)`` as a 32-bit integer, so a reused header (the input's, for the
    output) holds only ``offset + scale * [-2**31, 2**31 - 1]`` on each axis.  Call it before any
    work with the box the output can reach (the input's bounding box grown by a margin): the error then comes
    at once, not after the densification.  :class:`LasWriter` calls it on every block it writes.

    Parameters
    ----------
    header : laspy.LasHeader or None
        The header the output will reuse (``meta["las_header"]``); None (a header chosen from the points'
        own bounds) holds anything and is not checked.
    lo, hi : array of 3
        Lowest and highest coordinates per axis.
    path : str or path
        The output, named in the message (a temporary of ``atomic_paths`` is named by its target).
    what : str
        What ``lo`` … ``hi`` bound, for the message (it opens with it: "the points span x …").

    Raises
    ------
    MmsoldError
        Naming the axes that do not fit, their range, the grid's scale, offset and limits.
    """
    if header is None:
        return
    lo, hi = np.asarray(lo, dtype=np.float64).reshape(3), np.asarray(hi, dtype=np.float64).reshape(3)
    scale, offset = np.asarray(header.scales, dtype=np.float64), np.asarray(header.offsets, dtype=np.float64)
    i32 = np.iinfo(np.int32)
    # laspy rounds to the nearest integer; the box fits when both its ends do (scale > 0: monotonic)
    bad = [k for k in range(3) if not (np.rint((lo[k] - offset[k]) / scale[k]) >= i32.min
                                       and np.rint((hi[k] - offset[k]) / scale[k]) <= i32.max)]
    if not bad:
        return
    reach = ", ".join(f"{'xyz'[k]} {_num(lo[k])} to {_num(hi[k])}" for k in bad)
    grid = ", ".join(f"{'xyz'[k]} {_num(offset[k] + scale[k] * i32.min)} to {_num(offset[k] + scale[k] * i32.max)} "
                     f"(scale {_num(scale[k])}, offset {_num(offset[k])})" for k in bad)
    raise MmsoldError(f"{_shown(path)}: {what} span {reach}, beyond what the LAS header's 32-bit integer grid "
                      f"holds: {grid}; write .ply or .e57 instead, or re-grid the input with a larger scale "
                      f"or a nearer offset (e.g. PDAL, las2las)")


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
            # an extra-bytes dimension the cloud does not carry (dropped by --drop-attributes) is left out, not
            # written as zeros; the point format's own dimensions cannot be removed and stay
            gone = [name for name in header.point_format.extra_dimension_names if name not in cloud.attributes]
            if gone:
                header.remove_extra_dims(gone)
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
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MmsoldError(f"{_shown(self.path)}: cannot write LAS/LAZ ({first})") from exc

    def write(self, cloud) -> None:
        """Append the points of ``cloud`` (a PointCloud)."""
        laspy = self._laspy
        if self._writer is None:
            self._open(cloud)
        elif list(cloud.attributes) != self._names:
            raise ValueError(f"{self.path}: a block has attributes {list(cloud.attributes)}, the file {self._names}")
        header, pos = self.header, cloud.positions
        if len(pos):  # the real coordinates must fit the integer grid: X = (x - offset) / scale in int32
            check_las_grid(header, pos.min(axis=0), pos.max(axis=0), self.path)
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
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MmsoldError(f"{_shown(self.path)}: cannot write LAS/LAZ ({first})") from exc
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
