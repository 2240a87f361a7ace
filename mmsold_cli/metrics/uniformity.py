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

    The balls of the shares around one seed are nested, so the points of the largest are found once and the
    smaller ones are cut from it.  A point's nearest neighbour within a ball is its nearest neighbour in the
    cloud whenever that one lies in the ball too; only for the points whose nearest neighbour lies outside
    (near the ball's rim) is it looked for among their next nearest.  The figures are those of a search
    within each ball (``tests/test_scans_uniformity.py`` holds the direct computation): at 1,000,000 points
    that took 35 s and a k-d tree per ball.

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

    from .uniformity_numba import farthest_points as farthest

    P = np.ascontiguousarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3 or len(P) < 10:
        raise MmsoldError(f"uniformity needs at least 10 points in 3-D, got shape {P.shape}")
    tree = cKDTree(P)
    N = len(P)
    if area is None:
        area = cloud_area(P)
    shares = tuple(shares)
    radii = [float(np.sqrt(p * area / np.pi)) for p in shares]
    near_d, near_i = tree.query(P, k=2, workers=-1)
    nn, nn_d = near_i[:, 1], near_d[:, 1]  # (a repeated point may get itself here: its copy is as near, as placed)
    totals = np.zeros(len(shares))
    for c in P[farthest(P, seeds)]:
        ball = np.asarray(tree.query_ball_point(c, max(radii)), dtype=np.int64)
        to_c = np.sum((P[ball] - c) ** 2, axis=1)
        nn_to_c = np.sum((P[nn[ball]] - c) ** 2, axis=1)
        for s, (p, r) in enumerate(zip(shares, radii)):
            inside = to_c <= r * r
            members = ball[inside]
            k = len(members)
            if k < 2:
                continue  # no spacing to measure; PU-GAN's clutter term is 0 for such a ball
            dq = nn_d[members]
            rim = nn_to_c[inside] > r * r
            if rim.any():
                dq[rim] = _nearest_inside(P, tree, members[rim], members, c, r)
            n_hat = p * N
            d_hat = np.sqrt(2 * np.pi * r * r / (k * np.sqrt(3)))
            totals[s] += (k - n_hat) ** 2 / n_hat * float(np.sum((dq - d_hat) ** 2 / d_hat))
    n_balls = min(int(seeds), N)
    return {f"uniformity_{100 * p:.1f}%": float(t) / n_balls for p, t in zip(shares, totals)}


#: Neighbours searched for a rim point's nearest neighbour within its ball before all the ball's points are.
_RIM_NEIGHBOURS = 16


def _nearest_inside(P, tree, rim, members, c, r) -> np.ndarray:
    """Distance from each point of ``rim`` to its nearest other point of the ball (``members``) around c."""
    k = min(_RIM_NEIGHBOURS, len(P))
    d, i = tree.query(P[rim], k=k)
    i = np.minimum(i, len(P) - 1)  # missing neighbours (k > N) point past the end: masked below
    ok = (np.sum((P[i] - c) ** 2, axis=2) <= r * r) & (i != rim[:, None]) & np.isfinite(d)
    first = np.argmax(ok, axis=1)
    out = d[np.arange(len(rim)), first]
    for j in np.flatnonzero(~ok.any(axis=1)):  # none of its nearest in the ball: search the ball itself
        others = members[members != rim[j]]
        out[j] = np.sqrt(np.min(np.sum((P[others] - P[rim[j]]) ** 2, axis=1)))
    return out
