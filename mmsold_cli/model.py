r"""The fitted model: training points, their moments, and the neighbour index.

.. math::

    \mu = \frac1n\sum_j x_j, \qquad
    \Sigma = \frac1n\sum_j (x_j-\mu)(x_j-\mu)^\top = L L^\top

A model file is HDF5 with datasets and attributes only (never pickle):
``/points``, ``/mean``, ``/covariance``, ``/cholesky``, ``/knn_idx`` and
``/knn_sqdist`` (each training point's nearest other points, from which the
spacing, the memorisation threshold and a pynndescent index are rebuilt
without a new descent), plus attributes ``format``, ``format_version``,
``mmsold_version``, ``index``, ``settings`` (JSON) and ``sha256`` of the
points.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from .errors import MmsoldError, MmsoldWarning
from .neighbors import INDEX_KINDS, build_index, choose_index, knn_graph
from .validation import check_points

__all__ = ["Model", "fit_moments", "FORMAT", "FORMAT_VERSION"]

FORMAT = "mmsold-model"
FORMAT_VERSION = 1

#: Neighbours kept per training point in the model file.
GRAPH_K = 16


def _version() -> str:
    from . import __version__

    return __version__


def _checksum(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, dtype="<f8").tobytes()).hexdigest()


def _cholesky(cov: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """Cholesky factor, with a documented jitter for singular covariances.

    A planar point cloud (or duplicated / constant columns) has a singular
    covariance.  We add :math:`\\delta = 10^{-6}\\,\\lambda_{\\max}` to the
    diagonal, so the target keeps the data's spread in every direction it
    has and a negligible one (standard deviation :math:`10^{-3}\\sqrt{\\lambda_{\\max}}`)
    across the others, and warn.
    """
    lam = np.linalg.eigvalsh(cov)
    lam_max = float(lam[-1])
    if lam_max <= 0:
        raise MmsoldError(f"{name}: all points are identical (zero covariance); nothing to sample")
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


class Model:
    """Moments and neighbour index of a training set.

    Parameters
    ----------
    index : {"auto", "kdtree", "brute", "nndescent"}
        Neighbour search backend; ``auto`` chooses by size and dimension
        (see :func:`mmsold_cli.neighbors.choose_index`).

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
        Diagonal added for a singular covariance (0 when regular).
    knn_idx_, knn_sqdist_ : arrays of shape (n, k)
        Each training point's nearest other points.
    nn_dist_ : array of shape (n,)
        Distance to the nearest other training point.
    spacing_ : float
        Mean of ``nn_dist_``, the length scale the defaults are built on.
    index_ : object
        The search structure (rebuilt on load, never stored as an object).
    index_kind_ : str
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
        self.cholesky_, self.jitter_ = _cholesky(self.covariance_, name)
        self.index_kind_ = choose_index(n, d) if self.index == "auto" else self.index
        self.index_ = build_index(X, self.index_kind_)
        sq, idx = knn_graph(X, GRAPH_K, self.index_)
        self.knn_sqdist_, self.knn_idx_ = sq, idx
        self._set_spacing()
        self.sha256_ = _checksum(X)
        return self

    def _set_spacing(self):
        self.nn_dist_ = np.sqrt(self.knn_sqdist_[:, 0])
        self.spacing_ = float(self.nn_dist_.mean())
        if self.spacing_ == 0.0:
            raise MmsoldError("all training points are duplicates of one another; nothing to sample")
        if np.mean(self.nn_dist_ == 0) > 0.5:
            warnings.warn(
                f"{np.mean(self.nn_dist_ == 0):.0%} of training points have an exact duplicate",
                MmsoldWarning,
                stacklevel=3,
            )

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
        """Write the model to one HDF5 file (atomically)."""
        import h5py

        from .io import atomic_path

        self._check_fitted()
        path = Path(path)
        try:
            with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["mmsold_version"] = _version()
                f.attrs["index"] = self.index_kind_
                f.attrs["jitter"] = self.jitter_
                f.attrs["sha256"] = self.sha256_
                f.attrs["settings"] = json.dumps(settings or {})
                f.create_dataset("points", data=self.X_)
                f.create_dataset("mean", data=self.mean_)
                f.create_dataset("covariance", data=self.covariance_)
                f.create_dataset("cholesky", data=self.cholesky_)
                f.create_dataset("knn_idx", data=self.knn_idx_.astype(np.int32))
                f.create_dataset("knn_sqdist", data=self.knn_sqdist_)
                for key, value in getattr(self, "extras_", {}).items():
                    f.create_dataset(f"extras/{key}", data=value)
        except OSError as exc:
            raise MmsoldError(f"{path}: cannot write model ({exc})") from exc
        return path

    @classmethod
    def load(cls, path, *, verify: bool = True) -> "Model":
        """Read a model file written by :meth:`save` and rebuild its index."""
        import h5py

        path = Path(path)
        if not path.exists():
            raise MmsoldError(f"{path}: no such file")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise MmsoldError(f"{path}: not a readable HDF5 model file (truncated or corrupted?)") from exc
        try:
            with f:
                fmt = f.attrs.get("format")
                if isinstance(fmt, bytes):
                    fmt = fmt.decode()
                if fmt != FORMAT:
                    raise MmsoldError(f"{path}: not an mmsold model file (format attribute {fmt!r}, expected {FORMAT!r})")
                version = int(f.attrs.get("format_version", -1))
                if version > FORMAT_VERSION or version < 1:
                    raise MmsoldError(
                        f"{path}: model format version {version}; this mmsold {_version()} reads versions 1 to {FORMAT_VERSION}"
                    )
                m = cls(index=str(f.attrs["index"]))
                m.X_ = f["points"][()]
                m.mean_ = f["mean"][()]
                m.covariance_ = f["covariance"][()]
                m.cholesky_ = f["cholesky"][()]
                m.jitter_ = float(f.attrs.get("jitter", 0.0))
                m.knn_idx_ = f["knn_idx"][()].astype(np.int64)
                m.knn_sqdist_ = f["knn_sqdist"][()]
                m.sha256_ = str(f.attrs["sha256"])
                m.settings_ = json.loads(f.attrs.get("settings", "{}"))
                m.extras_ = {k: v[()] for k, v in f["extras"].items()} if "extras" in f else {}
        except MmsoldError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise MmsoldError(f"{path}: damaged model file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
        if verify and _checksum(m.X_) != m.sha256_:
            raise MmsoldError(f"{path}: checksum mismatch: the stored points are corrupted")
        m.index_kind_ = m.index
        m.nn_dist_ = np.sqrt(m.knn_sqdist_[:, 0])
        m.spacing_ = float(m.nn_dist_.mean())
        graph = m.knn_idx_ if m.index_kind_ == "nndescent" else None
        m.index_ = build_index(m.X_, m.index_kind_, graph=graph)
        return m


def fit_moments(X, *, index: str = "auto", name: str = "data") -> Model:
    """Fit a :class:`Model` to training points X of shape (n, d)."""
    return Model(index=index).fit(X, name=name)
