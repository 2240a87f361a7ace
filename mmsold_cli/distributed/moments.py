r"""Mean and covariance of a chunked input by map-reduce: per block on the workers, merged in a fixed tree.

Each block :math:`B` (a Zarr chunk row range, an HDF5 row block, one of many files) gives
:math:`(n_B, \mu_B, M_B)` with :math:`M_B = \sum_{x\in B}(x-\mu_B)(x-\mu_B)^\top`, computed about its own
mean (no cancellation); two summaries merge exactly [Chan, Golub & LeVeque 1979]:

.. math::

    n = n_a + n_b,\quad \delta = \mu_b - \mu_a,\quad \mu = \mu_a + \delta\,\frac{n_b}{n},\quad
    M = M_a + M_b + \delta\delta^\top\,\frac{n_a n_b}{n},

and :math:`\Sigma = M / n` (the population covariance of :class:`mmsold_cli.model.Model`).  Blocks are
merged pairwise in a balanced tree over their order in the input, so the result depends on the blocks
only, never on the workers or the order they finish in; it equals the one-machine ``X.mean(0)``,
``Xc.T @ Xc / n`` to rounding (≤ 1e-12 relative, ``tests/test_dask.py``).

Inputs (paths every worker sees): ``.zarr`` (the array ``samples``, or ``store.zarr:path``), ``.h5``/
``.hdf5`` (``file.h5:/dataset``; its HDF5 chunks' rows, or blocks of ``BLOCK_ROWS``), ``.npy`` (memory-mapped
row blocks), or a glob pattern / a folder of point files (one block each, in sorted name order).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..errors import MmsoldError

__all__ = ["BLOCK_ROWS", "chunk_moments", "merge_moments", "input_blocks", "read_block", "read_all",
           "distributed_moments", "is_chunked_input"]

#: Rows of a block when the input has no chunking of its own (``.npy``, contiguous HDF5).
BLOCK_ROWS = 1_000_000


def chunk_moments(X) -> tuple[int, np.ndarray, np.ndarray]:
    """(n, mean, M) of a block: M the scatter matrix about the block's own mean."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mu = X.mean(axis=0)
    Xc = X - mu
    return n, mu, Xc.T @ Xc


def merge_moments(a, b):
    """The summary of two blocks' union (module docstring)."""
    na, ma, Ma = a
    nb, mb, Mb = b
    if na == 0:
        return b
    if nb == 0:
        return a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), Ma + Mb + np.outer(delta, delta) * (na * nb / n)


def _tree(parts):
    while len(parts) > 1:
        parts = [merge_moments(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def is_chunked_input(spec) -> bool:
    """A Zarr store, a glob pattern or a folder: inputs only this module reads."""
    s = str(spec)
    path = s.split(":", 1)[0] if not os.path.exists(s) else s
    return path.lower().rstrip("/").endswith(".zarr") or any(c in s for c in "*?[") or os.path.isdir(s)


def _split(spec):
    s = str(spec)
    if os.path.exists(s):
        return s, None
    head, sep, key = s.rpartition(":")
    return (head, key) if sep and os.path.exists(head) else (s, None)


def input_blocks(spec, block_rows: int = BLOCK_ROWS) -> list[tuple]:
    """The blocks of an input: ``(kind, path, key, r0, r1)`` (rows) or ``("file", path, None, 0, -1)``."""
    path, key = _split(spec)
    path = os.path.abspath(path)  # the blocks go to workers, whose working folder may not be ours
    low = path.lower().rstrip("/")
    if any(c in str(spec) for c in "*?[") or (os.path.isdir(path) and not low.endswith(".zarr")):
        if any(c in str(spec) for c in "*?["):
            files = sorted(os.path.abspath(f) for f in glob.glob(str(spec)))
        else:
            files = sorted(str(p) for p in Path(path).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise MmsoldError(f"{spec}: no input files match")
        return [("file", f, None, 0, -1) for f in files]
    if low.endswith(".zarr"):
        import zarr

        try:
            node = zarr.open(store=path, mode="r")
            arr = node[key or "samples"] if hasattr(node, "group_keys") else node
        except (FileNotFoundError, KeyError) as exc:
            raise MmsoldError(f"{spec}: not a Zarr store with an array {key or 'samples'!r} ({exc})") from None
        n, step = arr.shape[0], arr.chunks[0]
        return [("zarr", path, key, r0, min(n, r0 + step)) for r0 in range(0, n, step)]
    if low.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            if key is None:
                names = [k for k, v in f.items() if isinstance(v, h5py.Dataset)]
                if len(names) != 1:
                    raise MmsoldError(f"{path}: name the dataset as {path}:/name (found {', '.join(names) or 'none'})")
                key = names[0]
            ds = f[key]
            n = ds.shape[0]
            step = ds.chunks[0] * max(1, block_rows // (ds.chunks[0] or 1)) if ds.chunks else block_rows
        return [("h5", path, key, r0, min(n, r0 + step)) for r0 in range(0, n, step)]
    if low.endswith(".npy"):
        n = np.load(path, mmap_mode="r").shape[0]
        return [("npy", path, None, r0, min(n, r0 + block_rows)) for r0 in range(0, n, block_rows)]
    return [("file", path, None, 0, -1)]


def read_block(block) -> np.ndarray:
    """The rows of one block (on a worker or here)."""
    kind, path, key, r0, r1 = block
    if kind == "zarr":
        import zarr

        node = zarr.open(store=path, mode="r")
        arr = node[key or "samples"] if hasattr(node, "group_keys") else node
        return np.asarray(arr[r0:r1], dtype=np.float64)
    if kind == "h5":
        import h5py

        with h5py.File(path, "r") as f:
            return np.asarray(f[key][r0:r1], dtype=np.float64)
    if kind == "npy":
        return np.asarray(np.load(path, mmap_mode="r")[r0:r1], dtype=np.float64)
    from ..io.arrays import read_points

    return read_points(path)


def _block_moments(block):
    return chunk_moments(read_block(block))


def read_all(spec, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """The whole input as one (n, d) array, blocks in order."""
    parts = [read_block(b) for b in input_blocks(spec, block_rows)]
    if len({p.shape[1] if p.ndim == 2 else -1 for p in parts}) != 1:
        raise MmsoldError(f"{spec}: the blocks differ in their number of columns")
    return np.concatenate(parts)


def distributed_moments(spec, *, client=None, block_rows: int = BLOCK_ROWS) -> dict:
    """Mean and population covariance of an input by map-reduce; ``{n, mean, covariance, blocks}``.

    ``client``: a :class:`distributed.Client` (blocks read and summarised on its workers); None runs the
    same blocks and tree here.
    """
    blocks = input_blocks(spec, block_rows)
    if client is None:
        parts = [_block_moments(b) for b in blocks]
    else:
        from .client import cluster_errors

        with cluster_errors(getattr(client, "mmsold_where", ""), client):
            futures = client.map(_block_moments, blocks, pure=False)
            try:
                parts = client.gather(futures)
            finally:
                client.cancel(futures)
    dims = {p[1].shape[0] for p in parts}
    if len(dims) != 1:
        raise MmsoldError(f"{spec}: the blocks differ in their number of columns ({sorted(dims)})")
    n, mean, M = _tree(list(parts))
    return {"n": int(n), "mean": mean, "covariance": M / n, "blocks": len(blocks)}
