"""The ``.zarr`` output: a Zarr v3 group whose array ``samples`` (n, d) float64 the workers fill themselves.

The store is made under a temporary name beside the target (``.NAME.XXXX.part.zarr``) and renamed to it
once every chunk is written; on any error, a lost scheduler or Ctrl-C it is deleted, so a ``.zarr`` that
exists is complete.  Rows are cut into chunks of ``chunk_rows``; each chunk is written by one task only
(:mod:`.sample` makes the shards the chunks), so no two workers ever write to one chunk and a worker that
dies mid-write leaves a chunk its replacement overwrites whole.

The target's folder must be one every worker sees at the same path (a shared file system): the workers
open the temporary store by that path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._outputs import committing, track_partial, untrack_partial
from ..errors import MmsoldError

__all__ = ["ZarrOutput", "write_rows", "read_zarr", "check_zarr_target", "ZARR_ARRAY"]

#: Name of the samples' array in the store.
ZARR_ARRAY = "samples"


def _require_zarr():
    try:
        import zarr
    except ImportError:
        from .client import INSTALL_HINT

        raise MmsoldError(f"a .zarr output needs the zarr package (Zarr v3), which is not installed; install it "
                          f"with: {INSTALL_HINT}") from None
    if int(zarr.__version__.split(".")[0]) < 3:
        from .client import INSTALL_HINT

        raise MmsoldError(f"a .zarr output needs zarr ≥ 3 (Zarr v3), found {zarr.__version__}; upgrade with: "
                          f"{INSTALL_HINT}")
    return zarr


def check_zarr_target(path, *, overwrite: bool) -> Path:
    """Refuse a .zarr target in a missing or read-only folder, or one that exists without ``overwrite``."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MmsoldError(f"{path}: output folder {parent} does not exist")
    if path.exists() and not overwrite:
        raise MmsoldError(f"{path}: exists; pass --overwrite (overwrite=True from Python) to replace it")
    if path.exists() and not path.is_dir():
        raise MmsoldError(f"{path}: exists and is not a Zarr store (a folder); remove it first")
    if not os.access(parent, os.W_OK):
        raise MmsoldError(f"{path}: output folder {parent} is not writable")
    return path


def write_rows(store, r0: int, X) -> int:
    """Write rows ``r0 … r0 + len(X) − 1`` of the store's samples (on a worker); the number of rows."""
    zarr = _require_zarr()
    arr = zarr.open_array(store=str(store), path=ZARR_ARRAY, mode="r+")
    X = np.ascontiguousarray(X, dtype="<f8")
    arr[int(r0): int(r0) + X.shape[0]] = X
    return int(X.shape[0])


def read_zarr(path, key: str = ZARR_ARRAY) -> np.ndarray:
    """The samples of a ``.zarr`` output (or array ``key`` of any Zarr store) as one array."""
    zarr = _require_zarr()
    try:
        node = zarr.open(store=str(path), mode="r")
        arr = node[key] if hasattr(node, "members") or hasattr(node, "group_keys") else node
        return np.asarray(arr[...])
    except (FileNotFoundError, KeyError) as exc:
        raise MmsoldError(f"{path}: not a Zarr store with an array {key!r} ({exc})") from None


class ZarrOutput:
    """A Zarr v3 store of (n, d) samples under a temporary name, renamed to ``path`` on :meth:`commit`.

    Use as a context manager: leaving it by an exception (or without :meth:`commit`) deletes the temporary
    store.  ``tmp`` is the temporary store's path, the one tasks pass to :func:`write_rows`.
    """

    def __init__(self, path, n: int, d: int, *, chunk_rows: int, overwrite: bool = False, attributes=None):
        zarr = _require_zarr()
        self.path = check_zarr_target(path, overwrite=overwrite)
        self.shape = (int(n), int(d))
        self.chunk_rows = max(1, min(int(chunk_rows), max(1, int(n))))
        self.overwrite = overwrite
        # an absolute path: tasks write into it from workers whose working folder may not be ours
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".part.zarr",
                                         dir=os.path.abspath(self.path.parent)))
        track_partial(self.tmp, folder=True)
        try:
            os.chmod(self.tmp, 0o777 & ~_umask())
            root = zarr.open_group(store=str(self.tmp), mode="w", zarr_format=3)
            root.create_array(ZARR_ARRAY, shape=self.shape, chunks=(self.chunk_rows, self.shape[1]), dtype="<f8",
                              fill_value=np.nan, dimension_names=("row", "coordinate"))
            if attributes:
                root.attrs.update(attributes)
        except BaseException:
            self.discard()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.discard()
        return False

    def set_attributes(self, attributes: dict) -> None:
        zarr = _require_zarr()
        zarr.open_group(store=str(self.tmp), mode="r+").attrs.update(attributes)

    def commit(self) -> Path:
        """Rename the complete store to its target (an existing one, with ``overwrite``, replaced)."""
        if self.tmp is None:
            raise RuntimeError("the store was discarded")
        old = None
        if self.path.exists() and not self.overwrite:
            raise MmsoldError(f"{self.path}: exists; pass --overwrite (overwrite=True from Python) to replace it")
        with committing():
            if self.path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
                os.rmdir(old)
                os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            untrack_partial(self.tmp)
            self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def discard(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            untrack_partial(self.tmp)
            self.tmp = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def zarr_output(path, n, d, **kw):
    """:class:`ZarrOutput` as a ``with`` block that commits on success."""
    out = ZarrOutput(path, n, d, **kw)
    try:
        yield out
        out.commit()
    finally:
        out.discard()
