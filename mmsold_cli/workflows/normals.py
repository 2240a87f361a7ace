r"""Surface normals of a point cloud: estimated by local PCA, oriented consistently.

Estimation [1]_: the normal at :math:`x_i` is the eigenvector of the smallest
eigenvalue of the covariance of its :math:`k` nearest neighbours,

.. math::

    C_i = \frac1k \sum_{j \in N_k(i)} (x_j - \bar x_i)(x_j - \bar x_i)^\top,
    \qquad C_i \nu_i = \lambda_{\min} \nu_i .

Orientation [1]_: PCA gives :math:`\pm\nu_i`.  Signs are made consistent by
propagating along a minimum spanning tree of the :math:`k`-nearest-neighbour
graph with edge cost :math:`1 - |\nu_i^\top \nu_j| + 10^{-9}` (nearly parallel
normals are crossed first, so a flip is decided where it is least ambiguous),
flipping a child when :math:`\nu_{\text{child}}^\top \nu_{\text{parent}} < 0`.
Each connected part starts from its point farthest from the part's centroid,
whose normal is pointed away from the centroid — outward on a closed object.
``orient="up"`` instead points every normal to :math:`+z` (airborne scans);
``orient=(x, y, z)`` points them towards a scanner position.

New points take the PCA normal of their :math:`k` nearest input points, signed
to agree with the nearest input point's oriented normal.

References
----------
.. [1] H. Hoppe, T. DeRose, T. Duchamp, J. McDonald, W. Stuetzle, "Surface
   reconstruction from unorganized points", SIGGRAPH 1992.
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError

__all__ = ["estimate_normals", "orient_normals", "normals_for", "orientation", "scan_viewpoints", "NORMAL_NEIGHBOURS"]

#: Neighbours of the PCA fit.
NORMAL_NEIGHBOURS = 16
_BLOCK = 131_072


def orientation(normals):
    """The ``orient`` of :func:`estimate_normals` that a ``normals`` option asks for: "mst", "up", "scanner" or a
    tuple.

    True, "out" or "mst": "mst" (consistent, outward on a closed object); "up": towards +z, as airborne scans
    want (an open surface has no outside, and the "mst" rule then points it whichever way its farthest
    point's normal happens to face); "x,y,z" or a sequence of 3 numbers: towards that scanner position;
    "scanner": each point towards the scanner that saw it (:func:`scan_viewpoints`; densify turns the input's
    normals so, and the new points take their nearest input point's side).
    The result is its own answer, so it can be passed on as ``normals`` and asked again.
    """
    if normals is True or (isinstance(normals, str) and normals.strip().lower() in ("out", "mst")):
        return "mst"
    if isinstance(normals, str) and normals.strip().lower() in ("up", "scanner"):
        return normals.strip().lower()
    try:
        v = np.array([float(c) for c in normals.split(",")] if isinstance(normals, str) else normals, dtype=np.float64)
    except (TypeError, ValueError):
        v = None
    if v is None or v.shape != (3,) or not np.all(np.isfinite(v)):
        raise MmsoldError(f"normals must point 'out', 'up', towards the 'scanner' or a position 'x,y,z', "
                          f"got {normals!r}")
    return tuple(v.tolist())


def scan_viewpoints(cloud) -> np.ndarray:
    """Each point's scanner position, shape (n, 3): the pose of the scan that saw it (an E57 file's
    ``meta["scan_origins"]`` and, with several scans, its ``scan_index`` attribute)."""
    origins = cloud.meta.get("scan_origins")
    if origins is None:
        raise MmsoldError("normals towards the scanner need the scanners' positions, which an E57 file holds and "
                          f"this {cloud.fmt or 'input'} file does not; give one position as --normals-toward X,Y,Z")
    origins = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    if len(origins) == 1:
        return np.broadcast_to(origins[0], (len(cloud), 3))
    return origins[np.asarray(cloud.attributes["scan_index"], dtype=np.int64)]


def _pca_normals(Q, X, tree, k):
    out = np.empty((len(Q), 3))
    for s in range(0, len(Q), _BLOCK):
        _, idx = tree.query(Q[s : s + _BLOCK], k=k, workers=-1)
        P = X[idx]
        D = P - P.mean(axis=1, keepdims=True)
        C = np.einsum("mki,mkj->mij", D, D)
        out[s : s + _BLOCK] = np.linalg.eigh(C)[1][..., 0]
    return out


def estimate_normals(X, *, neighbours: int = NORMAL_NEIGHBOURS, orient="mst", tree=None, components: bool = False):
    """Unit normals of X, shape (n, 3), oriented as ``orient`` says (module docstring).

    Parameters
    ----------
    X : array of shape (n, 3), n ≥ 3
    neighbours : int
        k of the PCA (at most n).
    orient : "mst", "up", "none", a viewpoint (x, y, z) or one per point, array (n, 3)
    tree : scipy.spatial.cKDTree over X, optional
    components : bool
        Also return each point's connected part (see :func:`orient_normals`).
    """
    from scipy.spatial import cKDTree

    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 3 or len(X) < 3:
        raise MmsoldError(f"normals need at least 3 points in 3-D, got shape {X.shape}")
    tree = cKDTree(X) if tree is None else tree
    k = max(3, min(int(neighbours), len(X)))
    N = _pca_normals(X, X, tree, k)
    return orient_normals(X, N, orient=orient, tree=tree, neighbours=k, components=components)


def orient_normals(X, N, *, orient="mst", tree=None, neighbours: int = NORMAL_NEIGHBOURS, components: bool = False):
    """Flip the signs of normals N so they agree (module docstring); returns a new array.

    ``components=True`` (with ``orient="mst"``) also returns each point's connected part of the graph, whose
    signs were set together (array of shape (n,), int): the parts :func:`mmsold_cli.workflows.tiles.oriented_normals`
    makes agree across tiles.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    N = np.array(N, dtype=np.float64)
    if isinstance(orient, str) and orient == "none":
        return N
    if isinstance(orient, str) and orient == "up":
        return np.where((N[:, 2] < 0)[:, None], -N, N)
    if not isinstance(orient, str):  # one viewpoint, or each point's own (rows of an (n, 3) array)
        v = np.asarray(orient, dtype=np.float64)
        if v.shape not in ((3,), (len(X), 3)):
            raise MmsoldError(f"normal orientation must be 'mst', 'up', 'none' or a viewpoint (x, y, z), got {orient!r}")
        return np.where((np.einsum("ij,ij->i", N, v - X) < 0)[:, None], -N, N)
    if orient != "mst":
        raise MmsoldError(f"normal orientation must be 'mst', 'up', 'none' or a viewpoint (x, y, z), got {orient!r}")
    n = len(X)
    tree = cKDTree(X) if tree is None else tree
    k = max(2, min(int(neighbours), n))
    _, idx = tree.query(X, k=k, workers=-1)
    rows = np.repeat(np.arange(n), k - 1)
    cols = idx[:, 1:].ravel()
    cost = 1.0 - np.abs(np.einsum("ij,ij->i", N[rows], N[cols])) + 1e-9  # > 0: csgraph drops zero-weight edges
    G = coo_matrix((cost, (rows, cols)), shape=(n, n)).tocsr()
    G = G.maximum(G.T)  # undirected
    T = minimum_spanning_tree(G)
    T = T + T.T
    n_comp, comp = connected_components(T, directed=False)
    for c in range(n_comp):
        members = np.flatnonzero(comp == c)
        centre = X[members].mean(axis=0)
        seed = members[np.argmax(np.linalg.norm(X[members] - centre, axis=1))]
        if N[seed] @ (X[seed] - centre) < 0:
            N[seed] = -N[seed]
        if len(members) == 1:
            continue
        order, pred = breadth_first_order(T, seed, directed=False, return_predecessors=True)
        child = order[1:]
        # sign of child = sign of parent × sign(ν_child·ν_parent) for the unflipped normals; parents come
        # before children in breadth-first order, so one pass over plain lists settles every sign
        edge = (np.einsum("ij,ij->i", N[child], N[pred[child]]) >= 0).tolist()
        par = pred[child].tolist()
        sign = {int(seed): True}
        for i, p, e in zip(child.tolist(), par, edge):
            sign[i] = sign[p] == e
        flip = np.array([i for i, s in sign.items() if not s], dtype=np.int64)
        N[flip] = -N[flip]
    return (N, comp) if components else N


def normals_for(Z, X, NX, *, neighbours: int = NORMAL_NEIGHBOURS, tree=None, orient="mst") -> np.ndarray:
    """Normals of new points Z from input points X with oriented normals NX (module docstring).

    ``orient`` "up" or a viewpoint is a rule for each point on its own: the new points follow it too (a
    point on a wall may otherwise tip below the horizontal its input neighbour sits on); with "mst" they take
    their nearest input point's side.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(X) if tree is None else tree
    k = max(3, min(int(neighbours), len(X)))
    NZ = _pca_normals(np.ascontiguousarray(Z, dtype=np.float64), X, tree, k)
    if orient != "mst":
        return orient_normals(Z, NZ, orient=orient)
    _, near = tree.query(Z, k=1, workers=-1)
    flip = np.einsum("ij,ij->i", NZ, NX[near]) < 0
    NZ[flip] = -NZ[flip]
    return NZ
