r"""PU-GAN's uniformity measure of a point cloud on a surface [1]_.

Seeds :math:`c_1 \dots c_M` are taken by farthest-point sampling of the cloud
:math:`P` (:math:`|P| = N`).  For an area share :math:`p` of the surface (area
:math:`A`), the ball :math:`S_i` of radius :math:`r_p = \sqrt{pA/\pi}` around
:math:`c_i` should hold :math:`\hat n = pN` points at a hexagonal spacing
:math:`\hat d = \sqrt{2\pi r_p^2 / (|S_i| \sqrt3)}`.  With :math:`d_{ij}` the
distance from the :math:`j`-th point of :math:`S_i` to its nearest neighbour
in :math:`S_i`,

.. math::

    U_\text{imbalance}(S_i) = \frac{(|S_i| - \hat n)^2}{\hat n}, \qquad
    U_\text{clutter}(S_i) = \sum_{j} \frac{(d_{ij} - \hat d)^2}{\hat d}, \qquad
    U(p) = \frac1M \sum_{i=1}^M U_\text{imbalance}(S_i)\, U_\text{clutter}(S_i).

PU-GAN reports :math:`U(p)` for :math:`p \in \{0.4, 0.6, 0.8, 1.0, 1.2\}\,\%`
(lower is more uniform).  Here the balls are Euclidean, not geodesic (the
same to first order for :math:`r_p` well below the surface's radius of
curvature), and :math:`A` is the mesh's area, or else estimated from the
cloud as :math:`A \approx 4N\bar\delta^2`, with :math:`\bar\delta` its
mean nearest-neighbour distance: exact in expectation for independent
uniform points (mean nearest distance :math:`\tfrac12\rho^{-1/2}` at density
:math:`\rho`), an overestimate for evenly spread ones (up to 4.6× for a
hexagonal grid) — give the area when it is known.  The absolute values therefore differ
from PU-GAN's code; compare clouds measured the same way.

References
----------
.. [1] R. Li, X. Li, C.-W. Fu, D. Cohen-Or, P.-A. Heng, "PU-GAN: a point
   cloud upsampling adversarial network", ICCV 2019, eq. (5)–(7).
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError

__all__ = ["UNIFORMITY_SHARES", "UNIFORMITY_SEEDS", "cloud_area", "farthest_points", "mesh_area", "uniformity"]

#: Area shares p of PU-GAN's table.
UNIFORMITY_SHARES = (0.004, 0.006, 0.008, 0.010, 0.012)
#: Balls M (PU-GAN's evaluation uses 1,000).
UNIFORMITY_SEEDS = 1000


def mesh_area(vertices, faces) -> float:
    """Total area of a triangle mesh."""
    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(faces, dtype=np.int64)
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


def cloud_area(P) -> float:
    r"""Surface area estimated from a cloud of independent uniform points on it: :math:`4N\bar\delta^2`."""
    from scipy.spatial import cKDTree

    P = np.asarray(P, dtype=np.float64)
    delta = float(cKDTree(P).query(P, k=2, workers=-1)[0][:, 1].mean())
    return 4.0 * len(P) * delta * delta


def farthest_points(P, m: int, *, start: int = 0) -> np.ndarray:
    """Indices of m points of P by farthest-point sampling from ``start``."""
    P = np.asarray(P, dtype=np.float64)
    m = min(int(m), len(P))
    idx = np.empty(m, dtype=np.int64)
    idx[0] = start
    d = np.sum((P - P[start]) ** 2, axis=1)
    for i in range(1, m):  # m steps of O(N): the seeds are few (1,000)
        idx[i] = int(np.argmax(d))
        d = np.minimum(d, np.sum((P - P[idx[i]]) ** 2, axis=1))
    return idx


def uniformity(P, *, area: float | None = None, shares=UNIFORMITY_SHARES, seeds: int = 1000) -> dict:
    """PU-GAN uniformity :math:`U(p)` for each share p (module docstring).

    Parameters
    ----------
    P : array of shape (N, 3)
    area : float, optional
        Surface area (e.g. of the mesh); default estimated from P.
    shares : iterable of float
    seeds : int
        Balls M.

    Returns
    -------
    dict
        ``{"uniformity_0.4%": U, …}``.
    """
    from scipy.spatial import cKDTree

    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3 or len(P) < 10:
        raise MmsoldError(f"uniformity needs at least 10 points in 3-D, got shape {P.shape}")
    tree = cKDTree(P)
    N = len(P)
    if area is None:
        area = cloud_area(P)
    centres = P[farthest_points(P, seeds)]
    out = {}
    for p in shares:
        r = np.sqrt(p * area / np.pi)
        n_hat = p * N
        total = 0.0
        for members in tree.query_ball_point(centres, r, workers=-1):
            k = len(members)
            imbalance = (k - n_hat) ** 2 / n_hat
            if k < 2:
                continue  # no spacing to measure; PU-GAN's clutter term is 0 for such a ball
            Q = P[members]
            dq = cKDTree(Q).query(Q, k=2)[0][:, 1]
            d_hat = np.sqrt(2 * np.pi * r * r / (k * np.sqrt(3)))
            total += imbalance * float(np.sum((dq - d_hat) ** 2 / d_hat))
        out[f"uniformity_{100 * p:.1f}%"] = total / len(centres)
    return out
