"""Point clouds and meshes in PLY and OBJ, through trimesh.

trimesh is numpy-only and reads ASCII and binary (both endians) PLY with any
extra vertex properties, and OBJ with ``i/t/n`` faces; we only add the checks
and the messages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MmsoldError

__all__ = ["read_vertices", "read_mesh", "write_ply"]


def _load(path: Path):
    import trimesh

    try:
        return trimesh.load(str(path), process=False, force=None)
    except Exception as exc:  # trimesh raises many kinds for a broken file
        raise MmsoldError(f"{path}: cannot read as {path.suffix[1:]} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc


def read_vertices(path: str | Path) -> np.ndarray:
    """Vertex positions of a PLY or OBJ file, as an array of shape (n, 3)."""
    path = Path(path)
    obj = _load(path)
    if hasattr(obj, "geometry"):  # a Scene: concatenate its parts
        parts = [np.asarray(g.vertices) for g in obj.geometry.values() if hasattr(g, "vertices")]
        v = np.concatenate(parts) if parts else np.empty((0, 3))
    else:
        v = np.asarray(getattr(obj, "vertices", np.empty((0, 3))))
    if v.size == 0:
        raise MmsoldError(f"{path}: has no vertex positions (x, y, z)")
    return v.astype(np.float64)


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) and triangles (m, 3) of a mesh file."""
    path = Path(path)
    obj = _load(path)
    if hasattr(obj, "geometry"):
        import trimesh

        obj = trimesh.util.concatenate(list(obj.geometry.values()))
    faces = np.asarray(getattr(obj, "faces", np.empty((0, 3), dtype=np.int64)))
    if faces.size == 0:
        raise MmsoldError(f"{path}: has no triangles; a mesh with faces is needed")
    return np.asarray(obj.vertices, dtype=np.float64), faces.astype(np.int64)


def write_ply(path: str | Path, X: np.ndarray, *, binary: bool = True) -> None:
    """Write points as a PLY vertex list (binary little-endian by default)."""
    X = np.ascontiguousarray(X, dtype="<f4")
    n = X.shape[0]
    header = (
        "ply\n"
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0\n"
        "comment written by mmsold\n"
        f"element vertex {n}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "end_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(X.tobytes())
        else:
            np.savetxt(fh, X, fmt="%.9g")
