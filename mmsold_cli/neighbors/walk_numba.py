"""The numba kernel of :mod:`mmsold_cli.neighbors.walk`: re-measure each beam, then walk it along the graph.

Serial ``nogil`` kernels over plain arrays; :func:`~mmsold_cli._threads.run_rows` spreads the particles over
threads.  :func:`walk_row` is shared with the fused score kernel of :mod:`mmsold_cli.score.walk_numba`.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._prefetch import prefetch_row  # noqa: E402
from .._threads import run_rows  # noqa: E402

__all__ = ["walk", "walk_row", "measure_row", "seen_size", "expanded_flags", "reverse_edges", "insert_sorted", "FAST"]

# fast-math without 'nnan'/'ninf': the distance sums may be reassociated (so LLVM vectorises them) while
# comparisons with inf (empty beam slots) stay meaningful
FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}


@numba.njit(cache=True, nogil=True, inline="always", fastmath=FAST)
def _sqdist(X, j, z):
    s = 0.0
    for k in range(z.shape[0]):
        t = X[j, k] - z[k]
        s += t * t
    return s


@numba.njit(cache=True, nogil=True, inline="always")
def _insert(bd, bi, bx, d2, j):
    """Put (d2, j) into the sorted beam unless it is no better than the worst or already there."""
    c = bd.shape[0]
    if not (d2 < bd[c - 1] or (d2 == bd[c - 1] and j < bi[c - 1])):
        return
    pos = c - 1
    # the place, from the end (ties by index); an entry at the same distance with the same index is j itself
    while pos > 0 and (bd[pos - 1] > d2 or (bd[pos - 1] == d2 and bi[pos - 1] >= j)):
        if bi[pos - 1] == j:
            return
        pos -= 1
    for q in range(c - 1, pos, -1):
        bd[q] = bd[q - 1]
        bi[q] = bi[q - 1]
        bx[q] = bx[q - 1]
    bd[pos] = d2
    bi[pos] = j
    bx[pos] = False


@numba.njit(cache=True, nogil=True, inline="always")
def _first_offer(seen, stamp, j):
    """Record j in the open-addressing set ``seen`` under ``stamp``; False if it was there already.

    A slot holds stamp · 2³² + index: slots of other stamps (earlier rows) count as empty, so the set
    is emptied for the next row by changing the stamp, not by clearing it.
    """
    mask = seen.shape[0] - 1
    tag = (np.int64(stamp) << 32) | np.int64(j)
    h = (np.int64(j) * np.int64(2654435761)) & mask
    while True:
        v = seen[h]
        if v == tag:
            return False
        if (v >> 32) != stamp:
            seen[h] = tag
            return True
        h = (h + 1) & mask


def seen_size(c: int, g: int, max_expand: int) -> int:
    """Slots of the set a walk records its offered points in: a power of two over twice the most offers."""
    return 1 << int(2 * (c + max_expand * g)).bit_length()


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True, fastmath=FAST)
def walk_row(X, graph, z, bd, bi, bx, width, max_expand, renew, seen, stamp):
    """Walk one beam (bd, bi: distances and indices, already measured at z and sorted; bx: expanded flags,
    of which the first ``renew`` are cleared: those entries are expanded again).

    ``seen``: a set of :func:`seen_size` slots, ``stamp`` > 0 unique to the row among the set's users: a point
    offered twice is measured once (neighbours of nearby points overlap by about half).
    """
    c = bd.shape[0]
    g = graph.shape[1]
    w = min(width, c)
    for s in range(min(renew, c)):
        bx[s] = False
    for s in range(c):
        if bi[s] >= 0:
            _first_offer(seen, stamp, bi[s])
    for s in range(w):  # the graph rows the first expansions will read, while the first one is chosen
        if bi[s] >= 0:
            prefetch_row(graph, bi[s])
    fresh = np.empty(g, graph.dtype)
    dist = np.empty(g)
    for _ in range(max_expand):
        q = -1
        for s in range(w):
            if bi[s] >= 0 and not bx[s]:
                q = s
                break
        if q < 0:
            break
        bx[q] = True
        src = bi[q]
        # Three passes over the neighbours: the unseen ones, their distances, then the insertions.  The
        # distance loop has no data-dependent branch, so the CPU keeps many rows in flight at once; a walk
        # waits on fetching rows, and measuring, comparing and inserting one row at a time (with early
        # abandoning) left it waiting for each row in turn.
        m = 0
        for a in range(g):
            j = graph[src, a]
            if j < 0:  # padding: this point has fewer neighbours
                break
            if _first_offer(seen, stamp, j):
                prefetch_row(X, j)  # every unseen row in flight before the first is measured
                fresh[m] = j
                m += 1
        for f in range(m):
            dist[f] = _sqdist(X, fresh[f], z)
        for f in range(m):
            _insert(bd, bi, bx, dist[f], fresh[f])


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True, fastmath=FAST)
def measure_row(X, z, beam, expanded, bd, bi, bx):
    """The beam's entries (distinct; −1: empty) at their distances from z, sorted (ties by index), each with
    its flag from ``expanded`` (the beam's flags from the last step, in the beam's order).

    Last step's beam is nearly in order at the new position, so an insertion sort costs about c moves.
    """
    c = bd.shape[0]
    for s in range(c):  # the rows were read a step ago, but 1,000 particles' beams do not stay in cache
        if beam[s] >= 0:
            prefetch_row(X, beam[s])
    for s in range(c):
        j = beam[s]
        bi[s] = j
        bx[s] = expanded[s]
        bd[s] = _sqdist(X, j, z) if j >= 0 else np.inf
    for s in range(1, c):
        d2 = bd[s]
        j = bi[s]
        x = bx[s]
        q = s
        while q > 0 and (bd[q - 1] > d2 or (bd[q - 1] == d2 and (bi[q - 1] > j or bi[q - 1] < 0) and j >= 0)):
            bd[q] = bd[q - 1]
            bi[q] = bi[q - 1]
            bx[q] = bx[q - 1]
            q -= 1
        bd[q] = d2
        bi[q] = j
        bx[q] = x


@numba.njit(cache=True, nogil=True)
def _walk(X, graph, Z, beams, expanded, width, max_expand, renew, n_seen, out_d, out_i, r0, r1):
    c = beams.shape[1]
    bd = np.empty(c)
    bi = np.empty(c, out_i.dtype)  # built here, then copied: out_i may be the beams themselves
    bx = np.zeros(c, np.bool_)
    seen = np.zeros(n_seen, np.int64)
    for p in range(r0, r1):
        measure_row(X, Z[p], beams[p], expanded[p], bd, bi, bx)
        walk_row(X, graph, Z[p], bd, bi, bx, width, max_expand, renew, seen, p + 1)
        for s in range(c):
            out_d[p, s] = bd[s]
            out_i[p, s] = bi[s]
            expanded[p, s] = bx[s]


def expanded_flags(expanded, shape):
    """The kernels' ``expanded`` argument: all clear for None, else checked (C-contiguous bool, the beams' shape)."""
    if expanded is None:
        return np.zeros(shape, np.bool_)
    if not (expanded.shape == tuple(shape) and expanded.dtype == np.bool_ and expanded.flags.c_contiguous):
        raise ValueError(f"expanded must be a C-contiguous bool array of shape {tuple(shape)}, got {expanded.dtype} "
                         f"of shape {expanded.shape}")
    return expanded


def walk(X, graph, Z, beams, *, width, max_expand, renew=None, expanded=None, out=None):
    """Re-measure each row's beam at Z and walk it (see :mod:`mmsold_cli.neighbors.walk`).

    ``expanded``: None (no entry expanded yet) or the beams' flags, array (m, c) of bool, C-contiguous,
    read and rewritten; ``renew``: the first ``renew`` entries are expanded again (default: all).
    ``out``: None or the beams array itself (C-contiguous; the new beams overwrite it).

    Returns
    -------
    sqdist : array of shape (m, c), ascending (ties by index; inf for empty slots)
    idx : array of shape (m, c), of the beams' integer type (−1 for empty slots)
    """
    m, c = beams.shape
    given = beams
    beams = np.ascontiguousarray(beams, dtype=np.int32 if beams.dtype == np.int32 else np.int64)
    if out is None:
        out_i = np.empty((m, c), dtype=beams.dtype)
    elif out is given and beams is given:
        out_i = beams
    else:
        raise ValueError("out must be the beams array itself (C-contiguous, int32 or int64) or None")
    out_d = np.empty((m, c))
    expanded = expanded_flags(expanded, beams.shape)
    run_rows(_walk, m, np.ascontiguousarray(X, dtype=np.float64), graph, np.ascontiguousarray(Z, dtype=np.float64),
             beams, expanded, int(width), int(max_expand), c if renew is None else int(renew),
             seen_size(c, graph.shape[1], int(max_expand)), out_d, out_i, min_rows=64)
    return out_d, out_i


@numba.njit(cache=True, nogil=True)
def _reverse_edges(knn_idx, knn_sqdist, extra, out):
    n, k = knn_idx.shape
    # reverse candidates j <- i (j among i's k nearest, i not among j's), counted per owner j, then laid out
    # owner by owner (a counting sort)
    start = np.zeros(n + 1, np.int64)
    for i in range(n):
        for a in range(k):
            j = knn_idx[i, a]
            if j >= 0 and not _has(knn_idx, j, i):
                start[j + 1] += 1
    for j in range(n):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    src = np.empty(start[n], np.int64)
    d2 = np.empty(start[n])
    for i in range(n):
        for a in range(k):
            j = knn_idx[i, a]
            if j >= 0 and not _has(knn_idx, j, i):
                src[fill[j]] = i
                d2[fill[j]] = knn_sqdist[i, a]
                fill[j] += 1
    # each owner keeps its ``extra`` nearest candidates, ordered by distance, then index
    top_d = np.empty(extra)
    top_i = np.empty(extra, np.int64)
    for j in range(n):
        m = 0
        for e in range(start[j], start[j + 1]):
            dd, ii = d2[e], src[e]
            if m == extra and not (dd < top_d[m - 1] or (dd == top_d[m - 1] and ii < top_i[m - 1])):
                continue
            m = insert_sorted(top_d, top_i, m, dd, ii)
        for r in range(m):
            out[j, k + r] = top_i[r]


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, nogil=True, inline="always")
def insert_sorted(bd, bi, m, d2, j):
    """Insert (d2, j) into the list bd[:m], bi[:m], ascending by distance then index, of capacity bd.size (a full
    list drops its last entry: the caller has checked that (d2, j) comes before it); returns the new length."""
    c = bd.shape[0]
    q = m if m < c else c - 1
    while q > 0 and (bd[q - 1] > d2 or (bd[q - 1] == d2 and bi[q - 1] > j)):
        bd[q] = bd[q - 1]
        bi[q] = bi[q - 1]
        q -= 1
    bd[q] = d2
    bi[q] = j
    return m + 1 if m < c else c


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, nogil=True, inline="always")
def _has(knn_idx, j, i):
    for a in range(knn_idx.shape[1]):
        if knn_idx[j, a] == i:
            return True
    return False


def reverse_edges(knn_idx, knn_sqdist, extra: int) -> np.ndarray:
    """:func:`mmsold_cli.neighbors.walk.walk_graph_numpy` in one pass per edge list (a counting sort by owner, then
    each owner's ``extra`` nearest by insertion): 0.97 s instead of 10.5 s for 10⁶ points and k = 32."""
    knn_idx = np.ascontiguousarray(knn_idx)
    n, k = knn_idx.shape
    out = np.full((n, k + int(extra)), -1, dtype=knn_idx.dtype)
    out[:, :k] = knn_idx
    if extra > 0:
        _reverse_edges(knn_idx, np.ascontiguousarray(knn_sqdist, dtype=np.float64), int(extra), out)
    return out
