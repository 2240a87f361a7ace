r"""Exact k-nearest-neighbour search on a uniform cell grid, fused with the barycentre.

For low dimension (d ≤ 3) the training points are bucketed into cubic cells
of side :math:`s` and sorted cell by cell, so every run of cells along the
first axis is one contiguous block of memory.  Only the non-empty cells are
tabled (:class:`~mmsold_cli.neighbors.indexes.GridIndex`), with an occupancy bit per
cell that finds a run's points in O(1) (:func:`_first_point`).  A query
:math:`q` scans the block of :math:`(2h+1)^d` cells around its own cell,
keeps the K closest points seen, and stops once the K-th distance is
certified:

.. math::

    \|q - x\| \ge \beta_h(q) \quad\text{for every } x \text{ outside the block},
    \qquad \text{exact when } d_{(K)} \le \beta_h(q),

where
    * :math:`d_{(K)}` is the K-th smallest distance found in the block,
    * :math:`\beta_h(q)` the distance from q to the nearest face of the block
      that has cells beyond it (faces at the grid's edge bound nothing).

Otherwise the block grows to the half-width that the found :math:`d_{(K)}`
certifies and the scan is repeated, so the result is the exact K nearest
neighbours (ties aside) whatever the query.  The cost is a few dozen
contiguous distance evaluations per query and no tree walk.

:func:`grid_bary_mean` fuses the search with the softmax and the barycentre of
:mod:`mmsold_cli.score.smoothed` and the mean over the M draws, one particle per loop
iteration.  With ``exact_k=False`` (``search="grid"``) the particle's M draws
share one block: the cells of all draws plus h rings, h starting at
``h0 + 1``; the draws take turns, and when a draw's inscribed ball holds
fewer than K block points the block gains a ring (the draws already done keep
their smaller block, each one certified).  The block's points are copied into
one contiguous float32 array per axis, relative to the particle and in units
of the cell side (the cell's corner in float64 plus the point's stored
24-bit offset in its cell), padded to a multiple of 8, and each draw takes
a single pass over them that computes the distance, the in-ball count, the weight
:math:`e^{-\|x-q\|^2/2t^2}` (:func:`exp32`; no max shift: exact unless every
point is more than ~13 t away, which is detected and redone with the shift)
and the weighted sums, with LLVM filling 8 lanes per instruction.
:func:`run_rows` spreads the particles over threads.

Kernels take plain arrays only, so ``cache=True`` holds across processes.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from llvmlite import ir  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from .._fastexp import exp32, exp_nonpos  # noqa: E402
from .._threads import run_rows  # noqa: E402
from ..rng.normals_numba import draws_of, kernel_draws  # noqa: E402
from .brute_numba import _insert  # noqa: E402

__all__ = ["grid_knn", "grid_bary_mean"]

_F32 = numba.float32
_GEN_ROWS = 256  # particles whose normals the block kernel makes in one call
# GridIndex.F: a point's offset in its cell in units of 2^-24 cell sides below, its cell index mod 256 above
_OFF_BITS = np.uint64(0xFFFFFF)
_U32 = np.uint64(0xFFFFFFFF)
_OFF_UNIT = 2.0**-24
# fast-math without 'nnan'/'ninf': reductions may be reassociated (so LLVM vectorises them)
# while the kernels' comparisons with inf stay meaningful
FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}


@numba.njit(cache=True, nogil=True, inline="always")
def _cell(v, lo, inv_s, g):
    c = int(np.floor((v - lo) * inv_s))
    if c < 0:
        return 0
    if c > g - 1:
        return g - 1
    return c


@intrinsic
def _popcount(typingctx, x):
    """The number of set bits of a uint64 (LLVM's ctpop: one popcnt instruction)."""
    sig = numba.types.int64(numba.types.uint64)

    def codegen(context, builder, signature, args):
        return builder.call(builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)]), [args[0]])

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _first_point(cell_bits, cell_rank, cell_start, b):
    """Sorted position of the first point in a cell of id ≥ b (n if none), in O(1).

    The non-empty cells before b are those before b's 64-cell word (its rank)
    plus the occupancy bits below b in it; the cells of ids a..b−1 hold the
    points ``_first_point(a) .. _first_point(b) − 1``.  Unsigned indices: no
    negative-index wraparound code on this path.
    """
    w = np.uint64(b >> 6)
    below = cell_bits[w] & ((np.uint64(1) << np.uint64(b & 63)) - np.uint64(1))
    return np.int64(cell_start[np.uint64(np.int64(cell_rank[w]) + _popcount(below))])


@numba.njit(cache=True, nogil=True, inline="always")
def _scan(Xs, j0, j1, q0, q1, q2, buf_d, buf_j, cnt, dmin):
    """Squared distances of the sorted points j0..j1-1 into the buffer; returns (count, running minimum)."""
    # unsigned indices: no negative-index wraparound code in the loops (the exact searches 2-4 % faster)
    j0, j1 = np.uint64(j0), np.uint64(j1)
    d = Xs.shape[1]
    if d == 2:
        for j in range(j0, j1):
            a = Xs[j, 0] - q0
            b = Xs[j, 1] - q1
            d2 = a * a + b * b
            cu = np.uint64(cnt)
            buf_d[cu] = d2
            buf_j[cu] = j
            cnt += 1
            if d2 < dmin:
                dmin = d2
    elif d == 3:
        for j in range(j0, j1):
            a = Xs[j, 0] - q0
            b = Xs[j, 1] - q1
            e = Xs[j, 2] - q2
            d2 = a * a + b * b + e * e
            cu = np.uint64(cnt)
            buf_d[cu] = d2
            buf_j[cu] = j
            cnt += 1
            if d2 < dmin:
                dmin = d2
    else:
        for j in range(j0, j1):
            a = Xs[j, 0] - q0
            d2 = a * a
            cu = np.uint64(cnt)
            buf_d[cu] = d2
            buf_j[cu] = j
            cnt += 1
            if d2 < dmin:
                dmin = d2
    return cnt, dmin


@numba.njit(cache=True, nogil=True, inline="always")
def _face(beta, q, lo, s, a, b, g):
    """Shrink beta to the distance from q to the block's faces [a, b] on one axis (grid edges bound nothing)."""
    if a > 0:
        f = q - (lo + a * s)
        if f < beta:
            beta = f
    if b < g - 1:
        f = lo + (b + 1) * s - q
        if f < beta:
            beta = f
    return beta


@numba.njit(cache=True, nogil=True, inline="always")
def _collect(Xs, cell_bits, cell_rank, cell_start, lo, dims, s, inv_s, q0, q1, q2, K, h0, buf_d, buf_j):
    """Every point of the smallest block of cells around q's cell (half-width ≥ h0) whose
    inscribed ball holds at least K points, with its squared distance to q.

    The grid is padded to three axes (unused ones have one cell).  Fills buf_d,
    buf_j (sorted-point indices) and returns (count, smallest squared distance).
    """
    g0, g1, g2 = dims[0], dims[1], dims[2]
    cx = _cell(q0, lo[0], inv_s, g0)
    cy = _cell(q1, lo[1], inv_s, g1)
    cz = _cell(q2, lo[2], inv_s, g2)
    h = h0
    cnt = 0
    dmin = np.inf
    pax = pbx = pay = pby = paz = pbz = 0
    first = True
    while True:
        ax, bx = max(cx - h, 0), min(cx + h, g0 - 1)
        ay, by = max(cy - h, 0), min(cy + h, g1 - 1)
        az, bz = max(cz - h, 0), min(cz + h, g2 - 1)
        beta = _face(np.inf, q0, lo[0], s, ax, bx, g0)
        beta = _face(beta, q1, lo[1], s, ay, by, g1)
        beta = _face(beta, q2, lo[2], s, az, bz, g2)
        for z in range(az, bz + 1):
            for y in range(ay, by + 1):
                base = (y + g1 * z) * g0  # the id of the row's first cell
                if not first and pay <= y <= pby and paz <= z <= pbz:
                    # this row was scanned up to the old block: only its two new ends
                    cnt, dmin = _scan(Xs, _first_point(cell_bits, cell_rank, cell_start, base + ax),
                                      _first_point(cell_bits, cell_rank, cell_start, base + pax),
                                      q0, q1, q2, buf_d, buf_j, cnt, dmin)
                    cnt, dmin = _scan(Xs, _first_point(cell_bits, cell_rank, cell_start, base + pbx + 1),
                                      _first_point(cell_bits, cell_rank, cell_start, base + bx + 1),
                                      q0, q1, q2, buf_d, buf_j, cnt, dmin)
                else:
                    cnt, dmin = _scan(Xs, _first_point(cell_bits, cell_rank, cell_start, base + ax),
                                      _first_point(cell_bits, cell_rank, cell_start, base + bx + 1),
                                      q0, q1, q2, buf_d, buf_j, cnt, dmin)
        if beta == np.inf:  # the block is the whole grid
            return cnt, dmin
        b2 = max(beta, 0.0) ** 2
        inball = 0
        for j in range(cnt):
            inball += buf_d[j] <= b2
        if inball >= K:
            return cnt, dmin
        pax, pbx, pay, pby, paz, pbz = ax, bx, ay, by, az, bz
        first = False
        h += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _select(buf_d, buf_j, cnt, K, bd, bi):
    """The K smallest buffer entries, ascending (insertion into a sorted list)."""
    for j in range(K):
        bd[j] = np.inf
        bi[j] = -1
    worst = np.inf
    for j in range(cnt):
        if buf_d[j] < worst:
            worst = _insert(bd, bi, buf_d[j], buf_j[j])


@numba.njit(cache=True, nogil=True)
def _grid_knn(Xs, cell_bits, cell_rank, cell_start, lo, dims, s, Q, K, h0, out_d, out_i, r0, r1):
    d = Q.shape[1]
    n = Xs.shape[0]
    buf_d = np.empty(n)
    buf_j = np.empty(n, np.int64)
    q = np.zeros(3)
    for p in range(r0, r1):
        for k in range(d):
            q[k] = Q[p, k]
        cnt, _ = _collect(Xs, cell_bits, cell_rank, cell_start, lo, dims, s, 1.0 / s, q[0], q[1], q[2], K, h0,
                          buf_d, buf_j)
        _select(buf_d, buf_j, cnt, K, out_d[p], out_i[p])


@numba.njit(cache=True, nogil=True)
def _grid_bary(Xs, cell_bits, cell_rank, cell_start, lo, dims, s, Z, U, K, h0, inv2t2, out, r0, r1):
    """Barycentres over the exact K nearest of each draw (``search="grid-knn"``)."""
    M, m, d = U.shape
    n = Xs.shape[0]
    buf_d = np.empty(n)
    buf_j = np.empty(n, np.int64)
    bd = np.empty(K)
    bi = np.empty(K, np.int64)
    q = np.zeros(3)
    acc = np.empty(3)
    num = np.empty(3)
    for p in range(r0, r1):
        for k in range(3):
            acc[k] = 0.0
        for r in range(M):
            for k in range(d):
                q[k] = Z[p, k] + U[r, p, k]
            cnt, dmin = _collect(Xs, cell_bits, cell_rank, cell_start, lo, dims, s, 1.0 / s, q[0], q[1], q[2], K,
                                 h0, buf_d, buf_j)
            _select(buf_d, buf_j, cnt, K, bd, bi)
            for j in range(K):
                buf_d[j] = bd[j]
                buf_j[j] = bi[j]
            cnt = K
            # two passes: the weights (vectorisable exp), then the sums
            for j in range(cnt):
                buf_d[j] = exp_nonpos((dmin - buf_d[j]) * inv2t2)
            den = 0.0
            for k in range(3):
                num[k] = 0.0
            for j in range(cnt):
                w = buf_d[j]
                den += w
                xi = buf_j[j]
                for k in range(d):
                    num[k] += w * Xs[xi, k]
            for k in range(d):
                acc[k] += num[k] / den
        for k in range(d):
            out[p, k] = acc[k] / M


# inlined into the block kernel: as a call per draw it cost job A 10-25 % (measured); the compile time it adds
# matters less since small point-set jobs run on NumPy
@numba.njit(cache=True, nogil=True, inline="always", fastmath=FAST)
def _block_sums(C0, C1, C2, D, c, q0, q1, q2, inv2t2, b2, shift, num):
    """One pass over the gathered block: softmax sums and the in-ball count of one draw.

    ``den = Σ w_j``, ``num = Σ w_j x_j`` with ``w_j = exp((shift − ‖x_j − q‖²)/2t²)``
    and the number of points with ``‖x_j − q‖² ≤ b2``, all in float32 over
    coordinates taken relative to the particle (c is a multiple of 8; padding
    points far away weigh 0 and lie outside every ball).
    """
    den = _F32(0.0)
    n0 = _F32(0.0)
    n1 = _F32(0.0)
    n2 = _F32(0.0)
    cin = _F32(0.0)  # a float count keeps every lane 32 bits wide
    if D == 2:
        for j in range(c):
            a = C0[j] - q0
            b = C1[j] - q1
            d2 = a * a + b * b
            cin += _F32(1.0) if d2 <= b2 else _F32(0.0)
            w = exp32((shift - d2) * inv2t2)
            den += w
            n0 += w * C0[j]
            n1 += w * C1[j]
    else:
        for j in range(c):
            a = C0[j] - q0
            b = C1[j] - q1
            e = C2[j] - q2
            d2 = a * a + b * b + e * e
            cin += _F32(1.0) if d2 <= b2 else _F32(0.0)
            w = exp32((shift - d2) * inv2t2)
            den += w
            n0 += w * C0[j]
            n1 += w * C1[j]
            n2 += w * C2[j]
    num[0] = n0
    num[1] = n1
    num[2] = n2
    return den, cin


@numba.njit(cache=True, nogil=True, inline="always", fastmath=FAST)
def _block_nearest(C0, C1, C2, D, c, q0, q1, q2):
    """Smallest squared distance from q to the gathered block."""
    mn = _F32(np.inf)
    for j in range(c):
        a = C0[j] - q0
        b = C1[j] - q1
        s = a * a + b * b
        if D == 3:
            e = C2[j] - q2
            s += e * e
        mn = min(mn, s)
    return mn


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def _block_bary(F, cell_bits, cell_rank, cell_start, lo, dims, s, Z, G, nz, Mg, sigma, n_pairs, K, h0, inv2t2,
                max_spread, score_scale, out, r0, r1):
    d = Z.shape[1]
    M = Mg + n_pairs  # draws σ G[r] for every r, and −σ G[r] for r < n_pairs
    gen = G.shape[0] == 0  # no array: the particle's normals come from the key (nz), see normals_numba.draws_of
    D = F.shape[0]
    n = F.shape[1]
    F0 = F[0]
    F1 = F[1]
    F2 = F[D - 1]
    # the block's points relative to the particle in units of the cell side (so float32 neither overflows
    # nor loses the small offsets), one array per axis (contiguous 8-lane passes), padded to a multiple
    # of 8 with points far away
    C0 = np.empty(n + 8, np.float32)
    C1 = np.empty(n + 8, np.float32)
    C2 = np.empty(n + 8 if D == 3 else 0, np.float32)
    Q = np.zeros((M, 3))
    Uo = np.zeros((M, 3), np.float32)
    num = np.zeros(3, np.float32)
    cmin = np.empty(3, np.int64)
    cmax = np.empty(3, np.int64)
    inv_s = 1.0 / s
    g0, g1 = dims[0], dims[1]
    i2 = _F32(inv2t2 * s * s)
    Kf = _F32(K)
    far = _F32(1e18)
    for k in range(d, 3):  # axes the data lacks have one cell
        cmin[k] = cmax[k] = 0
    # the normals of _GEN_ROWS particles at a time: one call for many particles (a call per particle costs
    # twice as much a normal), a buffer of kilobytes (a whole range's would be megabytes on each thread)
    gb = np.empty(min(r1 - r0, _GEN_ROWS) * Mg * d if gen else 0)
    p0 = r0
    for p in range(r0, r1):
        if gen and (p - r0) % _GEN_ROWS == 0:
            p0 = p
            draws_of(nz, p0, min(r1 - p0, _GEN_ROWS), Mg * d, gb)
        z0 = Z[p, 0]
        z1 = Z[p, 1] if d > 1 else 0.0
        z2 = Z[p, 2] if d > 2 else 0.0
        # the particle in cell units from the grid's corner (0 on the axes the data lacks)
        e0 = (z0 - lo[0]) * inv_s
        e1 = (z1 - lo[1]) * inv_s
        e2 = (z2 - lo[2]) * inv_s
        for r in range(M):
            # the order of antithetic_draws: the pairs' + halves, their − halves, the unpaired draw
            g = r if r < n_pairs else r - n_pairs
            sg = -sigma if n_pairs <= r < 2 * n_pairs else sigma
            for k in range(d):
                u = sg * (gb[((p - p0) * Mg + g) * d + k] if gen else G[g, p, k])
                Q[r, k] = Z[p, k] + u
                Uo[r, k] = u * inv_s
        shared = True
        for k in range(d):
            cmin[k] = dims[k]
            cmax[k] = -1
            for r in range(M):
                cc = _cell(Q[r, k], lo[k], inv_s, dims[k])
                cmin[k] = min(cmin[k], cc)
                cmax[k] = max(cmax[k], cc)
            if cmax[k] - cmin[k] > max_spread:
                shared = False
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        r = 0
        while r < M:  # one block for all draws, or (draws spread far apart) one per draw
            ra, rb = (0, M) if shared else (r, r + 1)
            if not shared:
                for k in range(d):
                    cmin[k] = cmax[k] = _cell(Q[r, k], lo[k], inv_s, dims[k])
            h = h0
            rr = ra
            while True:
                ax, bx = max(cmin[0] - h, 0), min(cmax[0] + h, dims[0] - 1)
                ay, by = max(cmin[1] - h, 0), min(cmax[1] + h, dims[1] - 1)
                az, bz = max(cmin[2] - h, 0), min(cmax[2] + h, dims[2] - 1)
                c = 0
                # the offset of each point's cell corner from the particle in float64 plus the point's offset
                # in the cell: coordinates as precise as (x − z)/s rounded once to float32.  Along x a row's
                # cells differ: (F − xs mod 256 in the top byte) mod 2^32 is the offset from cell xs's corner
                # (in units of 2^-24), since the cells of one pass span at most 256 indices
                for xs in range(ax, bx + 1, 256):  # one pass unless the block is wider than 256 cells
                    xe = min(xs + 255, bx)
                    top = np.uint64((xs & 255) << 24)
                    oxs = xs - e0
                    for zz in range(az, bz + 1):
                        o2 = zz - e2
                        for y in range(ay, by + 1):
                            o1 = y - e1
                            base = (y + g1 * zz) * g0
                            j0 = _first_point(cell_bits, cell_rank, cell_start, base + xs)
                            j1 = _first_point(cell_bits, cell_rank, cell_start, base + xe + 1)
                            # 64-bit unsigned indices: no negative-index wraparound code in this loop (an int32
                            # induction variable made it 3 % slower)
                            for j in range(np.uint64(j0), np.uint64(j1)):
                                cu = np.uint64(c)
                                C0[cu] = oxs + np.float64(np.int64((np.uint64(F0[j]) - top) & _U32)) * _OFF_UNIT
                                C1[cu] = o1 + np.float64(np.int64(np.uint64(F1[j]) & _OFF_BITS)) * _OFF_UNIT
                                if D == 3:
                                    C2[cu] = o2 + np.float64(np.int64(np.uint64(F2[j]) & _OFF_BITS)) * _OFF_UNIT
                                c += 1
                while c % 8:
                    C0[c] = far
                    C1[c] = far
                    if D == 3:
                        C2[c] = far
                    c += 1
                while rr < rb:
                    q0, q1, q2 = Uo[rr, 0], Uo[rr, 1], Uo[rr, 2]
                    beta = _face(np.inf, Q[rr, 0], lo[0], s, ax, bx, dims[0])
                    if d > 1:
                        beta = _face(beta, Q[rr, 1], lo[1], s, ay, by, dims[1])
                    if d > 2:
                        beta = _face(beta, Q[rr, 2], lo[2], s, az, bz, dims[2])
                    b2 = _F32(np.inf if beta == np.inf else (max(beta, 0.0) * inv_s) ** 2)
                    # logits shifted by 0 (no max pass): exact unless every point is > 13 t away
                    den, cin = _block_sums(C0, C1, C2, D, c, q0, q1, q2, i2, b2, _F32(0.0), num)
                    if cin < Kf:  # this draw's nearest K are not certified: add a ring of cells
                        break
                    if not den > _F32(1e-30):
                        den, cin = _block_sums(C0, C1, C2, D, c, q0, q1, q2, i2, b2,
                                               _block_nearest(C0, C1, C2, D, c, q0, q1, q2), num)
                    a0 += num[0] / den
                    a1 += num[1] / den
                    a2 += num[2] / den
                    rr += 1
                if rr == rb:
                    break
                h += 1  # the draws already certified keep their (smaller) block
            r = rb
        # the barycentre z + mean offset, or (score_scale = 1/t²) the score (b − z)/t²; out may be Z
        if score_scale == 0.0:
            out[p, 0] = z0 + a0 * (s / M)
            if d > 1:
                out[p, 1] = z1 + a1 * (s / M)
            if d > 2:
                out[p, 2] = z2 + a2 * (s / M)
        else:
            out[p, 0] = a0 * (s / M) * score_scale
            if d > 1:
                out[p, 1] = a1 * (s / M) * score_scale
            if d > 2:
                out[p, 2] = a2 * (s / M) * score_scale



def grid_knn(grid, Q, k):
    """Exact k nearest neighbours of the rows of Q on ``grid`` (see :class:`~mmsold_cli.neighbors.indexes.GridIndex`).

    Returns
    -------
    sqdist : array of shape (m, k), ascending
    idx : array of shape (m, k), int64, into the grid's sorted points
    """
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    m = Q.shape[0]
    out_d = np.empty((m, k))
    out_i = np.empty((m, k), dtype=np.int64)
    run_rows(_grid_knn, m, grid.Xs, grid.cell_bits, grid.cell_rank, grid.cell_start, grid.lo3, grid.dims3, grid.s,
             Q, int(k), grid.h0, out_d, out_i, min_rows=64)
    return out_d, out_i


def grid_bary_mean(grid, Z, G, K, t, exact_k=True, *, sigma=1.0, n_pairs=0, out=None, key=None, start=0,
                   n_normals=0, score=False):
    r"""Mean over the draws of the softmax barycentre of each z + u on the grid.

    The draws are :math:`u = \sigma G_r` for every r and :math:`u = -\sigma G_r`
    for r < ``n_pairs``, in the order of :func:`~mmsold_cli.score.smoothed.antithetic_draws`
    (antithetic pairs without materialising them; the defaults take ``G`` as
    the draws themselves).

    ``exact_k=True``: over the exact K nearest neighbours of z + u (float64).
    ``exact_k=False``: over every point of a block of cells shared by the
    particle's M draws — the draws' cells plus h rings, h from ``grid.h0 + 1``;
    taking the draws in turn, each uses the first h (never smaller than the
    previous draw's) at which its inscribed ball (to the nearest face with
    cells beyond it) holds ≥ K block points, so its block holds its K nearest.
    Draws whose cells spread over more than ``2 (grid.h0 + 1)`` cells on an
    axis get a block each by the same rule.  Distances, weights and sums
    are float32 over coordinates relative to the particle (weights to ~1e-6
    relative, barycentres to ~1e-6 t), the mean over draws float64.

    Parameters
    ----------
    grid : GridIndex
    Z : array of shape (m, d)
    G : array of shape (Mg, m, d), or None with ``key``
    K : int
    t : float
    exact_k : bool
    sigma : float
    n_pairs : int, at most Mg
    out : array of shape (m, d), optional
        C-contiguous float64; may be Z itself when ``score`` is set.
    key : array of shape (2,), uint64, optional
        Draw G in the kernel instead: ``G[r, p] =`` normals ``(p Mg + r) d … (p Mg + r + 1) d − 1``
        of the key (:func:`mmsold_cli.rng.normals.from_key` of shape (m, Mg, d), particle-major), Mg = ``n_normals``.
    start : int
        With ``key``: the index of the first normal (``G[r, p]`` is normals ``start + (p Mg + r) d …``), so
        rows [a, b) of a larger batch, called with ``start = a Mg d``, get the numbers the whole batch gives them.
    score : bool
        Return the score :math:`(\bar b - z)/t^2` instead of the barycentre :math:`\bar b`.

    Returns
    -------
    B : array of shape (m, d), :math:`\bar b = \frac1M\sum_r \hat b_t(z + u_r)`, M = Mg + n_pairs
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    out = np.empty(Z.shape) if out is None else out  # (m, d), C-contiguous float64
    if key is not None and exact_k:  # this kernel takes its draws as an array
        from ..rng.normals import from_key

        G, key = np.moveaxis(from_key(key, (Z.shape[0], n_normals, Z.shape[1]), start=start), 1, 0), None
    if exact_k:
        G = np.ascontiguousarray(G, dtype=np.float64)
        U = sigma * G if n_pairs == 0 else np.concatenate([sigma * G, -sigma * G[:n_pairs]])
        B = np.empty(Z.shape) if score else out  # out may be Z: the kernel must not write over it
        run_rows(_grid_bary, Z.shape[0], grid.Xs, grid.cell_bits, grid.cell_rank, grid.cell_start, grid.lo3,
                 grid.dims3, grid.s, Z, U, int(K), grid.h0, 1.0 / (2.0 * t * t), B, min_rows=64)
        if score:
            np.subtract(B, Z, out=out)
            out /= t * t
    else:
        h = grid.h0 + 1
        G, Mg, nz = kernel_draws(G, key, n_normals, start)
        run_rows(_block_bary, Z.shape[0], grid.F, grid.cell_bits, grid.cell_rank, grid.cell_start, grid.lo3,
                 grid.dims3, grid.s, Z, G, nz, Mg, float(sigma), int(n_pairs), int(K), h, 1.0 / (2.0 * t * t), 2 * h,
                 1.0 / (t * t) if score else 0.0, out, min_rows=64)
    return out
