r"""The fitted model: training points, their moments, and the neighbour index.

.. math::

    \mu = \frac1n\sum_j x_j, \qquad
    \Sigma = \frac1n\sum_j (x_j-\mu)(x_j-\mu)^\top = L L^\top

A model file is HDF5 with datasets and attributes only (never pickle):
``/points``, ``/mean``, ``/covariance``, ``/cholesky``, ``/knn_idx`` and
``/knn_sqdist`` (each training point's nearest other points, from which the
spacing, the memorisation threshold and a pynndescent index are rebuilt
without a new descent), ``/nn_dist`` (distance to the nearest *distinct*
training point), plus attributes ``format``, ``format_version``,
``mmsold_version``, ``index``, ``jitter``, ``settings`` (JSON) and ``sha256`` of
the points.  Every array dataset carries HDF5's Fletcher-32 checksum, so a
corrupted file is refused on load rather than sampled from; :meth:`Model.load`
also checks every shape, dtype and the identity :math:`LL^\top = \Sigma + \delta I`.

Degenerate training sets are handled, not refused, where the method still
makes sense:

* **singular covariance** (a planar cloud, a constant column, fewer distinct
  points than d + 1): the documented jitter of :func:`_cholesky` with a
  :class:`~mmsold_cli.errors.MmsoldWarning`;
* **exact duplicates**: they keep their weight in the empirical law, while
  the spacing :math:`\delta` (hence the default t) and the memorisation
  threshold use each point's nearest *distinct* neighbour, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from .errors import MmsoldError, MmsoldWarning
from .neighbors.indexes import INDEX_KINDS, build_index, choose_index, knn_graph
from .validation import check_points, check_spread

__all__ = ["Model", "fit_moments", "FORMAT", "FORMAT_VERSION"]

FORMAT = "mmsold-model"
FORMAT_VERSION = 1

#: Neighbours kept per training point in the model file.
GRAPH_K = 16


def _version() -> str:
    from . import __version__

    return __version__


def _checksum(X: np.ndarray) -> str:
    # through a memoryview: tobytes() would copy the training set once more
    return hashlib.sha256(memoryview(np.ascontiguousarray(X, dtype="<f8")).cast("B")).hexdigest()


def _cholesky(cov: np.ndarray, name: str, lam: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    r"""Cholesky factor, with a documented jitter for singular covariances.

    A planar point cloud (or duplicated / constant columns) has a singular
    covariance.  When :math:`\lambda_{\min} \le 10^{-10}\lambda_{\max}` we factor

    .. math:: \hat\Sigma = \Sigma + \delta I, \qquad \delta = 10^{-6}\,\lambda_{\max}(\Sigma)

    so the target keeps the data's spread in every direction it has and a
    negligible one (standard deviation :math:`10^{-3}\sqrt{\lambda_{\max}}`)
    across the others, and warn.  Every ensemble then matches
    :math:`\mu` and :math:`\Sigma+\delta I` exactly.

    Returns
    -------
    chol : array of shape (d, d)
        Lower Cholesky factor of :math:`\hat\Sigma`.
    jitter : float
        :math:`\delta` (0 for a regular covariance).
    """
    if lam is None:
        lam = np.linalg.eigvalsh(cov)
    lam_max = float(lam[-1])
    if lam[0] > 1e-10 * lam_max:
        try:
            return np.linalg.cholesky(cov), 0.0
        except np.linalg.LinAlgError:
            pass
    jitter = 1e-6 * lam_max
    n_flat = int(np.sum(lam <= 1e-10 * lam_max))
    warnings.warn(
        f"{name}: covariance is singular ({n_flat} of {cov.shape[0]} directions without spread, "
        f"e.g. a planar cloud or a constant column); adding {jitter:.3g}·I to the target covariance",
        MmsoldWarning,
        stacklevel=3,
    )
    return np.linalg.cholesky(cov + jitter * np.eye(cov.shape[0])), jitter


def _distinct_nn(X: np.ndarray, sqdist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, int]:
    """Distance from each training point to its nearest training point at another location.

    Parameters
    ----------
    X : array of shape (n, d)
    sqdist, idx : arrays of shape (n, k)
        The training k-NN graph (see :func:`mmsold_cli.neighbors.indexes.knn_graph`).

    Returns
    -------
    nn_dist : array of shape (n,)
        Equal to ``sqrt(sqdist[:, 0])`` when there are no duplicates.
    n_dup : int
        Number of points that repeat an earlier one (n minus distinct points).
    """
    nn = np.sqrt(sqdist[:, 0])
    # Duplicates are at distance ~0; only then pay for the exact sort.
    if nn.size == 0 or nn.min() > 1e-6 * max(float(np.median(nn)), 1e-300):
        return nn, 0
    uniq, inv = np.unique(X, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    n_dup = X.shape[0] - uniq.shape[0]
    if n_dup == 0:
        return nn, 0
    other = inv[idx] != inv[:, None]  # neighbour sits at a different location
    has = other.any(axis=1)
    first = np.argmax(other, axis=1)
    nn = np.sqrt(np.maximum(sqdist[np.arange(len(nn)), first], 0.0))
    if not has.all():  # every stored neighbour is a duplicate: search the distinct points
        d2u, _ = knn_graph(uniq, 1, build_index(uniq, choose_index(*uniq.shape)))
        nn[~has] = np.sqrt(d2u[inv[~has], 0])
    return nn, n_dup


class Model:
    """Moments and neighbour index of a training set.

    Parameters
    ----------
    index : {"auto", "kdtree", "brute", "nndescent"}
        Neighbour search backend; ``auto`` chooses by size and dimension
        (see :func:`mmsold_cli.neighbors.indexes.choose_index`).

    Attributes
    ----------
    X_ : array of shape (n, d)
        Training points (float64).
    mean_ : array of shape (d,)
    covariance_ : array of shape (d, d)
        Population covariance (1/n).
    cholesky_ : array of shape (d, d)
        Lower Cholesky factor of ``covariance_ + jitter_ I``.
    jitter_ : float
        Diagonal added for a singular covariance (0 when regular, see :func:`_cholesky`).
    knn_idx_, knn_sqdist_ : arrays of shape (n, k)
        Each training point's nearest other points (int32 indices).  A loaded
        model reads them from its file on first use: only the tracked pool
        (``search="pool"``) and a pynndescent index need them, and at 192
        bytes a point they outweigh the points below d = 24 (checked in full
        on load all the same).
    kth_dist_ : float
        Mean distance from a training point to its k-th stored neighbour.
    nn_dist_ : array of shape (n,)
        Distance to the nearest training point at another location (exact
        duplicates skipped).  A loaded model reads it from its file on first
        use (the memorisation metric), as the graph.
    spacing_ : float
        Mean of ``nn_dist_``, the length scale the defaults are built on.
    index_ : object
        The search structure (rebuilt on load, never stored as an object).
    index_kind_ : str
    grids_ : dict
        Cell grids of the fused score (d ≤ 3) built by earlier ``sample``
        calls, keyed by (σ, K), so a warm process builds each once.
    """

    def __init__(self, index: str = "auto"):
        self.index = index

    def fit(self, X, *, name: str = "data"):
        """Validate X, compute its moments, build the index.

        Parameters
        ----------
        X : array-like of shape (n, d)
            n ≥ d + 1 finite points.
        name : str
            Used in error messages.

        Returns
        -------
        self : Model
        """
        if self.index not in INDEX_KINDS:
            raise MmsoldError(f"index must be one of {', '.join(INDEX_KINDS)}, got {self.index!r}")
        X = check_points(X, name=name, min_points=2)
        n, d = X.shape
        if n < d + 1:
            raise MmsoldError(f"{name}: expected at least d + 1 = {d + 1} points for {d}-D data, got {n}")
        self.X_ = X
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        self.covariance_ = (Xc.T @ Xc) / n
        del Xc
        lam = np.linalg.eigvalsh(self.covariance_)
        check_spread(X, float(lam[-1]), name=name)
        self.cholesky_, self.jitter_ = _cholesky(self.covariance_, name, lam)
        self.index_kind_ = choose_index(n, d) if self.index == "auto" else self.index
        self.index_ = build_index(X, self.index_kind_)
        sq, idx = knn_graph(X, GRAPH_K, self.index_)
        self.knn_sqdist_, self.knn_idx_ = sq, idx.astype(np.int32)
        self.kth_dist_ = float(np.sqrt(sq[:, -1]).mean())
        self.nn_dist_, n_dup = _distinct_nn(X, sq, idx)
        if n_dup:
            warnings.warn(
                f"{name}: {n_dup} of {n} points are exact duplicates of other points; they keep their weight, "
                "and the spacing (hence the default t) uses distances between distinct points",
                MmsoldWarning,
                stacklevel=2,
            )
        self.spacing_ = float(self.nn_dist_.mean())
        self.sha256_ = _checksum(X)
        self.grids_ = {}
        return self

    # The k-NN graph and /nn_dist of a loaded model stay in its file until first read (see the Attributes).
    def _graph_array(self, key: str) -> np.ndarray:
        value = self.__dict__.get("_" + key)
        if value is None:
            source = self.__dict__.get("_graph_source")
            if source is None:
                raise AttributeError(f"{key}_")
            value = _read_graph(source, key)
            self.__dict__["_" + key] = value
        return value

    knn_idx_ = property(lambda self: self._graph_array("knn_idx"),
                        lambda self, value: self.__dict__.__setitem__("_knn_idx", value))
    knn_sqdist_ = property(lambda self: self._graph_array("knn_sqdist"),
                           lambda self, value: self.__dict__.__setitem__("_knn_sqdist", value))
    nn_dist_ = property(lambda self: self._graph_array("nn_dist"),
                        lambda self, value: self.__dict__.__setitem__("_nn_dist", value))

    @property
    def n_(self) -> int:
        return self.X_.shape[0]

    @property
    def d_(self) -> int:
        return self.X_.shape[1]

    def _check_fitted(self):
        if not hasattr(self, "X_"):
            raise MmsoldError("model is not fitted; call fit(X) first")

    def save(self, path, *, overwrite: bool = False, settings: dict | None = None) -> Path:
        """Write the model to one HDF5 file, atomically (see :func:`mmsold_cli.io.arrays.write_hdf5`)."""
        from .io.arrays import atomic_path, write_hdf5

        self._check_fitted()
        path = Path(path)

        def put(f, key, data):
            data = np.asarray(data)
            if data.ndim == 0 or data.size == 0:  # Fletcher-32 needs a chunked, non-empty dataset
                f.create_dataset(key, data=data)
                return
            row_bytes = data.itemsize * int(np.prod(data.shape[1:]))
            rows = max(1, min(data.shape[0], (1 << 20) // max(row_bytes, 1)))  # ≤ 1 MB chunks of whole rows
            rows = -(-data.shape[0] // -(-data.shape[0] // rows))  # equal chunks: no padded tail
            f.create_dataset(key, data=data, fletcher32=True, chunks=(rows,) + data.shape[1:])

        def fill(f):
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["mmsold_version"] = _version()
            f.attrs["index"] = self.index_kind_
            f.attrs["jitter"] = self.jitter_
            f.attrs["sha256"] = self.sha256_
            f.attrs["settings"] = json.dumps(settings or {})
            put(f, "points", self.X_)
            put(f, "mean", self.mean_)
            put(f, "covariance", self.covariance_)
            put(f, "cholesky", self.cholesky_)
            put(f, "knn_idx", self.knn_idx_.astype(np.int32))
            put(f, "knn_sqdist", self.knn_sqdist_)
            put(f, "nn_dist", self.nn_dist_)
            for key, value in getattr(self, "extras_", {}).items():
                put(f, f"extras/{key}", value)

        with atomic_path(path, overwrite=overwrite) as tmp:
            write_hdf5(tmp, fill)
        return path

    @classmethod
    def load(cls, path, *, verify: bool = True) -> "Model":
        """Read a model file written by :meth:`save` and rebuild its index.

        Refused with :class:`MmsoldError`: a missing or empty file, a file that
        is not HDF5, an HDF5 file from another tool (no ``format`` attribute
        ``mmsold-model``), a newer format version, a truncated or corrupted
        file (HDF5 errors, Fletcher-32 or sha256 mismatch, arrays of the wrong
        shape or dtype, or non-finite values).  Nothing is ever unpickled.
        """
        import h5py

        path = Path(path)
        if not path.exists():
            raise MmsoldError(f"{path}: no such file")
        if path.is_dir():
            raise MmsoldError(f"{path}: is a directory, expected a model file")
        size = path.stat().st_size
        if size == 0:
            raise MmsoldError(f"{path}: is empty, expected an mmsold model file")
        if not _has_hdf5_signature(path, size):
            raise MmsoldError(
                f"{path}: not an HDF5 file, so not an mmsold model "
                "(make one with `mmsold fit-moments DATA -o MODEL.h5`)"
            )
        try:
            # no chunk cache: every dataset is read once, and the cache stays resident (+12 MB on 100,000 points)
            f = h5py.File(path, "r", rdcc_nbytes=0)
        except PermissionError as exc:
            raise MmsoldError(f"{path}: file is not readable (permission denied)") from exc
        except Exception as exc:
            raise MmsoldError(f"{path}: damaged HDF5 file, truncated or corrupted ({_short(exc)})") from exc
        try:
            with f:
                fmt = _text(f.attrs.get("format"))
                if fmt != FORMAT:
                    raise MmsoldError(
                        f"{path}: an HDF5 file from another tool, not an mmsold model "
                        f"(format attribute {fmt!r}, expected {FORMAT!r})"
                    )
                version = int(f.attrs.get("format_version", -1))
                if version > FORMAT_VERSION or version < 1:
                    raise MmsoldError(
                        f"{path}: model format version {version}; this mmsold {_version()} reads versions "
                        f"1 to {FORMAT_VERSION}{' (upgrade mmsold)' if version > FORMAT_VERSION else ''}"
                    )
                missing = [k for k in ("points", "mean", "covariance", "cholesky", "knn_idx", "knn_sqdist")
                           if not isinstance(f.get(k), h5py.Dataset)]
                if missing:
                    raise MmsoldError(f"{path}: damaged model file: missing dataset(s) {', '.join(missing)}")
                _check_declared(f, path)
                m = cls(index=_text(f.attrs.get("index")))
                m.X_ = f["points"][()]
                m.mean_ = f["mean"][()]
                m.covariance_ = f["covariance"][()]
                m.cholesky_ = f["cholesky"][()]
                m.jitter_ = float(f.attrs.get("jitter", 0.0))
                nn = f["nn_dist"][()] if isinstance(f.get("nn_dist"), h5py.Dataset) else None
                m.nn_dist_ = nn
                _check_loaded(m, path)
                m.kth_dist_, first = _scan_graph(f, m.n_, path, want_first=nn is None)
                m.sha256_ = _text(f.attrs.get("sha256"))
                m.settings_ = json.loads(_text(f.attrs.get("settings", "{}")))
                m.extras_ = {k: v[()] for k, v in f["extras"].items()} if "extras" in f else {}
        except (MmsoldError, MemoryError):
            raise
        except Exception as exc:  # HDF5 read errors, Fletcher-32 mismatch, undecodable attributes
            if "filter returned failure" in str(exc):
                raise MmsoldError(f"{path}: damaged model file: a dataset fails its Fletcher-32 checksum "
                                  "(corrupted bytes)") from exc
            raise MmsoldError(f"{path}: damaged model file ({_short(exc)})") from exc
        if verify and _checksum(m.X_) != m.sha256_:
            raise MmsoldError(f"{path}: checksum mismatch: the stored points are corrupted")
        st = path.stat()
        m.__dict__["_graph_source"] = (path.resolve(), st.st_mtime_ns, st.st_size, m.n_)
        m.index_kind_ = m.index
        if nn is None:  # files written before /nn_dist existed
            nn = np.sqrt(first)
        m.spacing_ = float(nn.mean())
        # checked; a file's /nn_dist is read again when a metric asks for it (n floats less while sampling)
        m.nn_dist_ = None if first is None else nn
        del nn
        m.grids_ = {}
        graph = m.knn_idx_ if m.index_kind_ == "nndescent" else None
        m.index_ = build_index(m.X_, m.index_kind_, graph=graph)
        return m


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _text(value) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    raise ValueError(f"expected a text attribute, got {type(value).__name__}")


def _has_hdf5_signature(path: Path, size: int) -> bool:
    """HDF5's 8-byte signature sits at offset 0, 512, 1024, 2048, ... (after a user block)."""
    sig = b"\x89HDF\r\n\x1a\n"
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == sig:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


#: The largest dimension a model file may declare (a 4096 × 4096 covariance is 134 MB).
MAX_MODEL_DIM = 4096


def _check_declared(f, path: Path) -> None:
    """Before any dataset is read: the shapes the file declares are those of one model, and fit in memory.

    A compressed dataset can declare gigabytes in a small file; reading it would end in an
    out-of-memory failure, so the declared sizes are checked first.
    """
    from .io.room import available_memory, human_bytes

    def bad(what):
        raise MmsoldError(f"{path}: damaged model file: {what}")

    pts = f["points"]
    if len(pts.shape) != 2 or pts.dtype.kind != "f":
        bad(f"/points should be an (n, d) array of floats, got dtype {pts.dtype}, shape {pts.shape}")
    n, d = pts.shape
    if not 1 <= d <= MAX_MODEL_DIM:
        bad(f"/points declares dimension {d}, expected 1 to {MAX_MODEL_DIM}")
    expected = {"mean": (d,), "covariance": (d, d), "cholesky": (d, d), "nn_dist": (n,)}
    for name, shape in expected.items():
        ds = f.get(name)
        if ds is not None and tuple(getattr(ds, "shape", ())) != shape:
            bad(f"/{name} should have shape {shape} for {n} points in {d}-D, got shape {tuple(getattr(ds, 'shape', ()))}")
    for name in ("knn_idx", "knn_sqdist"):
        shape = tuple(f[name].shape)
        if len(shape) != 2 or shape[0] != n or not 1 <= shape[1] <= 1024:
            bad(f"/{name} should have shape ({n}, k) with 1 ≤ k ≤ 1024, got shape {shape}")
    declared = sum(int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
                   for ds in (f[k] for k in ("points", "knn_idx", "knn_sqdist")))
    # the points are held twice at most while the index is built (a copy in the index)
    need, avail = 2 * declared, available_memory()
    if need > avail:
        raise MmsoldError(f"{path}: the model declares {n:,} points in {d}-D ({human_bytes(declared)} with its "
                          f"graph), needing {human_bytes(need)} to load, but {human_bytes(avail)} of memory is "
                          f"available; expected a model that fits in memory")


def _check_loaded(m: "Model", path: Path) -> None:
    """Shapes, dtypes and finiteness of a loaded model's arrays, and the factor's identity."""

    def bad(what):
        raise MmsoldError(f"{path}: damaged model file: {what}")

    def arr(name, value, shape, kinds="f"):
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds or value.shape != shape:
            got = f"dtype {value.dtype}, shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            bad(f"/{name} should have shape {shape} ({'integers' if kinds == 'iu' else 'floats'}), got {got}")
        if kinds == "f" and not np.isfinite(value).all():
            bad(f"/{name} holds NaN or infinity")

    if m.index not in INDEX_KINDS or m.index == "auto":
        bad(f"unknown index kind {m.index!r}")
    X = m.X_
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        bad(f"/points should be an (n, d) array, got {getattr(X, 'shape', type(X).__name__)}")
    n, d = X.shape
    arr("points", X, (n, d))
    arr("mean", m.mean_, (d,))
    arr("covariance", m.covariance_, (d, d))
    arr("cholesky", m.cholesky_, (d, d))
    if m.__dict__.get("_nn_dist") is not None:
        arr("nn_dist", m.__dict__["_nn_dist"], (n,))
    if not np.isfinite(m.jitter_) or m.jitter_ < 0:
        bad(f"jitter attribute {m.jitter_!r}")
    target = m.covariance_ + m.jitter_ * np.eye(d)
    if np.linalg.norm(m.cholesky_ @ m.cholesky_.T - target) > 1e-8 * max(np.linalg.norm(target), 1e-300):
        bad("/cholesky is not the factor of /covariance")


def _graph_shape(f, n: int, bad) -> int:
    """Check /knn_idx and /knn_sqdist's shapes and dtypes without reading them; return k."""
    idx, sq = f["knn_idx"], f["knn_sqdist"]
    k = idx.shape[1] if len(idx.shape) == 2 else -1
    for name, ds, kinds in (("knn_idx", idx, "iu"), ("knn_sqdist", sq, "f")):
        if ds.dtype.kind not in kinds or ds.shape != (n, k) or k < 1:
            bad(f"/{name} should have shape {(n, k)} ({'integers' if kinds == 'iu' else 'floats'}), "
                f"got dtype {ds.dtype}, shape {ds.shape}")
    return k


def _scan_graph(f, n: int, path: Path, *, want_first: bool = False):
    """Check the stored k-NN graph block by block (ranges, finiteness, checksums) without keeping it.

    Returns the mean distance to the k-th neighbour and, if asked, each point's
    first squared distance (files written before /nn_dist).
    """

    def bad(what):
        raise MmsoldError(f"{path}: damaged model file: {what}")

    _graph_shape(f, n, bad)
    kth = 0.0
    first = np.empty(n) if want_first else None
    for _, block in _blocks(f["knn_idx"]):
        if block.min() < 0 or block.max() >= n:
            bad("/knn_idx holds indices outside the training set")
    for s, block in _blocks(f["knn_sqdist"]):
        if not np.isfinite(block).all():
            bad("/knn_sqdist holds NaN or infinity")
        kth += float(np.sqrt(np.maximum(block[:, -1], 0.0)).sum())
        if want_first:
            first[s : s + len(block)] = np.maximum(block[:, 0], 0.0)
    return kth / n, first


def _blocks(ds):
    """(first row, rows) of a 2-D dataset, one stored chunk at a time through one reused buffer."""
    step = ds.chunks[0] if ds.chunks else max(1, (1 << 20) // max(ds.dtype.itemsize * ds.shape[1], 1))
    buf = np.empty((min(step, ds.shape[0]),) + ds.shape[1:], dtype=ds.dtype)
    for s in range(0, ds.shape[0], step):
        e = min(s + step, ds.shape[0])
        ds.read_direct(buf, np.s_[s:e], np.s_[: e - s])
        yield s, buf[: e - s]


def _read_graph(source, key: str) -> np.ndarray:
    """Read /knn_idx (as int32) or /knn_sqdist of a loaded model from its file, unchanged since the load."""
    import h5py

    path, mtime, size, n = source
    try:
        st = path.stat()
        if (st.st_mtime_ns, st.st_size) != (mtime, size):
            raise MmsoldError(f"{path}: the model file changed after it was loaded; load it again")
        with h5py.File(path, "r", rdcc_nbytes=0) as f:
            value = f[key][()]
    except MmsoldError:
        raise
    except Exception as exc:
        raise MmsoldError(f"{path}: cannot read /{key} of the loaded model ({_short(exc)})") from exc
    return value.astype(np.int32, copy=False) if key == "knn_idx" else value


def fit_moments(X, *, index: str = "auto", name: str = "data") -> Model:
    """Fit a :class:`Model` to training points X of shape (n, d)."""
    return Model(index=index).fit(X, name=name)
