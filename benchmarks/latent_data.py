"""The jobs of the issue "Latent spaces at scale", as seeded functions returning (train, test) float64 arrays.

Shared by ``neighbor_libraries.py`` and ``jax_latent_reference.py`` so that every
benchmark of the issue sees the same codes.  Run by hand (never in CI); the data
file is read from ``$MMSOLD_DATA`` or ``/work/shared/data`` (else ``../shared/data``
next to the checkout) and never committed.

Jobs (``JOBS``):

* ``mnist64``  — MNIST PCA-64: the 60,000 official training images (per-class
  split of ``latent_mnist.split``), PCA fitted on them (784 × 784 covariance,
  64 leading axes, as ``speed.py`` job C); test = the 10,000 test images' codes.
* ``mnist256`` — MNIST PCA-256 on 27,000 training codes: the first 27,000 of a
  seeded permutation (seed 0) of the official training indices — not the first
  27,000 in file order, which is sorted by class and would hold digits 0–4 only;
  PCA fitted on those 27,000 images; test = the 10,000 test images' codes.
* ``mnist784`` — raw MNIST pixels scaled to [0, 1], 60,000 × 784 / 10,000 × 784.
* ``mix200k``  — 200,000 × 64 from :func:`low_rank_mixture`; test = 10,000 fresh draws.
* ``mix1m``    — 1,000,000 × 64 from the same generator (same components); test = 10,000 fresh draws.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Where mnist.npz lives: $MMSOLD_DATA, /work/shared/data, or ../shared/data beside the checkout."""
    for p in (os.environ.get("MMSOLD_DATA"), "/work/shared/data", str(ROOT.parent / "shared" / "data")):
        if p and (Path(p) / "mnist.npz").exists():
            return Path(p)
    raise FileNotFoundError("mnist.npz not found: set MMSOLD_DATA to the folder holding it")


#: Official MNIST training images per class (the test set holds the rest of each class).
TRAIN_PER_CLASS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


def split(labels):
    """Indices of the training and test images: each class split in file order by the official counts."""
    train, test = [], []
    for c, k in enumerate(TRAIN_PER_CLASS):
        idx = np.flatnonzero(labels == c)
        train.append(idx[:k])
        test.append(idx[k:])
    return np.concatenate(train), np.concatenate(test)


def _mnist_pixels():
    """(train, test) pixels in [0, 1], float64, official split (each class split by the official counts)."""
    with np.load(data_dir() / "mnist.npz") as z:
        images = z["images"].reshape(len(z["images"]), -1)
        itr, ite = split(z["labels"])  # the file is sorted by label: the official split per class
    return images[itr].astype(np.float64) / 255.0, images[ite].astype(np.float64) / 255.0


def _pca(train, test, k):
    """Codes of train and test on the k leading principal axes of train (784 × 784 covariance, as speed.py job C)."""
    mu = train.mean(axis=0)
    cov = (train - mu).T @ (train - mu) / len(train)
    _, V = np.linalg.eigh(cov)
    W = V[:, ::-1][:, :k]
    return (train - mu) @ W, (test - mu) @ W


def mnist_pca64(seed: int = 0):
    """60,000 × 64 training codes, 10,000 × 64 test codes (seed unused: the job is deterministic)."""
    tr, te = _mnist_pixels()
    return _pca(tr, te, 64)


def mnist_pca256_27k(seed: int = 0):
    """27,000 × 256 training codes (first 27,000 of a seeded permutation of the official train set), 10,000 test codes."""
    tr, te = _mnist_pixels()
    keep = np.sort(np.random.default_rng(seed).permutation(len(tr))[:27_000])
    return _pca(tr[keep], te, 256)


def mnist_raw784(seed: int = 0):
    """60,000 × 784 training pixels in [0, 1], 10,000 × 784 test pixels."""
    return _mnist_pixels()


def low_rank_mixture(n: int, d: int = 64, *, components: int = 50, rank: int = 8, spread: float = 4.0,
                     noise: float = 0.1, seed: int = 0, test: int = 10_000):
    r"""n + test draws from a seeded mixture of low-rank Gaussians in d dimensions.

    Generator (all from ``np.random.default_rng(seed)``; the components depend only
    on (d, components, rank, spread, seed), so n = 200,000 and n = 1,000,000 share them):

    * means :math:`m_c \sim \mathcal N(0, \text{spread}^2 I_d)`;
    * factors :math:`A_c = Q_c\,\mathrm{diag}(s_c)`, :math:`Q_c` a random d × rank
      orthonormal basis (QR of a Gaussian matrix), scales :math:`s_c` log-uniform on [0.5, 2];
    * weights from a Dirichlet(2, …, 2) (unequal cluster sizes, as in real codes);
    * a draw of component c: :math:`m_c + A_c g + \text{noise}\cdot e`, :math:`g\sim\mathcal N(0, I_{rank})`,
      :math:`e\sim\mathcal N(0, I_d)` — a rank-8 sheet thickened by small isotropic noise,
      so the intrinsic dimension (≈ 8) is far below d as in learned latent spaces.

    Returns (train (n, d), test (test, d)), float64.  The draws are made in blocks so
    that 1,000,000 × 64 needs no more than the output arrays.
    """
    rng = np.random.default_rng(seed)
    means = spread * rng.standard_normal((components, d))
    Q = np.stack([np.linalg.qr(rng.standard_normal((d, rank)))[0] for _ in range(components)])
    scales = np.exp(rng.uniform(np.log(0.5), np.log(2.0), (components, rank)))
    A = Q * scales[:, None, :]
    weights = rng.dirichlet(np.full(components, 2.0))
    # draws come from a second stream keyed by n, so train/test differ between sizes but the components do not
    draw_rng = np.random.default_rng([seed, n])

    def draws(m):
        out = np.empty((m, d))
        for s in range(0, m, 100_000):
            b = min(100_000, m - s)
            c = draw_rng.choice(components, size=b, p=weights)
            g = draw_rng.standard_normal((b, rank))
            out[s:s + b] = means[c] + np.einsum("bdr,br->bd", A[c], g) + noise * draw_rng.standard_normal((b, d))
        return out

    return draws(n), draws(test)


def mixture_200k(seed: int = 0):
    return low_rank_mixture(200_000, seed=seed)


def mixture_1m(seed: int = 0):
    return low_rank_mixture(1_000_000, seed=seed)


#: name -> (description, loader(seed) -> (train, test))
JOBS = {
    "mnist64": ("MNIST PCA-64, 60k", mnist_pca64),
    "mnist256": ("MNIST PCA-256, 27k", mnist_pca256_27k),
    "mnist784": ("MNIST raw 784-D, 60k", mnist_raw784),
    "mix200k": ("mixture 200k × 64", mixture_200k),
    "mix1m": ("mixture 1M × 64", mixture_1m),
}


def load(name: str, seed: int = 0):
    """(train, test) of a job by name."""
    return JOBS[name][1](seed)


if __name__ == "__main__":
    import time

    for name, (what, fn) in JOBS.items():
        t0 = time.perf_counter()
        tr, te = fn(0)
        print(f"{name:9s} {what:22s} train {tr.shape} test {te.shape} {tr.dtype}  ({time.perf_counter() - t0:.1f} s)")
