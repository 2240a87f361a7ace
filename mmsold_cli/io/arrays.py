"""Reading and writing point sets.

Formats by extension: ``.npy``, ``.npz`` (``file.npz:key``), ``.h5``/``.hdf5``
(``file.h5:/group/name``), ``.csv``/``.txt``/``.xyz`` (text, one point a row),
``.ply`` and ``.obj`` (vertex positions, through trimesh).  Every writer goes
to a temporary file in the target folder, is flushed to disk and moved into
place with :func:`os.replace` only once complete, so a crash, Ctrl-C, SIGTERM
or a full disk never leaves a half-written output or a stray temporary file.
Several outputs of one command (samples and their diagnostics) are committed
together by :func:`atomic_paths`, with SIGINT/SIGTERM held back for the
instant of the renames.  Nothing here unpickles: ``np.load`` runs with
``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._outputs import committing, track_partial, untrack_partial
from ..errors import MmsoldError

__all__ = [
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "check_output_dim",
    "split_path_key",
    "read_points",
    "read_array",
    "write_points",
    "save_points",
    "PointWriter",
    "RowFileWriter",
    "STREAM_EXTENSIONS",
    "write_hdf5",
    "atomic_path",
    "atomic_paths",
    "check_output_path",
]

READ_EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5", ".csv", ".txt", ".xyz", ".pts", ".ply", ".obj", ".las", ".laz",
                   ".e57")
WRITE_EXTENSIONS = (".npy", ".h5", ".hdf5", ".csv", ".txt", ".xyz", ".ply")
STREAM_EXTENSIONS = (".npy", ".csv", ".txt", ".xyz")  # written row block by row block (:class:`PointWriter`)


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
    if ext == ".zarr" and path.is_dir():  # the samples of a .zarr output (mmsold_cli.distributed.zarr_store)
        from ..distributed.zarr_store import read_zarr

        return read_zarr(path)
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
            X = _read_text(path)
            if ext == ".xyz" or (X.ndim == 2 and X.shape[1] > 3 and _cloud_header(path)):
                from .text import text_positions  # a point cloud's x, y, z; its colours are densify's business

                X = text_positions(path, X)
            return X
        if ext in (".las", ".laz"):  # a scan's positions (its attributes are densify's business)
            from .las import read_las_positions

            return read_las_positions(path)
        if ext in (".e57", ".pts"):
            from .cloud import read_cloud

            return read_cloud(path).positions
        return _read_mesh_vertices(path)
    except (MmsoldError, MemoryError):
        raise
    except PermissionError as exc:
        raise MmsoldError(f"{path}: file is not readable (permission denied)") from exc
    except Exception as exc:  # a damaged file can make any reader fail in its own way
        raise MmsoldError(f"{path}: cannot read as {ext[1:]} ({_short(exc)})") from exc


def _cloud_header(path: Path) -> bool:
    """Whether a text file's header names a point cloud's columns (:func:`mmsold_cli.io.text.cloud_header`)."""
    from .text import cloud_header, header_names

    return cloud_header(header_names(path))


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _magic(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _read_npy(path: Path) -> np.ndarray:
    # np.load takes anything without the NumPy magic for a pickle: say what it really is
    if _magic(path, 6) != b"\x93NUMPY":
        raise MmsoldError(f"{path}: cannot read as npy (no NumPy header: not a .npy file, or damaged)")
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
    if _magic(path, 2) != b"PK":
        raise MmsoldError(f"{path}: cannot read as npz (not a zip archive: not a .npz file, or damaged)")
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


def _fields(line: str) -> list[str]:
    return [f for f in line.replace(",", " ").replace(";", " ").replace("\t", " ").split(" ") if f]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def not_numeric(path, lineno: int, line: str) -> MmsoldError:
    """The error for a text line that does not parse: its start, or, for bytes that are not text (a binary
    file under a text extension), just that."""
    if "\ufffd" in line or any(ord(c) < 32 and c not in "\t\r\n" for c in line[:200]):
        return MmsoldError(f"{path}: line {lineno} holds binary data, not text; is the file in another format?")
    return MmsoldError(f"{path}: line {lineno} is not numeric: {line[:60]!r}")


def _read_text(path: Path) -> np.ndarray:
    """Parse delimited numbers, one point a row.

    Fields are separated by commas, semicolons, tabs or spaces; blank lines and
    lines starting with ``#`` are ignored.  A first line with no number in it
    (a header such as ``x,y,z``) is skipped; any other non-numeric line, or a
    row with a different number of values, is an error naming its line.
    """
    header_lines = 0
    first = None
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if first is None and not any(_is_number(f) for f in _fields(line)):
                header_lines = lineno  # a header: skip it and everything before it
                first = ""
                continue
            first = line
            break
    if not first:
        return np.empty((0, 0))
    delim = "," if "," in first else ";" if ";" in first else None
    try:  # fast path: numpy's C parser for files with one delimiter throughout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data"
            a = np.loadtxt(path, delimiter=delim, skiprows=header_lines, comments="#", ndmin=2,
                           dtype=np.float64, encoding="utf-8-sig")
        return a
    except (ValueError, UnicodeDecodeError):
        pass
    return _read_text_slow(path, header_lines)


def _read_text_slow(path: Path, header_lines: int) -> np.ndarray:
    """Line-by-line parser with mixed delimiters; names the first bad line."""
    rows: list[list[float]] = []
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if lineno <= header_lines or not line or line.startswith("#"):
                continue
            try:
                vals = [float(f) for f in _fields(line)]
            except ValueError:
                raise not_numeric(path, lineno, line) from None
            if rows and len(vals) != len(rows[0]):
                raise MmsoldError(
                    f"{path}: ragged rows: line {lineno} has {len(vals)} values, expected {len(rows[0])}"
                )
            rows.append(vals)
    if not rows:
        return np.empty((0, 0))
    return np.asarray(rows, dtype=np.float64)


def _read_mesh_vertices(path: Path) -> np.ndarray:
    from .mesh import read_vertices

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
    from ..validation import check_points

    arr = read_array(spec)
    return check_points(arr, name=str(spec), min_points=min_points)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike) -> None:
    """Flush a file (or folder) to disk; a delayed write error (EIO, ENOSPC) surfaces here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):  # no fsync on this file system
            raise
    finally:
        os.close(fd)


def _write_error(targets, exc: OSError) -> MmsoldError:
    names = ", ".join(str(t) for t in targets)
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        return MmsoldError(f"{names}: cannot write: disk full (no space left on device); no output was written")
    return MmsoldError(f"{names}: cannot write ({_short(exc)}); no output was written")


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike, overwrite: bool = False):
    """Yield temporary paths next to ``targets``; move them all into place on success.

    Each temporary file lives in its target's folder (so the final
    :func:`os.replace` is atomic), carries the target's extension, and is
    flushed to disk before the renames.  On any exception — a write error,
    ``KeyboardInterrupt``, SIGTERM — every temporary file is removed and the
    targets are left as they were; an ``OSError`` is re-raised as
    :class:`MmsoldError` naming the targets (``disk full`` for ENOSPC).
    SIGINT and SIGTERM arriving during the renames are delivered right after
    them, so a signal never leaves one output renamed and the other not.

    Parameters
    ----------
    *targets : str or path
        Final output paths.
    overwrite : bool
        Replace existing targets (otherwise refuse them up front).

    Yields
    ------
    tmps : list of Path
        One temporary path per target, in order.
    """
    targets = [Path(t) for t in targets]
    for t in targets:
        check_output_path(t, overwrite=overwrite)
    mode = 0o666 & ~_umask()
    tmps: list[Path] = []
    try:
        for t in targets:
            fd, tmp = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".part" + t.suffix, dir=t.parent)
            os.close(fd)
            tmps.append(Path(tmp))
            track_partial(tmp)
            os.chmod(tmp, mode)  # mkstemp makes 0600; give the file the usual permissions
        yield tmps
        for tmp in tmps:
            _fsync(tmp)
        with committing():
            for tmp, t in zip(tmps, targets):
                os.replace(tmp, t)
                untrack_partial(tmp)
            tmps = []
        for parent in {t.parent for t in targets}:
            with contextlib.suppress(OSError):
                _fsync(parent)
    except OSError as exc:
        raise _write_error(targets, exc) from exc
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            untrack_partial(tmp)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = False):
    """Yield one temporary path next to ``target``; move it into place on success.

    See :func:`atomic_paths`.  On any exception (including
    ``KeyboardInterrupt``) the temporary file is removed and ``target`` is left
    as it was.
    """
    with atomic_paths(target, overwrite=overwrite) as (tmp,):
        yield tmp


def check_output_path(target: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output in a missing folder, or an existing file without ``overwrite``."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MmsoldError(f"{target}: output folder {parent} does not exist")
    if target.is_dir():
        raise MmsoldError(f"{target}: is a directory, expected a file name")
    if target.exists() and not overwrite:
        raise MmsoldError(f"{target}: exists; pass --overwrite (overwrite=True from Python) to replace it")
    if not os.access(parent, os.W_OK):
        raise MmsoldError(f"{target}: output folder {parent} is not writable")
    return target


def _check_write_format(path: Path, X: np.ndarray, fmt: str | None = None) -> str:
    ext = (fmt or _ext(path)).lower()
    if ext not in WRITE_EXTENSIONS:
        raise MmsoldError(
            f"{path}: unknown output extension {ext or '(none)'!r}; expected one of {', '.join(WRITE_EXTENSIONS)}"
        )
    if X.ndim != 2:
        raise MmsoldError(f"{path}: expected points of shape (n, d), got shape {X.shape}")
    check_output_dim(path, X.shape[1], fmt=ext)
    return ext


def check_output_dim(path, d: int, *, fmt: str | None = None) -> None:
    """PLY and XYZ files hold x, y, z: refuse d-dimensional points for them before any work (an .xyz file is
    read back as its first three columns)."""
    ext = (fmt or _ext(Path(path))).lower()
    if ext in (".ply", ".xyz") and d != 3:
        raise MmsoldError(f"{path}: a {ext} file holds 3-D points, got {d}-D; write .npy, .h5, .csv or .txt")


def write_hdf5(path: str | os.PathLike, fill) -> None:
    """Build an HDF5 file in memory with ``fill(h5py.File)``, then write its bytes to ``path``.

    The HDF5 library never touches the disk itself: after a failed write
    (disk full, file-size limit) it leaves broken objects behind that print
    errors when collected and can crash the interpreter at exit.  Writing the
    finished image with plain file I/O turns such a failure into one clean
    ``OSError``.  Costs one in-memory copy of the file.
    """
    import io

    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    view = buf.getbuffer()
    try:
        with open(path, "wb") as fh:
            for start in range(0, len(view), 1 << 26):
                fh.write(view[start : start + (1 << 26)])
    finally:
        view.release()


def save_points(path: str | os.PathLike, X: np.ndarray, *, fmt: str | None = None, attrs=None) -> None:
    """Write points to ``path`` directly (not atomically): the writer behind :func:`write_points`.

    Use it inside :func:`atomic_paths` to commit several outputs together.

    Parameters
    ----------
    path : str or path
    X : array of shape (n, d)
    fmt : str, optional
        Extension that picks the format (default: ``path``'s own).
    attrs : dict, optional
        Extra HDF5 attributes (only for ``.h5``).
    """
    path = Path(path)
    X = np.asarray(X)
    ext = _check_write_format(path, X, fmt)
    if ext == ".npy":
        with open(path, "wb") as fh:
            np.save(fh, X, allow_pickle=False)
    elif ext in (".h5", ".hdf5"):

        def fill(f):
            f.create_dataset("samples", data=X)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v

        write_hdf5(path, fill)
    elif ext == ".ply":
        from .mesh import write_ply

        write_ply(path, X)
    else:
        delim = "," if ext == ".csv" else " "
        np.savetxt(path, X, delimiter=delim, fmt="%.17g")


class RowFileWriter:
    """What the files written block by block share: ``close`` checks the count, and as a context manager an
    error closes the file without that check (the caller's error wins; the half-written file is the caller's
    temporary to remove).  Subclasses set ``path``, ``rows``, ``_fh`` and :meth:`_expected`."""

    #: What a row is, in the count's message.
    unit = "rows"

    def _expected(self) -> int:
        raise NotImplementedError

    def _complete(self) -> bool:
        return self.rows == self._expected()

    def close(self) -> None:
        """Close the file; raises ``ValueError`` unless every row was written."""
        if not self._fh.closed:
            self._fh.close()
            if not self._complete():
                raise ValueError(f"{self.path}: {self.rows} of {self._expected()} {self.unit} written")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._fh.close()


class PointWriter(RowFileWriter):
    """An (n, d) float64 points file filled by consecutive row blocks: ``w[a:b] = X``.

    The same bytes as :func:`save_points` of the whole array (``.npy``: the
    header with the final shape first; text: one ``%.17g`` line a row), while
    only one block at a time is in memory.  Blocks must come in order and
    cover every row before :meth:`close`; the file is written directly, so
    use it on a temporary path of :func:`atomic_paths`.

    Parameters
    ----------
    path : str or path
    n, d : int
        Shape of the whole array.
    fmt : str, optional
        Extension that picks the format (default: ``path``'s own); one of
        :data:`STREAM_EXTENSIONS`.
    """

    def __init__(self, path: str | os.PathLike, n: int, d: int, *, fmt: str | None = None):
        self.path = Path(path)
        self.shape = (int(n), int(d))
        self.ext = (fmt or _ext(self.path)).lower()
        if self.ext not in STREAM_EXTENSIONS:
            raise MmsoldError(f"{self.path}: cannot stream {self.ext!r} output; expected one of "
                              f"{', '.join(STREAM_EXTENSIONS)}")
        check_output_dim(self.path, self.shape[1], fmt=self.ext)
        self.rows = 0
        self._fh = open(self.path, "wb")
        if self.ext == ".npy":
            np.lib.format.write_array_header_1_0(self._fh, {"descr": "<f8", "fortran_order": False,
                                                            "shape": self.shape})

    def __setitem__(self, key, X):
        ok = isinstance(key, slice) and key.step in (None, 1) and isinstance(key.stop, (int, np.integer))
        start, stop = ((key.start or 0), int(key.stop)) if ok else (None, None)
        if not ok or start != self.rows or stop > self.shape[0]:
            raise ValueError(f"rows must be written in order: expected a block from row {self.rows}, got {key!r}")
        X = np.ascontiguousarray(X, dtype="<f8")
        if X.shape != (stop - start, self.shape[1]):
            raise ValueError(f"expected a block of shape {(stop - start, self.shape[1])}, got {X.shape}")
        if self.ext == ".npy":
            if X.size:  # an empty view cannot be cast to bytes
                self._fh.write(memoryview(X).cast("B"))
        else:
            np.savetxt(self._fh, X, delimiter="," if self.ext == ".csv" else " ", fmt="%.17g")
        self.rows = stop

    def _expected(self) -> int:
        return self.shape[0]


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

    Returns
    -------
    path : Path
    """
    path = Path(path)
    X = np.asarray(X)
    _check_write_format(path, X)
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_points(tmp, X, fmt=_ext(path), attrs=attrs)
    return path
