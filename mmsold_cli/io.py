"""Reading and writing point sets.

Formats by extension: ``.npy``, ``.npz`` (``file.npz:key``), ``.h5``/``.hdf5``
(``file.h5:/group/name``), ``.csv``/``.txt``/``.xyz`` (text, one point a row),
``.ply`` and ``.obj`` (vertex positions, through trimesh).  Every writer goes
to a temporary file in the target folder and is moved into place with
:func:`os.replace` only once complete, so a crash or Ctrl-C never leaves a
half-written output.  Nothing here unpickles: ``np.load`` runs with
``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import MmsoldError

__all__ = [
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "split_path_key",
    "read_points",
    "read_array",
    "write_points",
    "atomic_path",
    "check_output_path",
]

READ_EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5", ".csv", ".txt", ".xyz", ".ply", ".obj")
WRITE_EXTENSIONS = (".npy", ".h5", ".hdf5", ".csv", ".txt", ".xyz", ".ply")


def split_path_key(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """Split ``file.h5:/group/name`` or ``file.npz:key`` into path and key.

    A colon is only taken as a separator after a known container extension,
    so Windows drive letters and ordinary names with colons are left alone.
    """
    s = str(spec)
    for ext in (".h5:", ".hdf5:", ".npz:"):
        pos = s.lower().rfind(ext)
        if pos >= 0:
            cut = pos + len(ext) - 1
            return Path(s[:cut]), s[cut + 1 :] or None
    return Path(s), None


def _ext(path: Path) -> str:
    return path.suffix.lower()


def read_array(spec: str | os.PathLike) -> np.ndarray:
    """Read the raw array stored at ``spec`` without shape checks.

    Parameters
    ----------
    spec : str or path
        File name, optionally with ``:key`` for ``.npz`` and ``.h5`` files.

    Returns
    -------
    array : ndarray
        As stored (any shape, any dtype).
    """
    path, key = split_path_key(spec)
    ext = _ext(path)
    if ext not in READ_EXTENSIONS:
        raise MmsoldError(
            f"{path}: unknown extension {ext or '(none)'!r}; expected one of {', '.join(READ_EXTENSIONS)}"
        )
    if not path.exists():
        raise MmsoldError(f"{path}: no such file")
    if path.is_dir():
        raise MmsoldError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise MmsoldError(f"{path}: file is not readable (permission denied)")
    try:
        if ext == ".npy":
            return _read_npy(path)
        if ext == ".npz":
            return _read_npz(path, key)
        if ext in (".h5", ".hdf5"):
            return _read_h5(path, key)
        if ext in (".csv", ".txt", ".xyz"):
            return _read_text(path)
        return _read_mesh_vertices(path)
    except MmsoldError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise MmsoldError(f"{path}: cannot read as {ext[1:]} ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise MmsoldError(
                f"{path}: holds pickled Python objects, which mmsold refuses to load; "
                "save a plain numeric array"
            ) from exc
        raise


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if key is None:
            if len(keys) != 1:
                raise MmsoldError(
                    f"{path}: holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    f"choose one as {path}:KEY"
                )
            key = keys[0]
        if key not in keys:
            raise MmsoldError(f"{path}: no array {key!r}; it holds {', '.join(keys) or 'none'}")
        try:
            return z[key]
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise MmsoldError(
                    f"{path}:{key}: holds pickled Python objects, which mmsold refuses to load"
                ) from exc
            raise


def _h5_datasets(f) -> list[str]:
    import h5py

    names: list[str] = []
    f.visititems(lambda n, o: names.append("/" + n) if isinstance(o, h5py.Dataset) else None)
    return names


def _read_h5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MmsoldError(f"{path}: not a readable HDF5 file ({_short(exc)})") from exc
    with f:
        names = _h5_datasets(f)
        if key is None:
            if len(names) != 1:
                raise MmsoldError(
                    f"{path}: holds {len(names)} datasets ({', '.join(names) or 'none'}); "
                    f"choose one as {path}:/NAME"
                )
            key = names[0]
        node = f.get(key)
        if node is None or not isinstance(node, h5py.Dataset):
            raise MmsoldError(
                f"{path}: no dataset {key!r}; datasets present: {', '.join(names) or 'none'}"
            )
        return node[()]


def _read_text(path: Path) -> np.ndarray:
    """Parse delimited numbers; a leading header line is skipped."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.strip() for ln in fh]
    rows: list[list[float]] = []
    first_data = True
    for lineno, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        fields = [s for s in line.replace(",", " ").replace(";", " ").replace("\t", " ").split(" ") if s]
        try:
            vals = [float(s) for s in fields]
        except ValueError:
            if first_data and not rows:
                first_data = False  # a header line such as "x,y,z"
                continue
            raise MmsoldError(f"{path}: line {lineno} is not numeric: {line[:60]!r}") from None
        if rows and len(vals) != len(rows[0]):
            raise MmsoldError(
                f"{path}: ragged rows: line {lineno} has {len(vals)} values, expected {len(rows[0])}"
            )
        rows.append(vals)
        first_data = False
    if not rows:
        return np.empty((0, 0))
    return np.asarray(rows, dtype=np.float64)


def _read_mesh_vertices(path: Path) -> np.ndarray:
    from .mesh_io import read_vertices

    return read_vertices(path)


def read_points(spec: str | os.PathLike, *, min_points: int = 1) -> np.ndarray:
    """Read a point set as a float64 array of shape (n, d).

    Parameters
    ----------
    spec : str or path
        File name, optionally ``file.h5:/dataset`` or ``file.npz:key``.
    min_points : int
        Fewest rows accepted.

    Returns
    -------
    X : ndarray of shape (n, d), float64
    """
    from .validation import check_points

    arr = read_array(spec)
    return check_points(arr, name=str(spec), min_points=min_points)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = False):
    """Yield a temporary path next to ``target``; move it into place on success.

    On any exception (including ``KeyboardInterrupt``) the temporary file is
    removed and ``target`` is left as it was.
    """
    target = Path(target)
    check_output_path(target, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_output_path(target: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output in a missing folder, or an existing file without ``overwrite``."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MmsoldError(f"{target}: output folder {parent} does not exist")
    if target.is_dir():
        raise MmsoldError(f"{target}: is a directory, expected a file name")
    if target.exists() and not overwrite:
        raise MmsoldError(f"{target}: exists; pass --overwrite to replace it")
    if not os.access(parent, os.W_OK):
        raise MmsoldError(f"{target}: output folder {parent} is not writable")
    return target


def write_points(path: str | os.PathLike, X: np.ndarray, *, overwrite: bool = False, attrs=None) -> Path:
    """Write points atomically, format by extension.

    Parameters
    ----------
    path : str or path
        Output file; ``.npy``, ``.h5``/``.hdf5`` (dataset ``/samples``),
        ``.csv``/``.txt``/``.xyz`` or ``.ply`` (binary little-endian, 3-D only).
    X : array of shape (n, d)
    overwrite : bool
        Replace an existing file.
    attrs : dict, optional
        Extra HDF5 attributes (only for ``.h5``).
    """
    path = Path(path)
    ext = _ext(path)
    if ext not in WRITE_EXTENSIONS:
        raise MmsoldError(
            f"{path}: unknown output extension {ext or '(none)'!r}; expected one of {', '.join(WRITE_EXTENSIONS)}"
        )
    X = np.asarray(X)
    if ext == ".ply" and (X.ndim != 2 or X.shape[1] != 3):
        raise MmsoldError(f"{path}: PLY output needs 3-D points, got shape {X.shape}")
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            if ext == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, X, allow_pickle=False)
            elif ext in (".h5", ".hdf5"):
                import h5py

                with h5py.File(tmp, "w") as f:
                    f.create_dataset("samples", data=X)
                    for k, v in (attrs or {}).items():
                        f.attrs[k] = v
            elif ext == ".ply":
                from .mesh_io import write_ply

                write_ply(tmp, X)
            else:
                delim = "," if ext == ".csv" else " "
                np.savetxt(tmp, X, delimiter=delim, fmt="%.17g")
    except OSError as exc:
        raise MmsoldError(f"{path}: cannot write ({_short(exc)})") from exc
    return path
