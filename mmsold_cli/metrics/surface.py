r"""Point-cloud metrics: Chamfer, Hausdorff, exact point-to-mesh distance, coverage.

The upsampling literature [1]_, [2]_, [3]_ compares two clouds after mapping
both to the unit sphere by the reference's centroid :math:`c` and radius
:math:`r = \max_j \|b_j - c\|`, i.e. :math:`x \mapsto (x-c)/r`.  Then

.. math::

    \mathrm{CD}(A,B) &= \frac1{|A|}\sum_{a\in A}\min_{b\in B}\|a-b\|^2
                     + \frac1{|B|}\sum_{b\in B}\min_{a\in A}\|a-b\|^2\\
    \mathrm{HD}(A,B) &= \max\Big(\max_{a}\min_{b}\|a-b\|,\ \max_{b}\min_{a}\|a-b\|\Big)\\
    \mathrm{dist}(a, \mathcal S) &= \min_{T\in\mathcal S}\ \min_{y\in T}\|a-y\|\\
    \mathrm{coverage}(A) &= \frac1{m}\,\#\{\,i : \min_{a\in A}\|s_i - a\| \le \rho\,\},
        \qquad \rho = \tfrac12\,\bar\delta

where
    * :math:`A` are the generated points, :math:`B` the reference points,
    * :math:`\mathcal S` a triangle mesh, :math:`T` its triangles,
    * :math:`s_1..s_m` are :math:`m` = 20,000 points drawn uniformly on :math:`\mathcal S`
      (area-weighted), and :math:`\bar\delta` is the sparse input's mean
      nearest-neighbour distance (its *spacing*).

The point-to-triangle distance is exact: the closest point of each candidate
triangle is found by the Voronoi-region test of [4]_ (vectorised), and the
candidates come from k-d trees over triangle centroids grouped by size, with
the bound :math:`\|a - y\| \ge \|a - c_T\| - r_T` (:math:`c_T` the centroid,
:math:`r_T` the largest centroid-to-vertex distance) ruling out the rest, so
no triangle that could be closer is ever skipped.

References
----------
.. [1] R. Li et al., "PU-GAN: a Point Cloud Upsampling Adversarial Network", ICCV 2019.
.. [2] G. Qian et al., "PU-GCN: Point Cloud Upsampling using Graph Convolutional Networks", CVPR 2021.
.. [3] Y. He et al., "Grad-PU: Arbitrary-Scale Point Cloud Upsampling via Gradient
   Descent with Learned Distance Functions", CVPR 2023.
.. [4] C. Ericson, "Real-Time Collision Detection", Morgan Kaufmann 2005, Sec. 5.1.5.
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError
from ..validation import check_points, check_random_state

__all__ = [
    "COVERAGE_POINTS",
    "MeshDistance",
    "chamfer",
    "closest_point_triangles",
    "coverage",
    "evaluate_cloud",
    "hausdorff",
    "mean_spacing",
    "nn_distance",
    "normalize_unit_sphere",
    "point_to_mesh",
]

#: Uniform surface points the coverage is measured on.
COVERAGE_POINTS = 20_000


def normalize_unit_sphere(A, B):
    """Map A and B by the transform that puts B in the unit sphere.

    Parameters
    ----------
    A : array of shape (m, d)
    B : array of shape (r, d), the reference

    Returns
    -------
    A_n, B_n : arrays of the same shapes
    centre : array of shape (d,)
    radius : float
    """
    centre = B.mean(axis=0)
    radius = float(np.sqrt(((B - centre) ** 2).sum(axis=1).max()))
    if radius == 0:
        raise MmsoldError("reference: all points coincide; cannot normalise to the unit sphere")
    return (A - centre) / radius, (B - centre) / radius, centre, radius


def nn_distance(Q, P) -> np.ndarray:
    """Distance from each row of Q to its nearest row of P: array of shape (len(Q),)."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(P).query(Q, k=1, workers=-1)
    return d


def chamfer(A, B) -> float:
    """Chamfer distance: mean squared nearest-neighbour distance A→B plus B→A."""
    return float(np.mean(nn_distance(A, B) ** 2) + np.mean(nn_distance(B, A) ** 2))


def hausdorff(A, B) -> float:
    """Symmetric Hausdorff distance between two point sets."""
    return float(max(nn_distance(A, B).max(), nn_distance(B, A).max()))


def distinct_rows(X) -> np.ndarray:
    """X without the rows that repeat an earlier row (the first of each kept, in order); X itself when none do."""
    X = np.asarray(X)
    if len(X) < 2:
        return X
    order = np.lexsort(X.T[::-1])  # stable: equal rows keep their order, so the first of each comes first
    S = X[order]
    first = np.ones(len(X), dtype=bool)
    first[1:] = np.any(S[1:] != S[:-1], axis=1)
    return X if first.all() else X[np.sort(order[first])]


def mean_spacing(X) -> float:
    """Mean distance from each distinct point to its nearest other distinct point (0 when all coincide).

    A repeated point would give 0: scans often hold exact duplicates, from merged strips or coordinates
    rounded to the file's grid.
    """
    from scipy.spatial import cKDTree

    X = np.asarray(X)
    d = cKDTree(X).query(X, k=2, workers=-1)[0][:, 1]
    if not (d > 0).all():  # measured again between distinct points only (a tree query is cheaper than a sort)
        X = distinct_rows(X)
        if len(X) < 2:
            return 0.0
        d = cKDTree(X).query(X, k=2, workers=-1)[0][:, 1]
    return float(d.mean())


def _rows_dot(u, v):
    return np.einsum("ij,ij->i", u, v)


def _closest_on_segment(p, a, b):
    ab = b - a
    den = _rows_dot(ab, ab)
    s = np.clip(_rows_dot(p - a, ab) / np.where(den > 0, den, 1.0), 0.0, 1.0)
    return a + s[:, None] * ab


def closest_point_triangles(p, a, b, c) -> np.ndarray:
    """Closest point of triangle (a_i, b_i, c_i) to p_i, row by row.

    Parameters
    ----------
    p, a, b, c : arrays of shape (m, 3)

    Returns
    -------
    y : array of shape (m, 3)
        The point of each triangle nearest to its query (exact, up to rounding).
    """
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = _rows_dot(ab, ap), _rows_dot(ac, ap)
    d3, d4 = _rows_dot(ab, bp), _rows_dot(ac, bp)
    d5, d6 = _rows_dot(ab, cp), _rows_dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        y = a + (vb / den)[:, None] * ab + (vc / den)[:, None] * ac  # inside the face
        w_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        w_ac = d2 / (d2 - d6)
        w_ab = d1 / (d1 - d3)
    # Voronoi regions, the earlier test winning: so apply them last-to-first.
    regions = [
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), lambda: b + w_bc[:, None] * (c - b)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), lambda: a + w_ac[:, None] * ac),
        ((d6 >= 0) & (d5 <= d6), lambda: c),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), lambda: a + w_ab[:, None] * ab),
        ((d3 >= 0) & (d4 <= d3), lambda: b),
        ((d1 <= 0) & (d2 <= 0), lambda: a),
    ]
    for mask, value in regions:
        if mask.any():
            y = np.where(mask[:, None], value(), y)
    cross = np.cross(ab, ac)
    sq_area = _rows_dot(cross, cross)
    bad = (sq_area <= 1e-20 * _rows_dot(ab, ab) * _rows_dot(ac, ac)) | ~np.isfinite(y).all(axis=1)
    if bad.any():  # degenerate (near zero-area) triangles: nearest point of the three edges
        pb, ab_, bb, cb = p[bad], a[bad], b[bad], c[bad]
        cands = [_closest_on_segment(pb, ab_, bb), _closest_on_segment(pb, bb, cb), _closest_on_segment(pb, cb, ab_)]
        dist = np.stack([((pb - q) ** 2).sum(axis=1) for q in cands], axis=1)
        y[bad] = np.stack(cands, axis=1)[np.arange(len(pb)), dist.argmin(axis=1)]
    return y


class MeshDistance:
    """Exact distance from points to a triangle mesh.

    Triangles are grouped by size (bounding radius within a factor of 2), with
    one k-d tree over each group's centroids.  For a query, the nearest few
    centroids give an upper bound :math:`u`; every triangle of a group whose
    centroid lies within :math:`u + r_{\\max}` is then tested, and only those
    with :math:`\\|a-c_T\\| - r_T < u` are computed exactly.

    Parameters
    ----------
    vertices : array of shape (nv, 3)
    faces : array of shape (nf, 3), int
    """

    def __init__(self, vertices, faces):
        from scipy.spatial import cKDTree

        V = check_points(vertices, name="mesh vertices", dim=3)
        F = np.asarray(faces)
        if F.ndim != 2 or F.shape[1] != 3 or F.shape[0] == 0:
            raise MmsoldError(f"mesh faces: expected an array of shape (m, 3), got {F.shape}")
        if F.min() < 0 or F.max() >= V.shape[0]:
            raise MmsoldError(f"mesh faces: indices must lie in [0, {V.shape[0] - 1}]")
        self.tri = V[F]  # (nf, 3, 3)
        self.centroid = self.tri.mean(axis=1)
        self.radius = np.sqrt(((self.tri - self.centroid[:, None]) ** 2).sum(axis=2)).max(axis=1)
        self.tree_all = cKDTree(self.centroid)
        r = np.maximum(self.radius, self.radius.max() * 1e-9)
        level = np.floor(np.log2(r / r.max())).astype(int)
        self.groups = []
        for lv in np.unique(level):
            ids = np.flatnonzero(level == lv)
            self.groups.append((ids, cKDTree(self.centroid[ids]), float(self.radius[ids].max())))

    def _dist_to(self, Q, tri_idx):
        T = self.tri[tri_idx]
        y = closest_point_triangles(Q, T[:, 0], T[:, 1], T[:, 2])
        return np.sqrt(((Q - y) ** 2).sum(axis=1)), y

    def query(self, Q, *, block: int = 8192):
        """Distance and closest surface point of each query.

        Parameters
        ----------
        Q : array of shape (m, 3)

        Returns
        -------
        dist : array of shape (m,)
        closest : array of shape (m, 3)
        """
        Q = check_points(Q, name="points", dim=3)
        dist = np.empty(Q.shape[0])
        closest = np.empty_like(Q)
        for s in range(0, Q.shape[0], block):
            dist[s : s + block], closest[s : s + block] = self._query_block(Q[s : s + block])
        return dist, closest

    def _query_block(self, Q):
        m = Q.shape[0]
        k = min(4, self.centroid.shape[0])
        _, idx = self.tree_all.query(Q, k=k, workers=-1)
        idx = idx.reshape(m, k)
        rows = np.repeat(np.arange(m), k)
        d, y = self._dist_to(np.repeat(Q, k, axis=0), idx.ravel())
        d = d.reshape(m, k)
        j = d.argmin(axis=1)
        best = d[np.arange(m), j]
        closest = y.reshape(m, k, 3)[np.arange(m), j]
        for ids, tree, rmax in self.groups:
            lists = tree.query_ball_point(Q, best + rmax, workers=-1, return_sorted=False)
            counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=m)
            if counts.sum() == 0:
                continue
            rows = np.repeat(np.arange(m), counts)
            cand = ids[np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if len(x)])]
            lower = np.sqrt(((Q[rows] - self.centroid[cand]) ** 2).sum(axis=1)) - self.radius[cand]
            keep = lower < best[rows]
            rows, cand = rows[keep], cand[keep]
            if rows.size == 0:
                continue
            dc, yc = self._dist_to(Q[rows], cand)
            order = np.lexsort((dc, rows))  # per row, the nearest candidate first
            rows_o, first = np.unique(rows[order], return_index=True)
            pick = order[first]
            better = dc[pick] < best[rows_o]
            best[rows_o[better]] = dc[pick][better]
            closest[rows_o[better]] = yc[pick][better]
        return best, closest


def point_to_mesh(points, vertices, faces) -> np.ndarray:
    """Exact distance from each point to the mesh surface: array of shape (m,)."""
    return MeshDistance(vertices, faces).query(points)[0]


def coverage(points, surface_points, radius: float) -> float:
    """Share of ``surface_points`` with a row of ``points`` within ``radius``."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(points).query(surface_points, k=1, distance_upper_bound=radius * (1 + 1e-12), workers=-1)
    return float(np.mean(d <= radius))


def evaluate_cloud(samples, reference, *, mesh=None, spacing: float | None = None,
                   n_surface: int = COVERAGE_POINTS, random_state=0, seeded_only=False) -> dict:
    """Point-cloud metrics of samples against a reference (and optionally a mesh).

    Parameters
    ----------
    samples : array of shape (m, 3)
    reference : array of shape (r, 3)
        Chamfer and Hausdorff are taken after normalising both clouds to the
        reference's unit sphere.
    mesh : tuple (vertices, faces), optional
        Adds the exact point-to-surface distance (mean, 95th percentile,
        maximum) and the coverage of ``n_surface`` uniform surface points.
    spacing : float, optional
        The sparse input's mean nearest-neighbour distance; the coverage radius
        is half of it and distances are also given in its units.  Default:
        the reference's spacing.
    random_state : int
        Seed for the uniform surface points.
    seeded_only : bool
        Only the figure that depends on ``random_state``: the mesh's ``coverage`` (an empty dict without a mesh).

    Returns
    -------
    dict
        ``chamfer``, ``hausdorff`` (unit sphere); with a mesh ``p2s_mean``,
        ``p2s_p95``, ``p2s_max`` (input units), the same divided by the
        spacing (``…_spacings``), ``p2s_mean_unit`` (unit sphere) and
        ``coverage``.
    """
    A = check_points(samples, name="samples", dim=3)
    B = check_points(reference, name="reference", dim=3, min_points=2)
    if spacing is None:
        spacing = mean_spacing(B)
    S = None
    if mesh is not None:
        from ..datasets import surface_samples

        V, F = mesh
        S = surface_samples(np.asarray(V, dtype=float), np.asarray(F), n_surface,
                            random_state=check_random_state(random_state))
    if seeded_only:
        return {} if S is None else {"coverage": coverage(A, S, 0.5 * spacing)}
    An, Bn, _, radius = normalize_unit_sphere(A, B)
    out = {"chamfer": chamfer(An, Bn), "hausdorff": hausdorff(An, Bn), "spacing": float(spacing)}
    if mesh is not None:
        d = MeshDistance(V, F).query(A)[0]
        out.update(
            p2s_mean=float(d.mean()),
            p2s_p95=float(np.percentile(d, 95)),
            p2s_max=float(d.max()),
            p2s_mean_unit=float(d.mean() / radius),
            p2s_mean_spacings=float(d.mean() / spacing),
            p2s_p95_spacings=float(np.percentile(d, 95) / spacing),
            coverage=coverage(A, S, 0.5 * spacing),
        )
    return out
