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
The coordinates are written as doubles (exact to the input's digits at UTM
magnitudes) and the file's GUIDs are derived from its content, so a seeded
run gives the same bytes.
Fields pye57 cannot read (time stamps, return indices, spherical-only
extras) are not carried.

Needs ``pip install "mmsold[e57]"`` (pye57; its wheels bundle libE57Format).
"""

from __future__ import annotations

import hashlib
import os
import uuid
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
#: The order of a written scan's point fields (its prototype's), coordinates first.
_FIELD_ORDER = ("cartesianX", "cartesianY", "cartesianZ", *E57_ATTRIBUTES)


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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmsoldError(f"{path}: cannot read as E57 ({first})") from exc
    try:
        scans, origins = [], []
        for i in range(f.scan_count):
            header = f.get_header(i)
            if header.point_count == 0:  # libE57Format refuses the zero-capacity buffers pye57 would read it with
                scans.append({k: np.zeros(0) for k in _FIELD_ORDER if k.startswith("cartesian")
                              or k in header.point_fields})
            else:
                scans.append(f.read_scan(i, intensity=True, colors=True, row_column=True, transform=True,
                                         ignore_missing_fields=True))
            origins.append(np.asarray(header.translation, dtype=np.float64))  # the scanner, common frame
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
    return PointCloud(pos.astype(np.float64), attrs, ".e57",
                      {"e57_scans": len(scans), "scan_origins": np.array(origins)})


#: Fixed namespace of the GUIDs an E57 file written here carries (name-based UUIDs, RFC 4122 version 5).
_GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mmsold/mmsold/e57")
#: Points handed to libE57Format per write call: bounds the copy buffers, not the file.
_CHUNK = 1 << 20


def _content_digest(cloud, written, origins, index) -> str:
    """A SHA-256 of everything :func:`write_e57` stores, from which the file's GUIDs are derived.

    E57 wants a GUID for the file and for every scan; pye57 draws them at random (uuid4), so two identical runs
    gave different bytes.  Name-based GUIDs from the content keep a seeded run byte-reproducible, and still differ
    between files that hold different points."""
    h = hashlib.sha256()
    for a in (cloud.positions, origins, index):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    for name in written:
        a = np.ascontiguousarray(cloud.attributes[name])
        h.update(f"{name}:{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _guid(digest: str, what: str) -> str:
    """A GUID string, braced as E57 producers write them, for ``what`` (the file, a scan) of the content ``digest``."""
    return "{%s}" % uuid.uuid5(_GUID_NAMESPACE, f"{digest}/{what}")


def write_e57(path: str | os.PathLike, cloud) -> None:
    """Write a PointCloud as an E57 file, in place (attributes other than :func:`e57_attributes` are left out).

    A cloud read from a file of several scans (``meta["scan_origins"]`` and a ``scan_index`` per point) is written
    as one scan per station again, each placed by a pose at its scanner's position (axes along the common
    frame's), so its stations survive a round trip; any other cloud as one scan (with its scanner's pose when
    it came from a one-scan file).  Coordinates are stored as doubles (pye57's own writer stores singles, which
    at UTM-sized coordinates round to 0.125 m), and the GUIDs are derived from the content, so the same cloud
    gives the same bytes."""
    pye57 = require_pye57()
    libe57 = pye57.libe57
    path = Path(path)
    written = e57_attributes(list(cloud.attributes))
    colour = [cloud.attributes[c] for c in ("red", "green", "blue") if c in written]
    wide = any(np.max(c, initial=0) > 255 for c in colour)  # a 16-bit colour (LAS's): E57 colours here are 0–255
    origins = cloud.meta.get("scan_origins")
    origins = np.zeros((1, 3)) if origins is None else np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    index = cloud.attributes.get("scan_index")
    if len(origins) > 1 and index is None:  # the stations' points are no longer told apart: one scan, no pose
        origins = np.zeros((1, 3))
    index = np.zeros(len(cloud), np.int64) if len(origins) == 1 else np.asarray(index, dtype=np.int64)
    digest = _content_digest(cloud, written, origins, index)
    imf = libe57.ImageFile(str(path), "w")
    try:
        _write_root(libe57, imf, _guid(digest, "file"))
        data3d = imf.root()["data3D"]
        for k, origin in enumerate(origins):
            rows = np.flatnonzero(index == k)
            if len(origins) > 1 and not rows.size:
                continue  # a station none of whose points is in the cloud
            pos = cloud.positions[rows]
            local = pos - origin
            data = {"cartesianX": local[:, 0], "cartesianY": local[:, 1], "cartesianZ": local[:, 2]}
            for field, typ in E57_ATTRIBUTES.items():
                name = _NAMES[field]
                if name in written:
                    a = np.asarray(cloud.attributes[name])[rows]
                    if wide and name in ("red", "green", "blue"):
                        a = np.asarray(a, dtype=np.float64) / 257.0
                    if np.dtype(typ).kind == "u" and a.dtype.kind == "f":
                        a = np.clip(np.rint(a), 0, np.iinfo(typ).max)
                    data[field] = a.astype(typ)
            _write_scan(libe57, imf, data3d, data, name=f"scan {k}", guid=_guid(digest, f"scan {k}"), origin=origin,
                        bounds=(pos.min(axis=0), pos.max(axis=0)) if len(pos) else None)
    finally:
        imf.close()


def _write_root(libe57, imf, guid: str) -> None:
    """The E57 root: the fields ASTM E2807 requires, as pye57 lays them out, without a (made-up) creation time."""
    root = imf.root()
    imf.extensionsAdd("", libe57.E57_V1_0_URI)
    root.set("formatName", libe57.StringNode(imf, "ASTM E57 3D Imaging Data File"))
    root.set("guid", libe57.StringNode(imf, guid))
    root.set("versionMajor", libe57.IntegerNode(imf, libe57.E57_FORMAT_MAJOR))
    root.set("versionMinor", libe57.IntegerNode(imf, libe57.E57_FORMAT_MINOR))
    root.set("e57LibraryVersion", libe57.StringNode(imf, libe57.E57_LIBRARY_ID))
    root.set("coordinateMetadata", libe57.StringNode(imf, ""))
    root.set("data3D", libe57.VectorNode(imf, True))
    root.set("images2D", libe57.VectorNode(imf, True))


def _write_scan(libe57, imf, data3d, data: dict, *, name: str, guid: str, origin, bounds) -> None:
    """Append one scan (``data``: pye57's field names, coordinates relative to ``origin``) to ``data3d``.

    Our own version of ``pye57.E57.write_scan_raw``: that one declares the coordinates single precision and
    gives every scan a random GUID.  Here the coordinates are doubles; intensity stays single (the float32 it is
    read as), colours and grid indices integers, as pye57 declares them, so pye57 and libE57Format readers take
    the file as before.  ``bounds`` is the lowest and highest corner in the common frame (None: no points)."""
    n = len(data["cartesianX"])
    scan = libe57.StructureNode(imf)
    scan.set("guid", libe57.StringNode(imf, guid))
    scan.set("name", libe57.StringNode(imf, name))
    scan.set("description", libe57.StringNode(imf, "written by mmsold"))
    if "rowIndex" in data and n:
        ibox = libe57.StructureNode(imf)
        for key, field, f in (("rowMinimum", "rowIndex", np.min), ("rowMaximum", "rowIndex", np.max),
                              ("columnMinimum", "columnIndex", np.min), ("columnMaximum", "columnIndex", np.max)):
            ibox.set(key, libe57.IntegerNode(imf, int(f(data[field]))))
        scan.set("indexBounds", ibox)
    if "intensity" in data and n:
        box = libe57.StructureNode(imf)
        box.set("intensityMinimum", libe57.FloatNode(imf, float(np.min(data["intensity"]))))
        box.set("intensityMaximum", libe57.FloatNode(imf, float(np.max(data["intensity"]))))
        scan.set("intensityLimits", box)
    if "colorRed" in data:
        box = libe57.StructureNode(imf)
        for c in ("Red", "Green", "Blue"):
            box.set(f"color{c}Minimum", libe57.IntegerNode(imf, 0))
            box.set(f"color{c}Maximum", libe57.IntegerNode(imf, 255))
        scan.set("colorLimits", box)
    if bounds is not None:
        box = libe57.StructureNode(imf)
        for axis, lo, hi in zip("xyz", *bounds):
            box.set(f"{axis}Minimum", libe57.FloatNode(imf, float(lo)))
            box.set(f"{axis}Maximum", libe57.FloatNode(imf, float(hi)))
        scan.set("cartesianBounds", box)
    pose = libe57.StructureNode(imf)
    rotation = libe57.StructureNode(imf)
    for key, v in zip("wxyz", (1.0, 0.0, 0.0, 0.0)):  # the identity: axes along the common frame's
        rotation.set(key, libe57.FloatNode(imf, v))
    translation = libe57.StructureNode(imf)
    for key, v in zip("xyz", origin):
        translation.set(key, libe57.FloatNode(imf, float(v)))
    pose.set("rotation", rotation)
    pose.set("translation", translation)
    scan.set("pose", pose)

    proto = libe57.StructureNode(imf)
    for field in ("cartesianX", "cartesianY", "cartesianZ"):
        a = data[field]
        # double precision: single would keep only ~7 digits, 0.125 m at y = 4,000,000
        lo, hi = (float(a.min()), float(a.max())) if n else (0.0, 0.0)
        proto.set(field, libe57.FloatNode(imf, lo, libe57.E57_DOUBLE, lo, hi))
    if "intensity" in data:
        lo, hi = (float(np.min(data["intensity"])), float(np.max(data["intensity"]))) if n else (0.0, 0.0)
        proto.set("intensity", libe57.FloatNode(imf, lo, libe57.E57_SINGLE, lo, hi))
    for field in ("colorRed", "colorGreen", "colorBlue"):
        if field in data:
            proto.set(field, libe57.IntegerNode(imf, 0, 0, 255))
    for field in ("rowIndex", "columnIndex"):
        if field in data:
            lo, hi = (int(np.min(data[field])), int(np.max(data[field]))) if n else (0, 0)
            proto.set(field, libe57.IntegerNode(imf, lo, lo, hi))
    fields = [f for f in _FIELD_ORDER if f in data]
    points = libe57.CompressedVectorNode(imf, proto, libe57.VectorNode(imf, True))
    scan.set("points", points)
    data3d.append(scan)

    capacity = max(1, min(n, _CHUNK))
    arrays = {f: np.empty(capacity, dtype=np.float64 if f.startswith("cartesian") else E57_ATTRIBUTES[f])
              for f in fields}
    buffers = libe57.VectorSourceDestBuffer()
    for f in fields:  # doConversion: the uint8/uint16 arrays fill libE57's integer fields
        buffers.append(libe57.SourceDestBuffer(imf, f, arrays[f], capacity, True, True))
    writer = points.writer(buffers)
    try:
        for start in range(0, n, capacity):
            k = min(capacity, n - start)
            for f in fields:
                arrays[f][:k] = data[f][start:start + k]
            writer.write(k)
    finally:
        writer.close()
