"""Point clouds and meshes as scanning tools keep them: PLY, OBJ, XYZ/CSV text.

Reading goes through trimesh, which is numpy-only and parses ASCII and binary
(little- and big-endian) PLY with any extra vertex properties (normals,
colours, intensities, labels: all ignored here) and OBJ with ``i/t/n`` faces.
This module adds the checks and the messages:

* a file whose vertex element has no ``x``, ``y``, ``z`` properties, or no
  vertices at all, is refused with a message saying so;
* OBJ vertices are read in file order, including vertices no face uses
  (trimesh drops or duplicates them unless asked to keep the order);
* text point clouds (``.xyz``, ``.csv``, ``.txt``) keep the columns named
  ``x, y, z`` in a header line, or for ``.xyz`` the first three columns, so
  trailing normals or colours are ignored.

Writing is our own (a header and one ``numpy`` buffer): ASCII or binary PLY in
either byte order, float32 or float64 coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["CLOUD_EXTENSIONS", "PLY_FORMATS", "read_mesh", "read_point_cloud", "read_vertices", "write_ply"]

#: PLY encodings :func:`write_ply` can write.
PLY_FORMATS = ("binary_little_endian", "binary_big_endian", "ascii")
#: Extensions :func:`read_point_cloud` reads.
CLOUD_EXTENSIONS = (".ply", ".obj", ".xyz", ".pts", ".csv", ".txt", ".npy", ".npz", ".h5", ".hdf5")


def _short(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MmsoldError(f"{path}: no such file")
    if path.is_dir():
        raise MmsoldError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise MmsoldError(f"{path}: is empty (0 bytes)")


def _ply_header(path: Path) -> list[str]:
    """The header lines of a PLY file (to explain what is missing)."""
    lines = []
    with open(path, "rb") as fh:
        for _ in range(1000):
            raw = fh.readline()
            if not raw:
                break
            line = raw.decode("ascii", errors="replace").strip()
            lines.append(line)
            if line == "end_header":
                break
    return lines


def _ply_vertex_properties(header: list[str]) -> list[str] | None:
    """Names of the vertex element's properties, or None without a vertex element."""
    props = None
    for line in header:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "element":
            if props is not None:
                break
            if len(parts) >= 2 and parts[1] == "vertex":
                props = []
        elif parts[0] == "property" and props is not None and len(parts) >= 3:
            props.append(parts[-1])
    return props


def _load(path: Path, **kw):
    import trimesh

    _check_file(path)
    ext = path.suffix.lower()
    if ext == ".ply":
        with open(path, "rb") as fh:
            if fh.read(3) != b"ply":
                raise MmsoldError(f"{path}: not a PLY file (it must start with 'ply')")
        props = _ply_vertex_properties(_ply_header(path))
        if props is None:
            raise MmsoldError(f"{path}: has no vertex element, so no positions (x, y, z)")
        missing = [c for c in "xyz" if c not in props]
        if missing:
            raise MmsoldError(
                f"{path}: vertex element has no position propert{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(missing)} (it has: {', '.join(props) or 'none'})"
            )
    try:
        return trimesh.load(str(path), process=False, force=None, **kw)
    except MmsoldError:
        raise
    except Exception as exc:  # trimesh raises many kinds for a broken file
        raise MmsoldError(f"{path}: cannot read as {ext[1:]} ({_short(exc)})") from exc


def _vertices_of(obj) -> np.ndarray:
    if hasattr(obj, "geometry"):  # a Scene: concatenate its parts
        parts = [np.asarray(g.vertices) for g in obj.geometry.values() if hasattr(g, "vertices")]
        return np.concatenate(parts) if parts else np.empty((0, 3))
    return np.asarray(getattr(obj, "vertices", np.empty((0, 3))))


def _obj_vertices(path: Path) -> np.ndarray:
    """The ``v x y z [w | r g b]`` lines of an OBJ file, in order.

    trimesh's OBJ loader builds a mesh: it drops vertices no face uses and
    splits those with several texture coordinates, so point clouds are read
    from the ``v`` lines directly.
    """
    _check_file(path)
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.startswith(("v ", "v\t")):
                parts = raw.split()
                try:
                    rows.append((float(parts[1]), float(parts[2]), float(parts[3])))
                except (IndexError, ValueError):
                    raise MmsoldError(f"{path}: line {lineno} is not a vertex 'v x y z': {raw.strip()[:60]!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def read_vertices(path: str | os.PathLike) -> np.ndarray:
    """Vertex positions of a PLY or OBJ file.

    Parameters
    ----------
    path : str or path
        ``.ply`` (ASCII or binary, either byte order, extra properties
        ignored) or ``.obj`` (``v`` lines, in file order).

    Returns
    -------
    V : array of shape (n, 3), float64
    """
    path = Path(path)
    v = _obj_vertices(path) if path.suffix.lower() == ".obj" else _vertices_of(_load(path))
    if v.size == 0:
        raise MmsoldError(f"{path}: has no vertex positions (x, y, z)")
    return np.asarray(v, dtype=np.float64).reshape(-1, 3)


def read_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a mesh file (PLY or OBJ; polygons are triangulated).

    Returns
    -------
    V : array of shape (n, 3), float64
    F : array of shape (m, 3), int64
    """
    path = Path(path)
    obj = _load(path)
    if hasattr(obj, "geometry"):
        import trimesh

        parts = [g for g in obj.geometry.values() if hasattr(g, "faces")]
        obj = trimesh.util.concatenate(parts) if parts else None
    faces = np.asarray(getattr(obj, "faces", np.empty((0, 3), dtype=np.int64)))
    if obj is None or faces.size == 0:
        raise MmsoldError(f"{path}: has no triangles; a mesh with faces is needed")
    return np.asarray(obj.vertices, dtype=np.float64), faces.astype(np.int64)


def read_point_cloud(spec: str | os.PathLike) -> np.ndarray:
    """A 3-D point cloud from any file users keep one in.

    Parameters
    ----------
    spec : str or path
        ``.ply``/``.obj`` (vertex positions), ``.xyz``/``.txt``/``.csv`` (the
        columns a header line names x, y, z, else the first three; a
        headerless ``.csv`` must have three: :mod:`mmsold_cli.io.text`), or ``.npy``/``.npz[:key]``/
        ``.h5[:/dataset]`` arrays of shape (n, 3).

    Returns
    -------
    X : array of shape (n, 3), float64, finite
    """
    from ..validation import check_points
    from .arrays import read_array, split_path_key

    path, _ = split_path_key(spec)
    ext = path.suffix.lower()
    if ext not in CLOUD_EXTENSIONS:
        raise MmsoldError(f"{path}: unknown point-cloud extension {ext or '(none)'!r}; "
                          f"expected one of {', '.join(CLOUD_EXTENSIONS)}")
    if ext == ".ply":  # our reader: it checks the vertex count (trimesh reads a truncated ASCII file silently)
        from .ply import read_ply

        X = read_ply(path).positions
        if X.shape[0] == 0:
            raise MmsoldError(f"{path}: has no vertex positions (x, y, z)")
    elif ext == ".obj":
        X = read_vertices(path)
    else:
        X = np.asarray(read_array(spec))
        if ext in (".csv", ".txt") and X.ndim == 2 and X.shape[1] > 3:
            from .text import text_positions

            X = text_positions(path, X)
        if X.ndim == 2 and X.shape[0] and X.shape[1] != 3:
            raise MmsoldError(f"{spec}: expected 3-D points (x, y, z), got {X.shape[1]} columns")
        if X.size == 0:
            raise MmsoldError(f"{spec}: has no point positions (x, y, z)")
    return check_points(X, name=str(spec), dim=3)


def write_ply(path: str | os.PathLike, X: np.ndarray, *, fmt: str = "binary_little_endian",
              dtype: str = "auto", binary: bool | None = None) -> None:
    """Write points as a PLY vertex list.

    Parameters
    ----------
    path : str or path
        Written in place; use :func:`mmsold_cli.io.arrays.write_points` for an atomic write.
    X : array of shape (n, 3)
    fmt : {"binary_little_endian", "binary_big_endian", "ascii"}
    dtype : {"auto", "float", "double"}
        Coordinate type.  ``auto`` writes float32 unless that would move some
        coordinate by more than 1e-6 of the cloud's extent (e.g. georeferenced
        scans far from the origin), then float64.
    binary : bool, optional
        Shorthand kept for older callers: False means ``fmt="ascii"``.
    """
    if binary is not None:
        fmt = "binary_little_endian" if binary else "ascii"
    if fmt not in PLY_FORMATS:
        raise MmsoldError(f"PLY format must be one of {', '.join(PLY_FORMATS)}, got {fmt!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 3:
        raise MmsoldError(f"{path}: PLY output needs 3-D points, got shape {X.shape}")
    if dtype == "auto":
        extent = float(np.ptp(X, axis=0).max()) if X.size else 0.0
        err = float(np.abs(X.astype(np.float32) - X).max()) if X.size else 0.0
        dtype = "float" if err <= 1e-6 * max(extent, np.finfo(float).tiny) else "double"
    if dtype not in ("float", "double"):
        raise MmsoldError(f"PLY dtype must be auto, float or double, got {dtype!r}")
    order = ">" if fmt == "binary_big_endian" else "<"
    np_type = np.dtype(f"{order}f{4 if dtype == 'float' else 8}")
    header = (
        "ply\n"
        f"format {fmt} 1.0\n"
        "comment written by mmsold\n"
        f"element vertex {X.shape[0]}\n"
        f"property {dtype} x\nproperty {dtype} y\nproperty {dtype} z\n"
        "end_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        if fmt == "ascii":
            # float: round to float32 first, so a float32 reader gets these values exactly
            np.savetxt(fh, X.astype(np.float32) if dtype == "float" else X, fmt="%.9g" if dtype == "float" else "%.17g")
        else:
            fh.write(np.ascontiguousarray(X, dtype=np_type).tobytes())

