"""PLY point clouds with every scalar vertex property: read and write, binary and ASCII.

A PLY file [1]_ is a header naming elements (``vertex``, ``face``, …) and
their typed properties, followed by the elements' data in order.  We read the
``vertex`` element into a :class:`~mmsold_cli.io.cloud.PointCloud`: ``x, y,
z`` become the positions and every other scalar property an attribute with its
own type (``red`` uchar, ``intensity`` float, ``label`` int, ``nx`` …).
Elements after the vertices (faces) are ignored; elements before them are
skipped when their size can be computed (binary with scalar properties, or
ASCII line by line).  List properties on the vertex element are refused.

References
----------
.. [1] G. Turk, "The PLY polygon file format", 1994
   (http://paulbourke.net/dataformats/ply/).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MmsoldError
from .arrays import RowFileWriter

__all__ = ["read_ply", "write_ply_cloud", "PlyWriter", "PLY_TYPES"]

#: PLY scalar type names and their numpy codes (both the old and the sized spellings).
PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NAME_OF = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float",
            "f8": "double"}
_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def _header(fh, path):
    first = fh.readline()
    if first.strip() != b"ply":
        raise MmsoldError(f"{path}: not a PLY file (first line {first[:20]!r}, expected 'ply')")
    fmt, elements = None, []  # elements: [name, count, [(prop, type) or (prop, None) for lists]]
    comments = []  # the file's own comment and obj_info lines (a scan's CRS, its scanner), kept for its output
    while True:
        raw = fh.readline()
        if not raw:
            raise MmsoldError(f"{path}: PLY header has no 'end_header' line")
        text = raw.decode("ascii", errors="replace")
        words = text.split()
        if words and words[0] in ("comment", "obj_info"):
            comments.append(text.strip())
            continue
        if not words:
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else ""
            if fmt not in _FORMATS:
                raise MmsoldError(f"{path}: PLY format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
        elif words[0] == "element" and len(words) == 3:
            elements.append([words[1], int(words[2]), []])
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1][2].append((words[-1], None))
            elif len(words) == 3 and words[1] in PLY_TYPES:
                elements[-1][2].append((words[2], PLY_TYPES[words[1]]))
            else:
                raise MmsoldError(f"{path}: unknown PLY property line {' '.join(words)!r}")
    if fmt is None:
        raise MmsoldError(f"{path}: PLY header has no 'format' line")
    return fmt, elements, comments


def read_ply(spec: str | os.PathLike):
    """Read the vertex element of a PLY file with all its scalar properties.

    Returns
    -------
    PointCloud
        ``meta`` holds ``ply_format`` (the encoding read) and ``ply_types``
        (property name → numpy type code) so a write reproduces the types.
    """
    from .cloud import PointCloud

    path = Path(spec)
    if not path.is_file():
        raise MmsoldError(f"{path}: no such file")
    with open(path, "rb") as fh:
        fmt, elements, comments = _header(fh, path)
        names = [e[0] for e in elements]
        if "vertex" not in names:
            raise MmsoldError(f"{path}: PLY file has no vertex element (elements: {', '.join(names) or 'none'})")
        vi = names.index("vertex")
        _, count, props = elements[vi]
        if any(t is None for _, t in props):
            raise MmsoldError(f"{path}: PLY vertex element has list properties; only scalar properties are read")
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + t) for p, t in props])
        for name, n_el, el_props in elements[:vi]:  # skip what comes before the vertices
            if fmt == "ascii":
                for _ in range(n_el):
                    fh.readline()
            elif any(t is None for _, t in el_props):
                raise MmsoldError(f"{path}: PLY element {name!r} before the vertices has list properties; cannot skip it")
            else:
                fh.seek(n_el * np.dtype([(p, order + t) for p, t in el_props]).itemsize, 1)
        if fmt == "ascii":
            lines = [fh.readline() for _ in range(count)]
            present = sum(1 for ln in lines if ln.strip())
            if present < count:
                raise MmsoldError(f"{path}: PLY file is truncated: {count} vertices announced, {present} vertex "
                                  f"lines present")
            try:
                table = np.array([ln.split()[: len(props)] for ln in lines], dtype=np.float64).reshape(count, len(props))
            except ValueError as exc:
                raise MmsoldError(f"{path}: PLY ASCII vertex lines do not hold {len(props)} numbers each") from exc
            data = np.empty(count, dtype=dtype)
            for j, (p, t) in enumerate(props):
                data[p] = table[:, j].astype(t)
        else:
            buf = fh.read(count * dtype.itemsize)
            if len(buf) < count * dtype.itemsize:
                raise MmsoldError(f"{path}: PLY file is truncated: {count} vertices of {dtype.itemsize} bytes "
                                  f"announced, {len(buf)} bytes present")
            data = np.frombuffer(buf, dtype=dtype, count=count)
    fields = [p for p, _ in props]
    missing = [c for c in "xyz" if c not in fields]
    if missing:
        raise MmsoldError(f"{path}: PLY vertex element has no {', '.join(missing)} properties (no position "
                          f"properties: x, y, z are needed; it has {', '.join(fields)})")
    pos = np.stack([data[c].astype(np.float64) for c in "xyz"], axis=1)
    attrs = {p: data[p].astype(data[p].dtype.newbyteorder("=")) for p in fields if p not in "xyz"}
    types = {p: t for p, t in props}
    return PointCloud(pos, attrs, ".ply", {"ply_format": fmt, "ply_types": types, "ply_comments": comments})


def _columns(cloud, types: dict) -> list:
    """The vertex properties a cloud is written with: ``(property name, numpy code, column)`` in file order.

    Positions are ``double`` unless ``types`` says otherwise; each attribute keeps its array type, or the
    type in ``types`` when it names one; a type PLY lacks becomes the nearest it has.
    """
    cols = []
    for j, c in enumerate("xyz"):
        cols.append((c, types.get(c, "f8"), cloud.positions[:, j]))
    for name, a in cloud.attributes.items():
        a = np.asarray(a)
        parts = [(name, a)] if a.ndim == 1 else [(f"{name}_{i}", a[:, i]) for i in range(a.shape[1])]
        for pname, col in parts:
            code = types.get(pname, col.dtype.str[1:])
            if code not in _NAME_OF:
                if col.dtype.kind == "b":
                    code = "u1"
                elif col.dtype.kind in "iu":
                    code = "i4" if col.dtype.kind == "i" else "u4"
                else:
                    code = "f8"
            cols.append((pname, code, col))
    return cols


def _header_bytes(fmt: str, n: int, cols, comments=()) -> bytes:
    header = ["ply", f"format {fmt} 1.0", *comments, "comment written by mmsold", f"element vertex {n}"]
    header += [f"property {_NAME_OF[code]} {name}" for name, code, _ in cols]
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii")


def _write_rows(fh, fmt: str, cols) -> None:
    """Encode one block of vertices (the columns of :func:`_columns`) to an open file."""
    order = ">" if fmt == "binary_big_endian" else "<"
    n = len(cols[0][2])
    data = np.empty(n, dtype=[(name, order + code) for name, code, _ in cols])
    for name, code, col in cols:
        if code[0] in "iu":
            info = np.iinfo(code)
            col = np.clip(np.rint(col) if col.dtype.kind == "f" else col, info.min, info.max)
        data[name] = col
    if fmt == "ascii":
        fmts = " ".join("%d" if code[0] in "iu" else ("%.9g" if code == "f4" else "%.17g") for _, code, _ in cols)
        np.savetxt(fh, data, fmt=fmts)
    else:
        fh.write(data.tobytes())


def write_ply_cloud(path: str | os.PathLike, cloud, *, fmt: str = "binary_little_endian", types: dict | None = None,
                    comments=()):
    """Write a PointCloud as a PLY vertex list (in place; :func:`mmsold_cli.io.cloud.write_cloud` is atomic).

    Positions are written as ``double`` unless ``types`` says ``float``
    (the input's type); each attribute keeps its array type, or the type in
    ``types`` when it names one.  Attributes of shape (n, c) become properties
    ``name_0 … name_{c-1}``.  ``comments``: header lines (``comment …``, ``obj_info …``) written before ours.
    """
    with PlyWriter(path, len(cloud), fmt=fmt, types=types, comments=comments) as w:
        w.write(cloud)


class PlyWriter(RowFileWriter):
    """A PLY vertex list of ``n`` points written block by block: the bytes of :func:`write_ply_cloud`.

    The header (the vertex count and the property list) is written with the
    first block, whose attributes fix the properties; later blocks must have
    the same attributes.  Use it on a temporary path (it writes in place).
    """

    def __init__(self, path: str | os.PathLike, n: int, *, fmt: str = "binary_little_endian",
                 types: dict | None = None, comments=()):
        if fmt not in _FORMATS:
            raise MmsoldError(f"PLY format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
        self.path, self.n, self.fmt, self.types = Path(path), int(n), fmt, dict(types or {})
        self.comments = [c for c in comments if c != "comment written by mmsold"]  # ours once, not once a pass
        self.rows, self._props = 0, None
        self._fh = open(self.path, "wb")

    def write(self, cloud) -> None:
        """Append the points of ``cloud`` (a PointCloud)."""
        cols = _columns(cloud, self.types)
        props = [(name, code) for name, code, _ in cols]
        if self._props is None:
            self._props = props
            self._fh.write(_header_bytes(self.fmt, self.n, cols, self.comments))
        elif props != self._props:
            raise ValueError(f"{self.path}: a block has properties {props}, the file {self._props}")
        if self.rows + len(cloud) > self.n:
            raise ValueError(f"{self.path}: more than the {self.n} vertices declared")
        if len(cloud):
            _write_rows(self._fh, self.fmt, cols)
        self.rows += len(cloud)

    unit = "vertices"

    def _expected(self) -> int:
        return self.n

    def _complete(self) -> bool:
        return self._props is not None and self.rows == self.n

