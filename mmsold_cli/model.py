r"""The fitted model: training points, their moments, and the neighbour index.

.. math::

    \mu = \frac1n\sum_j x_j, \qquad
    \Sigma = \frac1n\sum_j (x_j-\mu)(x_j-\mu)^\top = L L^\top

Model files (HDF5, never pickle) are written and read by :mod:`mmsold_cli.io.model_file`;
``Model.save`` and ``Model.load`` call it.

Degenerate training sets are handled, not refused, where the method still
makes sense:

* **singular covariance** (a planar cloud, a constant column, fewer distinct
  points than d + 1): up to 8-D the documented jitter of :func:`_cholesky`,
  above it the samples held on the covariance's support
  (:func:`mmsold_cli.sampling.support_factor`: constant columns stay constant),
  with a :class:`~mmsold_cli.errors.MmsoldWarning`;
* **exact duplicates**: they keep their weight in the empirical law, while
  the spacing :math:`\delta` (hence the default t) and the memorisation
  threshold use each point's nearest *distinct* neighbour, with a warning.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from .defaults import FLAT, GRAPH_K, SUPPORT_ABOVE
from .errors import MmsoldError, MmsoldWarning
from .neighbors.indexes import build_index, check_index, choose_index, knn_graph
from .validation import check_points, check_spread

__all__ = ["Model", "fit_moments"]

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
    if lam[0] > FLAT * lam_max:
        try:
            return np.linalg.cholesky(cov), 0.0
        except np.linalg.LinAlgError:
            pass
    jitter = 1e-6 * lam_max
    n_flat = int(np.sum(lam <= FLAT * lam_max))
    d = cov.shape[0]
    held = (f"samples are held on its {d - n_flat}-dimensional support" if d > SUPPORT_ABOVE
            else f"adding {jitter:.3g}·I to the target covariance")
    warnings.warn(
        f"{name}: covariance is singular ({n_flat} of {d} directions without spread, "
        f"e.g. a planar cloud or a constant column); {held}",
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

    def fit(self, X, *, name: str = "data", moments=None):
        """Validate X, compute its moments, build the index.

        Parameters
        ----------
        X : array-like of shape (n, d)
            n ≥ d + 1 finite points.
        name : str
            Used in error messages.
        moments : (mean, covariance), optional
            X's moments computed elsewhere (by map-reduce over its blocks on a cluster,
            :mod:`mmsold_cli.distributed.moments`), used instead of computing them here.

        Returns
        -------
        self : Model
        """
        X = check_points(X, name=name, min_points=2)
        n, d = X.shape
        if n < d + 1:
            raise MmsoldError(f"{name}: expected at least d + 1 = {d + 1} points for {d}-D data, got {n}")
        check_index(self.index, d)  # before the moments' warnings: one line for one bad option
        self.X_ = X
        if moments is not None:
            mean, cov = (np.asarray(v, dtype=np.float64) for v in moments)
            if mean.shape != (d,) or cov.shape != (d, d):
                raise MmsoldError(f"{name}: moments of shape {mean.shape}, {cov.shape} for {d}-D points")
            self.mean_, self.covariance_ = mean, cov
        else:
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
        if self.index_kind_ == "nndescent":  # the index a saved model is loaded with (it starts from the graph), so
            self.index_ = build_index(X, "nndescent", graph=self.knn_idx_)  # a reload answers as the fit did
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

    # The k-NN graph and /nn_dist of a loaded model stay in its file until first read (see the Attributes):
    # ``graph_reader_`` (set by the loader) reads one of them by name.
    def _graph_array(self, key: str) -> np.ndarray:
        value = self.__dict__.get("_" + key)
        if value is None:
            reader = self.__dict__.get("graph_reader_")
            if reader is None:
                raise AttributeError(f"{key}_")
            value = reader(key)
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
        """Write the model to one HDF5 file, atomically (:func:`mmsold_cli.io.model_file.save_model`)."""
        from .io.model_file import save_model

        return save_model(self, path, overwrite=overwrite, settings=settings)

    @classmethod
    def load(cls, path, *, verify: bool = True) -> "Model":
        """Read a model file and rebuild its index (:func:`mmsold_cli.io.model_file.load_model`)."""
        from .io.model_file import load_model

        return load_model(path, verify=verify)

def fit_moments(X, *, index: str = "auto", name: str = "data") -> Model:
    """Fit a :class:`Model` to training points X of shape (n, d)."""
    return Model(index=index).fit(X, name=name)
