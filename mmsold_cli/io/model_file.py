r"""Model files: HDF5 with datasets and attributes only (never pickle), written and verified here.

Layout: ``/points``, ``/mean``, ``/covariance``, ``/cholesky``, ``/knn_idx`` and ``/knn_sqdist``
(each training point's nearest other points, from which the spacing, the memorisation threshold and
a pynndescent index are rebuilt without a new descent), ``/nn_dist`` (distance to the nearest
*distinct* training point), ``/ivf_centroids`` and ``/ivf_lists`` (an ``ivf`` index's centroids and each
point's list, so loading skips its k-means), ``/extras/*`` (e.g. a PCA basis), plus attributes ``format``,
``format_version``, ``mmsold_version``, ``index``, ``jitter``, ``settings`` (JSON) and ``sha256`` of
the points.  Every array dataset carries HDF5's Fletcher-32 checksum, so a corrupted file is
refused on load rather than sampled from; :func:`load_model` first checks the shapes the file
declares (they must be one model's, and fit in memory), then every shape, dtype, finiteness and the
identity :math:`LL^\top = \Sigma + \delta I`.  A loaded model's graph and ``/nn_dist`` are checked
in full but stay in the file until first used (:attr:`Model.graph_reader_`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import MmsoldError
from ..model import Model, _checksum
from ..neighbors.indexes import INDEX_KINDS, build_index

__all__ = ["MODEL_EXTENSIONS", "save_model", "load_model", "save_class_models", "load_class_models", "class_labels",
           "FORMAT", "FORMAT_VERSION", "MAX_MODEL_DIM"]

#: A model file is HDF5.
MODEL_EXTENSIONS = (".h5", ".hdf5")
FORMAT = "mmsold-model"
FORMAT_VERSION = 1


def _version() -> str:
    from .. import __version__

    return __version__


def _put(g, key, data):
    """A dataset with Fletcher-32 checksums in chunks of whole rows (≤ 1 MB)."""
    data = np.asarray(data)
    if data.ndim == 0 or data.size == 0:  # Fletcher-32 needs a chunked, non-empty dataset
        g.create_dataset(key, data=data)
        return
    row_bytes = data.itemsize * int(np.prod(data.shape[1:]))
    rows = max(1, min(data.shape[0], (1 << 20) // max(row_bytes, 1)))
    rows = -(-data.shape[0] // -(-data.shape[0] // rows))  # equal chunks: no padded tail
    g.create_dataset(key, data=data, fletcher32=True, chunks=(rows,) + data.shape[1:])


def _write_group(g, model, settings):
    """One model's attributes and datasets in an HDF5 group (the file's root for a single model)."""
    model._check_fitted()
    g.attrs["index"] = model.index_kind_
    g.attrs["jitter"] = model.jitter_
    g.attrs["sha256"] = model.sha256_
    g.attrs["settings"] = json.dumps(settings or {})
    _put(g, "points", model.X_)
    _put(g, "mean", model.mean_)
    _put(g, "covariance", model.covariance_)
    _put(g, "cholesky", model.cholesky_)
    _put(g, "knn_idx", model.knn_idx_.astype(np.int32))
    _put(g, "knn_sqdist", model.knn_sqdist_)
    _put(g, "nn_dist", model.nn_dist_)
    lists = model.index_.lists() if model.index_kind_ == "ivf" else None
    if lists is not None:
        _put(g, "ivf_centroids", lists[0])
        _put(g, "ivf_lists", lists[1])
    for key, value in getattr(model, "extras_", {}).items():
        _put(g, f"extras/{key}", value)


def _write(path, overwrite, fill):
    from .arrays import atomic_path, write_hdf5

    path = Path(path)
    if path.suffix.lower() not in MODEL_EXTENSIONS:  # HDF5 under another name is read as that format, and fails
        raise MmsoldError(f"{path}: a model file is HDF5; expected the extension {' or '.join(MODEL_EXTENSIONS)}, "
                          f"got {path.suffix or '(none)'!r}")

    def root(f):
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["mmsold_version"] = _version()
        fill(f)

    with atomic_path(path, overwrite=overwrite) as tmp:
        write_hdf5(tmp, root)
    return path


def save_model(model, path, *, overwrite: bool = False, settings: dict | None = None) -> Path:
    """Write a fitted model to one HDF5 file, atomically (see :func:`mmsold_cli.io.arrays.write_hdf5`)."""
    return _write(path, overwrite, lambda f: _write_group(f, model, settings))


def save_class_models(models: dict, path, *, overwrite: bool = False, settings: dict | None = None) -> Path:
    """Write one model per class to one HDF5 file: groups ``/class_0 …`` in the layout of a single model,
    the labels (JSON, in order) in the root's ``classes`` attribute."""
    labels = list(models)

    def fill(f):
        f.attrs["classes"] = json.dumps([_label_json(c) for c in labels])
        for i, c in enumerate(labels):
            _write_group(f.create_group(f"class_{i}"), models[c], settings)

    return _write(path, overwrite, fill)


def _label_json(c):
    """A class label as JSON keeps it (ints and strings; NumPy scalars made plain)."""
    return c.item() if isinstance(c, np.generic) else c


def _open(path):
    """The model file, checked to be an mmsold model of a version this code reads: an open h5py.File."""
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
    except BaseException:
        f.close()
        raise
    return f


def _read_group(g, path: Path, prefix: str, verify: bool) -> Model:
    """A model from its HDF5 group (checked, index rebuilt); its graph stays in the file until read."""
    import h5py

    try:
        missing = [k for k in ("points", "mean", "covariance", "cholesky", "knn_idx", "knn_sqdist")
                   if not isinstance(g.get(k), h5py.Dataset)]
        if missing:
            raise MmsoldError(f"{path}: damaged model file: missing dataset(s) {', '.join(prefix + k for k in missing)}")
        _check_declared(g, path)
        m = Model(index=_text(g.attrs.get("index")))
        m.X_ = g["points"][()]
        m.mean_ = g["mean"][()]
        m.covariance_ = g["covariance"][()]
        m.cholesky_ = g["cholesky"][()]
        m.jitter_ = float(g.attrs.get("jitter", 0.0))
        nn = g["nn_dist"][()] if isinstance(g.get("nn_dist"), h5py.Dataset) else None
        m.nn_dist_ = nn
        _check_loaded(m, path)
        m.kth_dist_, first = _scan_graph(g, m.n_, path, want_first=nn is None)
        m.sha256_ = _text(g.attrs.get("sha256"))
        m.settings_ = json.loads(_text(g.attrs.get("settings", "{}")))
        m.extras_ = {k: v[()] for k, v in g["extras"].items()} if "extras" in g else {}
        lists = _read_lists(g, *m.X_.shape, path) if m.index == "ivf" else None
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
    source = (path.resolve(), st.st_mtime_ns, st.st_size, m.n_)
    m.graph_reader_ = lambda key: _read_graph(source, prefix + key)
    m.index_kind_ = m.index
    if nn is None:  # files written before /nn_dist existed
        nn = np.sqrt(first)
    m.spacing_ = float(nn.mean())
    # checked; a file's /nn_dist is read again when a metric asks for it (n floats less while sampling)
    m.nn_dist_ = None if first is None else nn
    del nn
    m.grids_ = {}
    graph = m.knn_idx_ if m.index_kind_ == "nndescent" else None
    m.index_ = build_index(m.X_, m.index_kind_, graph=graph, lists=lists)
    return m


def _read_lists(g, n: int, d: int, path: Path):
    """An ``ivf`` model's stored lists, checked: ``(centroids, assignment)``, or None (files written before them)."""
    import h5py

    cs, ls = g.get("ivf_centroids"), g.get("ivf_lists")
    if not (isinstance(cs, h5py.Dataset) and isinstance(ls, h5py.Dataset)):
        return None
    if len(cs.shape) != 2 or cs.shape[1] != d or not 1 <= cs.shape[0] <= n or cs.dtype.kind != "f" \
            or tuple(ls.shape) != (n,) or ls.dtype.kind not in "iu":
        raise MmsoldError(f"{path}: damaged model file: /ivf_centroids should be (nlist, {d}) floats with "
                          f"1 ≤ nlist ≤ {n} and /ivf_lists ({n},) integers, got {cs.dtype} {cs.shape} and "
                          f"{ls.dtype} {ls.shape}")
    centroids, assign = cs[()], ls[()]
    if not np.isfinite(centroids).all() or assign.min() < 0 or assign.max() >= centroids.shape[0]:
        raise MmsoldError(f"{path}: damaged model file: /ivf_lists holds a list outside 0 … "
                          f"{centroids.shape[0] - 1}, or /ivf_centroids a non-finite value")
    return centroids, assign


def class_labels(path) -> list | None:
    """The class labels of a per-class model file, in order; None for a single model."""
    with _open(path) as f:
        raw = f.attrs.get("classes")
        return None if raw is None else json.loads(_text(raw))


def load_model(path, *, verify: bool = True, label=None) -> Model:
    """Read a model file written by :func:`save_model` and rebuild its index (``label``: one class of a
    per-class file).

    Refused with :class:`MmsoldError`: a missing or empty file, a file that
    is not HDF5, an HDF5 file from another tool (no ``format`` attribute
    ``mmsold-model``), a newer format version, a truncated or corrupted
    file (HDF5 errors, Fletcher-32 or sha256 mismatch, arrays of the wrong
    shape or dtype, or non-finite values).  Nothing is ever unpickled.
    """
    path = Path(path)
    with _open(path) as f:
        raw = f.attrs.get("classes")
        if raw is None:
            if label is not None:
                raise MmsoldError(f"{path}: holds one model, not one per class; expected no class, got {label!r}")
            return _read_group(f, path, "", verify)
        labels = json.loads(_text(raw))
        if label is None:
            raise MmsoldError(f"{path}: holds one model per class ({len(labels)} classes: "
                              f"{', '.join(map(str, labels[:10]))}{' …' if len(labels) > 10 else ''}); "
                              f"name a class (--class) or sample every class (--per-class)")
        match = [i for i, c in enumerate(labels) if str(c) == str(label)]
        if not match:
            raise MmsoldError(f"{path}: no class {label!r}; expected one of {', '.join(map(str, labels))}")
        i = match[0]
        return _read_group(f[f"class_{i}"], path, f"class_{i}/", verify)


def load_class_models(path, *, verify: bool = True) -> dict:
    """Every class's model of a per-class file, by label (in the file's order)."""
    labels = class_labels(path)
    if labels is None:
        raise MmsoldError(f"{path}: holds one model, expected one per class (fit-moments --labels)")
    return {c: load_model(path, verify=verify, label=c) for c in labels}


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
    from .room import available_memory, human_bytes

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
    kth = np.empty(n)  # the k-th distances, averaged as the fit does: the defaults read the same float
    first = np.empty(n) if want_first else None
    for _, block in _blocks(f["knn_idx"]):
        if block.min() < 0 or block.max() >= n:
            bad("/knn_idx holds indices outside the training set")
    for s, block in _blocks(f["knn_sqdist"]):
        if not np.isfinite(block).all():
            bad("/knn_sqdist holds NaN or infinity")
        kth[s : s + len(block)] = block[:, -1]
        if want_first:
            first[s : s + len(block)] = np.maximum(block[:, 0], 0.0)
    return float(np.sqrt(kth).mean()), first


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


