r"""A linear latent space for images: a PCA basis stored in the model file.

Images :math:`I_1..I_N` of shape (H, W) (or (H, W, C)) are flattened to
:math:`x_i\in\mathbb R^D`, scaled to :math:`[0, 1]` when stored as integers,
and mapped to codes by the :math:`K` leading principal directions:

.. math::

    \bar x = \frac1N\sum_i x_i, \qquad
    \frac1N\sum_i (x_i-\bar x)(x_i-\bar x)^\top = V\Lambda V^\top,\\
    \text{encode}(x) = V_K^\top (x - \bar x), \qquad
    \text{decode}(c) = \mathrm{clip}\big(\bar x + V_K c,\ [\ell, u]\big)

where
    * :math:`V_K` holds the :math:`K` eigenvectors of largest eigenvalue (columns, orthonormal),
    * :math:`[\ell, u]` is the training images' pixel range,
    * each eigenvector's sign is fixed so that its largest-magnitude entry is positive
      (the basis is then a deterministic function of the data).

MM-SOLD then samples codes like any other point set; :func:`decode` turns
samples back into images.  The basis lives in the model file as plain arrays
under ``/extras`` (:func:`to_extras`, :func:`from_extras`), never pickled.
For :math:`D \le 4096` the eigenvectors come from the :math:`D\times D`
covariance; above that from a randomized range finder with power iterations
[1]_.

References
----------
.. [1] N. Halko, P.-G. Martinsson, J. Tropp, "Finding structure with
   randomness", SIAM Review 53(2), 2011.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MmsoldError
from ..validation import check_int, check_random_state

__all__ = ["PCABasis", "decode", "encode", "fit_latent", "fit_pca", "write_decoded", "from_extras", "has_basis",
           "images_from_array", "read_model_points", "to_extras"]

_EXACT_MAX_DIM = 4096


@dataclass
class PCABasis:
    """A fitted PCA basis.

    Attributes
    ----------
    mean : array of shape (D,)
        Mean of the scaled, flattened images.
    components : array of shape (K, D)
        Orthonormal principal directions, rows.
    explained_variance : array of shape (K,)
    shape : tuple of int
        One image's shape, (H, W) or (H, W, C).
    scale : float
        Pixel values were divided by this (255 for uint8 input, else 1).
    lo, hi : float
        Range of the scaled training pixels; decoded images are clipped to it.
    dtype : str
        The input images' dtype, restored by :func:`decode` with ``as_input=True``.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    shape: tuple
    scale: float
    lo: float
    hi: float
    dtype: str

    @property
    def k(self) -> int:
        return int(self.components.shape[0])


def images_from_array(arr, *, name: str = "images") -> np.ndarray:
    """Check an image stack of shape (N, H, W) or (N, H, W, C) with C ≤ 4."""
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise MmsoldError(f"{name}: expected numbers, got dtype {a.dtype}")
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] > 4):
        raise MmsoldError(f"{name}: expected images of shape (N, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.shape[0] < 2:
        raise MmsoldError(f"{name}: expected at least 2 images, got {a.shape[0]}")
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1))
        if bad.size:
            raise MmsoldError(f"{name}: {bad.size} of {a.shape[0]} images contain NaN or infinity (first: image "
                              f"{bad[0]})")
    return a


def _scale_of(a: np.ndarray) -> float:
    if a.dtype.kind in "ui" and a.dtype.itemsize == 1:
        return 255.0
    if a.dtype.kind in "ui":
        return float(np.iinfo(a.dtype).max)
    return 1.0


def fit_pca(images, k: int, *, random_state=0, block: int = 8192) -> PCABasis:
    """Fit the K leading principal directions of an image stack.

    Parameters
    ----------
    images : array of shape (N, H, W) or (N, H, W, C)
    k : int
        Number of components, 1 ≤ k ≤ min(N − 1, D).
    random_state : int
        Seed of the randomized solver (used only when D > 4096).

    Returns
    -------
    PCABasis
    """
    a = images_from_array(images)
    N = a.shape[0]
    D = int(np.prod(a.shape[1:]))
    k = check_int(k, "number of PCA components K", low=1, high=min(N - 1, D))
    scale = _scale_of(a)
    mean = np.zeros(D)
    lo, hi = np.inf, -np.inf
    for s in range(0, N, block):
        x = a[s : s + block].reshape(-1, D).astype(np.float64) / scale
        if not np.isfinite(x).all():
            raise MmsoldError("images: contain NaN or infinity")
        mean += x.sum(axis=0)
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    mean /= N

    def centred(s):
        return a[s : s + block].reshape(-1, D).astype(np.float64) / scale - mean

    if D <= _EXACT_MAX_DIM:
        C = np.zeros((D, D))
        for s in range(0, N, block):
            x = centred(s)
            C += x.T @ x
        lam, vec = np.linalg.eigh(C / N)
        order = np.argsort(lam)[::-1][:k]
        lam, V = lam[order], vec[:, order]
    else:
        rng = check_random_state(random_state)
        p = min(k + 10, D)
        Q = rng.standard_normal((D, p))
        for _ in range(4):  # power iterations on X^T X, re-orthonormalised
            Y = np.zeros((D, p))
            for s in range(0, N, block):
                x = centred(s)
                Y += x.T @ (x @ Q)
            Q, _ = np.linalg.qr(Y)
        B = np.zeros((p, p))
        for s in range(0, N, block):
            xq = centred(s) @ Q
            B += xq.T @ xq
        lam, vec = np.linalg.eigh(B / N)
        order = np.argsort(lam)[::-1][:k]
        lam, V = lam[order], Q @ vec[:, order]
    sign = np.sign(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])])
    V = V * np.where(sign == 0, 1.0, sign)
    return PCABasis(mean, np.ascontiguousarray(V.T), np.maximum(lam, 0.0), tuple(int(s) for s in a.shape[1:]),
                    scale, float(lo), float(hi), str(a.dtype))


def encode(images, basis: PCABasis, *, block: int = 8192) -> np.ndarray:
    """Codes of images in the basis: array of shape (N, K)."""
    a = images_from_array(images)
    if tuple(a.shape[1:]) != tuple(basis.shape):
        raise MmsoldError(f"images: expected images of shape {tuple(basis.shape)}, got {tuple(a.shape[1:])}")
    D = basis.mean.shape[0]
    out = np.empty((a.shape[0], basis.k))
    for s in range(0, a.shape[0], block):
        x = a[s : s + block].reshape(-1, D).astype(np.float64) / basis.scale
        out[s : s + block] = (x - basis.mean) @ basis.components.T
    return out


def decode(codes, basis: PCABasis, *, as_input: bool = False, clip: bool = True) -> np.ndarray:
    """Images from codes.

    Parameters
    ----------
    codes : array of shape (N, K)
    basis : PCABasis
    as_input : bool
        Return the input's units and dtype (e.g. uint8 0..255) instead of
        float32 in the scaled range.
    clip : bool
        Clip to the training pixel range.

    Returns
    -------
    images : array of shape (N, *basis.shape)
    """
    c = np.asarray(codes, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != basis.k:
        raise MmsoldError(f"codes: expected shape (N, {basis.k}), got {c.shape}")
    x = basis.mean + c @ basis.components
    if clip:
        x = np.clip(x, basis.lo, basis.hi)
    x = x.reshape((c.shape[0],) + tuple(basis.shape))
    if not as_input:
        return x.astype(np.float32)
    dt = np.dtype(basis.dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(x * basis.scale), info.min, info.max).astype(dt)
    return (x * basis.scale).astype(dt)


_KEYS = ("pca_mean", "pca_components", "pca_explained_variance", "pca_shape", "pca_meta")


def to_extras(basis: PCABasis) -> dict:
    """The basis as plain arrays for :attr:`Model.extras_` (stored under ``/extras``)."""
    return {
        "pca_mean": basis.mean,
        "pca_components": basis.components,
        "pca_explained_variance": basis.explained_variance,
        "pca_shape": np.asarray(basis.shape, dtype=np.int64),
        "pca_meta": np.asarray([basis.scale, basis.lo, basis.hi]),
        "pca_dtype": np.bytes_(basis.dtype),
    }


def has_basis(model) -> bool:
    """Whether a model carries a PCA basis."""
    extras = getattr(model, "extras_", None) or {}
    return all(k in extras for k in _KEYS)


def from_extras(extras: dict) -> PCABasis:
    """Rebuild a :class:`PCABasis` from a model's ``extras_``."""
    missing = [k for k in _KEYS if k not in extras]
    if missing:
        raise MmsoldError(f"model has no PCA basis (missing {', '.join(missing)}); fit it with fit-moments --pca K")
    scale, lo, hi = (float(v) for v in np.asarray(extras["pca_meta"]).ravel()[:3])
    dt = extras.get("pca_dtype", b"float64")
    dt = np.asarray(dt).item() if isinstance(dt, np.ndarray) else dt  # h5py gives bytes or a 0-d array
    dt = dt.decode() if isinstance(dt, bytes) else str(dt)
    comps = np.asarray(extras["pca_components"], dtype=np.float64)
    mean = np.asarray(extras["pca_mean"], dtype=np.float64)
    shape = tuple(int(s) for s in np.asarray(extras["pca_shape"]).ravel())
    if comps.ndim != 2 or comps.shape[1] != mean.shape[0] or int(np.prod(shape)) != mean.shape[0]:
        raise MmsoldError(f"model's PCA basis is inconsistent: components {comps.shape}, mean {mean.shape}, shape {shape}")
    return PCABasis(mean, comps, np.asarray(extras["pca_explained_variance"], dtype=np.float64), shape,
                    scale, lo, hi, dt)


def read_model_points(spec, basis: PCABasis | None) -> np.ndarray:
    """Points to set beside a model's, (n, d): as stored, or for an image stack (n, H, W[, C]) its codes in the
    model's PCA basis (rows of the basis's pixel count are images too), without a basis its pixels.

    So ``evaluate samples.npy test_images.npy --train model.h5`` and ``classify model.h5 test_images.npy`` take a
    ``--pca`` model's held-out images as the codes the model holds."""
    from ..io.arrays import read_array
    from ..validation import check_points

    arr = read_array(spec)
    if arr.ndim == 2 and basis is not None and arr.shape[1] == basis.mean.shape[0] != basis.k:
        arr = arr.reshape((len(arr),) + tuple(basis.shape))
    if arr.ndim in (3, 4):
        arr = encode(images_from_array(arr, name=str(spec)), basis) if basis is not None \
            else np.asarray(arr, dtype=np.float64).reshape(len(arr), -1)
    return check_points(arr, name=str(spec))


def fit_latent(images, k: int, *, index: str = "auto", name: str = "images"):
    """Fit a K-component PCA basis to images (N × H × W), encode them and fit a model to the codes.

    Returns ``(model, basis)``; the basis is stored in the model (``model.extras_``) so that a saved
    model decodes its samples.
    """
    from ..model import fit_moments

    images = images_from_array(images, name=name)
    basis = fit_pca(images, k)
    model = fit_moments(encode(images, basis), index=index, name=name)
    model.extras_ = to_extras(basis)
    return model, basis


def write_decoded(images_path, png_path, codes, basis, *, grid: int = 100) -> None:
    """Decode codes to images: all of them to ``images_path`` (.npy, the input's dtype and scale) and a grid of
    the first ``grid`` to ``png_path``."""
    from ..plots import png_bytes, tile_images

    with open(images_path, "wb") as fh:
        np.save(fh, decode(codes, basis, as_input=True), allow_pickle=False)
    Path(png_path).write_bytes(png_bytes(tile_images(decode(codes[:grid], basis), ncol=10)))
