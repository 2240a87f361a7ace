"""E57 point clouds (ASTM E2807) through pye57, an optional dependency.

An E57 file holds one or more scans, each with its own pose (rotation and
translation into the file's common frame) and per-point fields.  Reading
takes every scan, moves its points into the common frame, drops the points a
scan marks invalid and concatenates the scans; ``intensity``, the colour
channels ``colorRed/Green/Blue`` (as ``red``, ``green``, ``blue``, the names
the other formats give a colour, so it survives a conversion) and the grid
indices ``rowIndex`` / ``columnIndex`` become attributes when every scan has
them, and a file of several scans gives each point its ``scan_index``.  The scanners' positions
(each pose's translation) are kept in ``meta["scan_origins"]``, for normals
that face the scanner that saw them (``--normals-toward scanner``).  Writing stores
the positions and those of the same attributes the cloud has (colours and grid
indices only as complete groups, as they are read; a 16-bit colour, as LAS
stores one, scaled to pye57's 8 bits), one scan per station when the cloud
came from several (:func:`write_e57`); :func:`e57_attributes` says which.
Fields pye57 cannot read (time stamps, return indices, spherical-only
extras) are not carried.

Needs ``pip install "mmsold[e57]"`` (pye57; its wheels bundle libE57Format).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["read_e57", "write_e57", "require_pye57", "e57_attributes", "E57_ATTRIBUTES"]

#: Per-point fields carried as attributes (pye57's names), with their E57 storage types.
E57_ATTRIBUTES = {"intensity": np.float32, "colorRed": np.uint8, "colorGreen": np.uint8, "colorBlue": np.uint8,
                  "rowIndex": np.uint16, "columnIndex": np.uint16}
#: The attribute name of each E57 field (the colour under the names every other format uses).
_NAMES = {field: {"colorRed": "red", "colorGreen": "green", "colorBlue": "blue"}.get(field, field)
          for field in E57_ATTRIBUTES}
#: Fields pye57 reads and writes only together.
_GROUPS = (("intensity",), ("red", "green", "blue"), ("rowIndex", "columnIndex"))


def e57_attributes(names) -> list:
    """The attributes among ``names`` an E57 file holds (complete groups; ``scan_index`` as its scans)."""
    held = {a for group in _GROUPS if all(a in names for a in group) for a in group} | {"scan_index"}
    return [a for a in names if a in held]


def require_pye57():
    """Import pye57 or raise a one-line MmsoldError saying E57 is not supported without it."""
    try:
        import pye57
    except ImportError as exc:
        raise MmsoldError('E57 is not supported in this installation: it needs pye57 (pip install "mmsold[e57]"), '
                          "or convert the file to LAS/LAZ or PLY first, e.g. with PDAL or CloudCompare") from exc
    return pye57


def read_e57(spec: str | os.PathLike):
    """Read every scan of an E57 file into one PointCloud in the file's common frame."""
    from .cloud import PointCloud

    path = Path(spec)
    pye57 = require_pye57()
    if not path.is_file():
        raise MmsoldError(f"{path}: no such file")
    try:
        f = pye57.E57(str(path))
    except Exception as exc:  # libE57Format raises its own exception types
        raise MmsoldError(f"{path}: cannot read as E57 ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from exc
    try:
        scans, origins = [], []
        for i in range(f.scan_count):
            scans.append(f.read_scan(i, intensity=True, colors=True, row_column=True, transform=True,
                                     ignore_missing_fields=True))
            origins.append(np.asarray(f.get_header(i).translation, dtype=np.float64))  # the scanner, common frame
    except Exception as exc:
        raise MmsoldError(f"{path}: cannot read E57 scan data ({str(exc).strip().splitlines()[0]})") from exc
    finally:
        f.close()
    if not scans:
        raise MmsoldError(f"{path}: the E57 file holds no scans")
    pos = np.concatenate([np.stack([s["cartesianX"], s["cartesianY"], s["cartesianZ"]], axis=1) for s in scans])
    fields = [k for k in E57_ATTRIBUTES if all(k in s for s in scans)]
    attrs = {_NAMES[k]: np.concatenate([np.asarray(s[k]) for s in scans]).astype(E57_ATTRIBUTES[k]) for k in fields}
    if len(scans) > 1:  # which scan (station) each point came from
        attrs["scan_index"] = np.repeat(np.arange(len(scans), dtype=np.uint16), [len(s["cartesianX"]) for s in scans])
    return PointCloud(pos.astype(np.float64), attrs, ".e57", {"e57_scans": len(scans), "scan_origins": np.array(origins)})


def write_e57(path: str | os.PathLike, cloud) -> None:
    """Write a PointCloud as an E57 file, in place (attributes other than :func:`e57_attributes` are left out).

    A cloud read from a file of several scans (``meta["scan_origins"]`` and a ``scan_index`` per point) is written
    as one scan per station again, each placed by a pose at its scanner's position (axes along the common
    frame's), so its stations survive a round trip; any other cloud as one scan (with its scanner's pose when
    it came from a one-scan file)."""
    pye57 = require_pye57()
    path = Path(path)
    written = e57_attributes(list(cloud.attributes))
    colour = [cloud.attributes[c] for c in ("red", "green", "blue") if c in written]
    wide = any(np.max(c, initial=0) > 255 for c in colour)  # a 16-bit colour (LAS's): pye57 writes 0–255
    origins = cloud.meta.get("scan_origins")
    origins = np.zeros((1, 3)) if origins is None else np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    index = cloud.attributes.get("scan_index")
    if len(origins) > 1 and index is None:  # the stations' points are no longer told apart: one scan, no pose
        origins = np.zeros((1, 3))
    index = np.zeros(len(cloud), np.int64) if len(origins) == 1 else np.asarray(index, dtype=np.int64)
    f = pye57.E57(str(path), mode="w")
    try:
        for k, origin in enumerate(origins):
            rows = np.flatnonzero(index == k)
            if len(origins) > 1 and not rows.size:
                continue  # a station none of whose points is in the cloud
            local = cloud.positions[rows] - origin
            data = {"cartesianX": local[:, 0].copy(), "cartesianY": local[:, 1].copy(),
                    "cartesianZ": local[:, 2].copy()}
            for field, typ in E57_ATTRIBUTES.items():
                name = _NAMES[field]
                if name in written:
                    a = np.asarray(cloud.attributes[name])[rows]
                    if wide and name in ("red", "green", "blue"):
                        a = np.asarray(a, dtype=np.float64) / 257.0
                    if np.dtype(typ).kind == "u" and a.dtype.kind == "f":
                        a = np.clip(np.rint(a), 0, np.iinfo(typ).max)
                    data[field] = a.astype(typ)
            f.write_scan_raw(data, name=f"scan {k}", rotation=np.array([1.0, 0.0, 0.0, 0.0]), translation=origin)
    finally:
        f.close()
