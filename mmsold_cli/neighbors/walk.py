r"""Graph walks: each particle's c nearest training points, kept up to date without searching all n.

A particle keeps a *beam*: c training points sorted by squared distance to its
position.  Each step re-measures the beam at the new position and then
*expands* beam entries, nearest first: an expansion offers the entry's g
neighbours in the training set's k-NN graph, each kept if it beats the beam's
worst.  The walk stops when the first ``width`` entries of the beam are all
expanded or after ``max_expand`` expansions,

.. math::

    B \leftarrow \operatorname{top}_c\bigl(B \cup G(j)\bigr) \quad
    \text{for } j = \text{the nearest unexpanded entry among the first } w,

so a step costs at most :math:`c + w g` distance evaluations (the re-measure and
one expansion of each of the w nearest) instead of a search over all n points.
Particles move a fraction of their neighbourhood per step (on MNIST PCA-64 about
a third of the distance to their 16th nearest), so the walk follows the particle
from its last beam: there about 3 entries a step enter the first 16 (measured before
MM-SOLD's step was capped at explicit Euler's limit; not measured since).  Particles
that swing across the data turn the beam over almost completely: before the cap, on the
200,000 × 64 mixture of benchmarks/latent_scale.py, about 27 new entries entered the first
40 each step, and the walk ran at half today's speed there.  A start far from its beam
(the first step of a batch) walks longer.

An entry stays *expanded* from step to step while it stays in the beam: only the
first ``renew`` entries (the nearest, whose neighbours matter most to the K
nearest) are expanded again at every step, the rest of the first w only when
they enter it.  An entry's neighbours were measured when it was expanded, at a
nearby earlier position; a neighbour that was then beyond the beam's worst rarely
comes among the K nearest a few steps later (on MNIST PCA-64, renewing 10 of 16
keeps 99.4 % of the 16 nearest, against 99.6 % for all 16, in 14 % less time:
docs/performance.md §9).

First beams come from *anchors*: a fixed, evenly spread subset of the training
points (every ⌈n / A⌉-th point of a seeded permutation, A = 4 ⌈√n⌉).  A particle's
first beam is its ``seeds`` nearest anchors, found by one dense product, and the walk
from there runs with a larger ``max_expand`` (``first_expand``).  A greedy walk from anchors
can stop short of a position far from every training point, such as σ-CFDM's first queries
z/T, so a tracker may be given a neighbour index instead: first beams are then its c nearest,
walked on as in a step.

Ties are broken by the smaller index, so a beam is a function of the position and
the previous beam only (not of threads or batches).  :func:`walk_numpy` is the slow
reference of the numba kernel :func:`~mmsold_cli.neighbors.walk_numba.walk`.

where
    * :math:`B` is the particle's beam (c indices),
    * :math:`G(j)` the g nearest training points of training point j (``Model.knn_idx_``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["walk_numpy", "walk_graph", "walk_graph_numpy", "anchor_points", "first_beams", "WalkNeighbours"]


def _insert(bd, bi, bx, d2, j, flag=False):
    """Put (d2, j) into the sorted beam (bd, bi, bx), expanded flag ``flag``, if it beats the worst and is not
    there yet."""
    c = bd.size
    if not (d2 < bd[-1] or (d2 == bd[-1] and j < bi[-1])):
        return
    pos = int(np.searchsorted(bd, d2, side="left"))
    q = pos
    while q < c and bd[q] == d2:  # an entry already in the beam is met at its own distance
        if bi[q] == j:
            return
        q += 1
    while pos < c and bd[pos] == d2 and bi[pos] < j:
        pos += 1
    bd[pos + 1 :] = bd[pos:-1].copy()
    bi[pos + 1 :] = bi[pos:-1].copy()
    bx[pos + 1 :] = bx[pos:-1].copy()
    bd[pos], bi[pos], bx[pos] = d2, j, flag


def walk_numpy(X, graph, Z, beams, *, width: int, max_expand: int, renew: int | None = None, expanded=None):
    """Reference walk (NumPy, one particle at a time).

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int
    Z : array of shape (m, d)
    beams : array of shape (m, c), int; −1 marks an empty slot
    width, max_expand : int
    renew : int, optional — the first ``renew`` entries of the re-measured beam are expanded again even if
        flagged (default: all)
    expanded : array of shape (m, c), bool, optional — the beams' expanded flags, read and rewritten
        (default: none expanded)

    Returns
    -------
    sqdist : array of shape (m, c), ascending (inf for empty slots)
    idx : array of shape (m, c), int64 (−1 for empty slots)
    """
    m, c = beams.shape
    renew = c if renew is None else renew
    out_d = np.full((m, c), np.inf)
    out_i = np.full((m, c), -1, dtype=np.int64)
    for p in range(m):
        bd, bi, bx = np.full(c, np.inf), np.full(c, -1, dtype=np.int64), np.zeros(c, dtype=bool)
        for s, j in enumerate(beams[p]):
            if j >= 0:
                flag = bool(expanded[p, s]) if expanded is not None else False
                _insert(bd, bi, bx, float(np.sum((X[j] - Z[p]) ** 2)), int(j), flag)
        bx[:renew] = False
        for _ in range(max_expand):
            open_ = [q for q in range(min(width, c)) if bi[q] >= 0 and not bx[q]]
            if not open_:
                break
            q = open_[0]
            bx[q] = True
            for j in graph[bi[q]]:
                if j < 0:
                    break
                _insert(bd, bi, bx, float(np.sum((X[j] - Z[p]) ** 2)), int(j))
        out_d[p], out_i[p] = bd, bi
        if expanded is not None:
            expanded[p] = bx
    return out_d, out_i


#: Above this many k-NN edges :func:`walk_graph` runs its numba kernel (the same graph): NumPy takes 0.34 s on
#: 60,000 × 32 and 10.5 s on 1,000,000 × 32 (against 0.97 s), and the kernel's first compile about 1 s.
GRAPH_NUMBA_ABOVE = 8_000_000


def walk_graph(knn_idx, knn_sqdist, extra: int | None = None, backend: str = "auto") -> np.ndarray:
    """The graph the walks follow: each point's k nearest plus up to ``extra`` (default k) points that have
    it among *their* k nearest, the closest of those first (ties by index); −1 pads.  Array (n, k + extra), of
    knn_idx's type; negative entries of knn_idx (no neighbour found) give no edge.

    In high dimension many points are among nobody's k nearest (hubness): in the plain k-NN graph no walk
    can reach them.  With the reverse edges every point is reachable from its own neighbours.  ``backend``:
    "numba" (:func:`mmsold_cli.neighbors.walk_numba.reverse_edges`), "numpy" (:func:`walk_graph_numpy`, the
    reference) or "auto" (numba above GRAPH_NUMBA_ABOVE edges).
    """
    knn_idx = np.asarray(knn_idx)
    extra = knn_idx.shape[1] if extra is None else int(extra)
    if backend == "numpy" or (backend == "auto" and knn_idx.size <= GRAPH_NUMBA_ABOVE):
        return walk_graph_numpy(knn_idx, knn_sqdist, extra)
    from .walk_numba import reverse_edges

    return reverse_edges(knn_idx, knn_sqdist, extra)


def walk_graph_numpy(knn_idx, knn_sqdist, extra: int) -> np.ndarray:
    """:func:`walk_graph` in NumPy."""
    knn_idx = np.asarray(knn_idx)
    n, k = knn_idx.shape
    src = np.repeat(np.arange(n, dtype=np.int64), k)  # edge src -> dst; reversed: dst gains src
    dst = knn_idx.ravel().astype(np.int64)
    d2 = np.asarray(knn_sqdist, dtype=np.float64).ravel()
    found = dst >= 0
    src, dst, d2 = src[found], dst[found], d2[found]
    # drop reverse edges already forward (j in knn[i] and i in knn[j])
    fwd = np.sort(knn_idx.astype(np.int64) + np.arange(n)[:, None] * n, axis=None)  # keys i*n + j
    key = dst * n + src
    pos = np.minimum(np.searchsorted(fwd, key), fwd.size - 1)
    keep = fwd[pos] != key
    dst, src, d2 = dst[keep], src[keep], d2[keep]
    order = np.lexsort((src, d2, dst))  # by owner, then distance, then index
    dst, src = dst[order], src[order]
    first = np.searchsorted(dst, np.arange(n))
    rank = np.arange(dst.size) - first[dst]
    keep = rank < extra
    out = np.full((n, k + extra), -1, dtype=knn_idx.dtype)
    out[:, :k] = knn_idx
    out[dst[keep], k + rank[keep]] = src[keep]
    return out


def anchor_points(n: int, count: int | None = None) -> np.ndarray:
    """The anchors' indices: ``count`` (default 4 ⌈√n⌉) training points spread by a fixed permutation."""
    count = min(n, 4 * int(np.ceil(np.sqrt(n))) if count is None else int(count))
    perm = np.random.default_rng(0x5EED).permutation(n)
    return np.sort(perm[:count])


def first_beams(X, anchors, Z, c: int, seeds: int, XA_sq=None) -> np.ndarray:
    """Each row's ``seeds`` nearest anchors (ties by index) as a beam of width c: array (m, c), −1 padded."""
    A = X[anchors]
    a2 = np.einsum("ij,ij->i", A, A) if XA_sq is None else XA_sq
    m = Z.shape[0]
    seeds = min(seeds, anchors.size, c)
    out = np.full((m, c), -1, dtype=np.int64)
    for s in range(0, m, 1024):
        # ‖a − z‖² up to the row's constant ‖z‖²: the order is all that matters here
        D = a2[None, :] - 2.0 * (Z[s : s + 1024] @ A.T)
        part = np.argpartition(D, seeds - 1, axis=1)[:, :seeds] if seeds < anchors.size else \
            np.broadcast_to(np.arange(anchors.size), (D.shape[0], anchors.size))
        out[s : s + 1024, :seeds] = anchors[part]
    return out


class WalkNeighbours:
    """Each particle's beam of c training points, walked along the k-NN graph from step to step.

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int — each training point's nearest other points
    c : int — beam width (points kept per particle)
    width : int — the first ``width`` beam entries are expanded each step (once while they stay in the beam)
    renew : int, optional — of those, the first ``renew`` are expanded at every step (default: all ``width``)
    seeds : int — anchors a first beam starts from
    first_expand : int — the expansion cap of a first beam's walk (whose width is the whole beam)
    index : object with ``query(Q, k) -> (sqdist, idx)``, optional — where first beams come from instead of
        anchors (its c nearest)

    Attributes
    ----------
    idx : array of shape (m, c), int, or None — the particles' beams
    expanded : array of shape (m, c), bool, or None — the beams' expanded flags
    n_first, n_walked : int
        Rows given first beams, rows walked on from their previous beam (counted by the search), so far.
    """

    def __init__(self, X, graph, c: int, *, width: int = 16, renew: int | None = None, seeds: int = 8,
                 first_expand: int | None = None, index=None):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        n = self.X.shape[0]
        self._int = np.int32 if n < 2**31 else np.int64
        self.graph = np.ascontiguousarray(graph, dtype=self._int)
        self.c = int(min(c, n))
        self.width = int(min(width, self.c))
        self.renew = self.width if renew is None else int(min(renew, self.width))
        self.seeds = int(seeds)
        self.first_expand = int(4 * self.c if first_expand is None else first_expand)
        self.index = index
        self.anchors = anchor_points(n)
        A = self.X[self.anchors]
        self._a2 = np.einsum("ij,ij->i", A, A)
        self.n_first = 0
        self.n_walked = 0
        self.reset()

    def reset(self):
        """Forget all particles (the next call starts from anchors)."""
        self.idx = self.expanded = None

    def start(self, Z):
        """First beams for the rows of Z (anchors and a long walk, or the index and a step's walk): ``idx``, shape
        (m, c), which the search's kernel walks on in place from step to step, with ``expanded`` all clear; returns
        (sqdist, idx)."""
        from .walk_numba import walk

        if self.index is None:
            beams = first_beams(self.X, self.anchors, Z, self.c, self.seeds, self._a2).astype(self._int)
            width, most = self.c, self.first_expand
        else:  # already the c nearest (up to the index's misses): a step's walk, not a long one
            beams = np.ascontiguousarray(self.index.query(Z, self.c)[1], dtype=self._int)
            width = most = self.width
        self.n_first += Z.shape[0]
        sqdist, self.idx = walk(self.X, self.graph, Z, beams, width=width, max_expand=most, out=beams)
        self.expanded = np.zeros(self.idx.shape, np.bool_)
        return sqdist, self.idx
