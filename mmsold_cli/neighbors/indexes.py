"""Nearest-neighbour search over the training set.

Three exact-or-approximate backends behind one interface,
``index.query(Q, k) -> (sqdist, idx)`` with rows sorted by distance:

* ``kdtree`` — scipy's cKDTree: exact, no compile step, builds in
  milliseconds; the choice for low dimension.
* ``brute`` — exact search by blocked BLAS: ``‖q‖² + ‖x‖² − 2 q·x`` one
  block of queries at a time, so memory stays bounded.  Beats tree search
  from about ten dimensions up to tens of thousands of points.
* ``grid`` — a uniform cell grid searched by a numba kernel
  (:mod:`mmsold_cli.neighbors.grid_numba`): exact, built in milliseconds, and an order
  of magnitude faster per query than the k-d tree for d ≤ 3.  The smoothed
  score uses it (fused with the barycentre) whatever the model's index.
* ``ivf`` — faiss's inverted-file index (``IndexIVFFlat``, optional: the
  ``fast`` extra): k-means lists, each query scanning the ``nprobe`` nearest
  lists.  Measured against pynndescent, hnswlib and faiss's HNSW on 60k–1M
  latent codes (``docs/neighbor_libraries.md``) it builds fastest at large n
  with recall@16 ≥ 0.99, and it is what ``auto`` picks above the brute-force
  range when faiss is installed.
* ``nndescent`` — pynndescent's approximate graph search, the choice above
  the brute-force range without faiss.  Its import and numba compilation
  cost tens of seconds in a fresh process.

The model file stores no index object (no pickle): a k-d tree is rebuilt on
load in milliseconds, brute force needs nothing, and pynndescent is rebuilt
from the stored training k-NN graph (``init_graph``), skipping the descent,
by the first query (as faiss's lists are): a run of the walk search needs none.
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError

__all__ = ["INDEX_KINDS", "check_index", "choose_index", "build_index", "knn_graph", "KDTreeIndex", "BruteIndex",
           "NNDescentIndex", "IVFIndex", "GridIndex", "GRID_MAX_DIM", "have_faiss"]

INDEX_KINDS = ("auto", "kdtree", "brute", "nndescent", "grid", "ivf")

#: Highest dimension a cell grid is offered for (the block of (2h+1)^d cells grows fast).
GRID_MAX_DIM = 3

#: Memory budget of one brute-force block of squared distances, in floats.
_BLOCK_FLOATS = 4_000_000


def choose_index(n: int, d: int) -> str:
    """The backend ``auto`` resolves to for ``n`` points in ``d`` dimensions.

    k-d trees lose to a linear scan as d grows (the ``2^d`` rule of thumb);
    measured here, cKDTree wins up to d ≈ 8.  Exact BLAS search costs
    ``n·d`` per query and stays cheaper than pynndescent's start-up up to
    about 20 million ``n·d``, as long as the all-pairs k-NN graph of the fit
    (``n²·d``) stays within seconds.
    """
    if d <= 8:
        return "kdtree"
    # exact search also builds the fit's k-NN graph, an all-pairs pass of n²·d: 60,000 × 64 (2.3e11) takes
    # seconds, 200,000 × 64 (2.6e12) over a minute
    if n * d <= 20_000_000 and n * n * d <= 4e11:
        return "brute"
    return "ivf" if have_faiss() else "nndescent"


def have_faiss() -> bool:
    """Whether faiss imports (the optional ``fast`` extra)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class KDTreeIndex:
    """Exact search with :class:`scipy.spatial.cKDTree`."""

    kind = "kdtree"

    def __init__(self, X: np.ndarray):
        self.X = X
        self._tree = None

    @property
    def tree(self):
        """The cKDTree, built on first use (a sampler on the grid path never needs it)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.X, balanced_tree=False, compact_nodes=False)
        return self._tree

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self.tree.query(Q, k=k, workers=-1)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        return dist * dist, idx.astype(np.int64, copy=False)


class BruteIndex:
    """Exact search by blocked matrix products.

    From d ≥ 8 the products are float32, tiled so a chunk of training points
    stays in cache, and the best 2k candidates are re-ranked in float64 with
    a certified error bound (:func:`~mmsold_cli.neighbors.brute_numba.screened_knn`);
    the few rows the bound cannot certify are searched again in float64.
    """

    kind = "brute"

    def __init__(self, X: np.ndarray):
        self.X = X
        self.sqnorm = np.einsum("ij,ij->i", X, X)

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n, d = self.X.shape
        k = min(k, n)
        Q = np.ascontiguousarray(Q, dtype=np.float64)
        if d >= 8 and n > 4 * k:
            from .brute_numba import screened_knn

            out_d, out_i, bad = screened_knn(self.X, None, self.sqnorm, Q, k)  # float32 chunks made on the fly
            if bad.size:
                out_d[bad], out_i[bad] = self._query64(Q[bad], k)
            return out_d, out_i
        return self._query64(Q, k)

    def _query64(self, Q, k):
        from .brute_numba import topk_rows

        n = self.X.shape[0]
        m = Q.shape[0]
        out_d = np.empty((m, k))
        out_i = np.empty((m, k), dtype=np.int64)
        step = max(1, _BLOCK_FLOATS // n)
        for s in range(0, m, step):
            q = Q[s : s + step]
            d2 = q @ self.X.T
            d2 *= -2.0
            d2 += self.sqnorm[None, :]
            out_d[s : s + step], out_i[s : s + step] = topk_rows(d2, np.einsum("ij,ij->i", q, q), k)
        return out_d, out_i


def _cell_coords(x, lo, s, g, u, fl):
    """``(x − lo)/s`` and its cell index (clipped to g − 1, as a float) in the first len(x) entries of u and fl."""
    u, fl = u[: x.shape[0]], fl[: x.shape[0]]
    np.subtract(x, lo, out=u)
    u /= s
    np.floor(u, out=fl)
    np.minimum(fl, g - 1, out=fl)
    return u, fl


class GridIndex:
    """Exact search on a uniform cell grid (numba kernels, for d ≤ 3).

    The points are sorted cell by cell, cells in the order of their id
    ``x + dims[0] (y + dims[1] z)`` (x, y, z the cell's indices), so the
    cells of a *row* (fixed y and z) are contiguous in the sorted order.  Only
    the non-empty cells have table entries (a surface in 3-D leaves most cells
    of its bounding box empty); a bit per cell finds a cell's entry in O(1).

    Parameters
    ----------
    X : array of shape (n, d)
    radius : float, optional
        Typical k-th neighbour distance of the queries to come; the cell side
        is half of it, so most queries are certified by a block of
        :math:`5^d` cells.  Estimated from the training points when omitted.
    k : int
        The k the radius is estimated for.
    max_cells : int, optional
        Cap on the number of cells of the bounding box (their occupancy bits
        take 12 bytes per 64 cells; the other tables follow the non-empty
        cells); default ``max(8 n, 65536)``.  A coarser grid stays exact, only slower.

    Attributes
    ----------
    F : array of shape (max(d, 2), n), uint32
        The sorted points as offsets in their cells, one row per axis (a
        zero row when d = 1), what the shared-block kernel gathers: the low
        24 bits hold ``(x − lo)/s − c`` (c the point's cell index on the
        axis) in units of 2⁻²⁴ (rounded: to 3e-8 of a cell side), and the top
        byte ``c mod 256``, which tells a row's cells apart within 256 cells.
    perm : array of shape (n,), int32 (int64 from 2³¹ points)
        Maps sorted position to row of X; made on first use (the exact
        search), as the sampler's block kernel does not need it.
    cell_bits : array of shape (n_words,), uint64, n_words = ``prod(dims) // 64 + 1``
        Occupancy of the cells by id: bit ``i & 63`` of word ``i >> 6`` is set when cell i holds points.
    cell_rank : array of shape (n_words,), int32
        The number of non-empty cells before each word's first cell.
    cell_start : array of shape (n_cells + 1,), perm's dtype
        Sorted position of each non-empty cell's first point (cells by id); the last entry is n.
    Xs : array of shape (n, d), float64
        The points in sorted order, ``X[perm]``, made on first use (the exact
        ``grid-knn`` kernels and :meth:`query`).
    lo, s, dims : the grid's lower corner (d,), cell side and cells per axis (d,), int64.

    Notes
    -----
    Memory besides X: 4·max(d, 2) bytes a point for F, 4 a non-empty cell and
    12 per 64 cells of the bounding box for the cell tables (at most 1.5 bytes
    a point under the default ``max_cells`` from 8,192 points).  100,000 points
    on the 3-D bunny: 1.43 MB, where a float64 sorted copy, a dense int32 table
    of the bounding box's cells and the permutation took 5.5 MB.  The exact
    search adds perm (4 bytes a point) and Xs (8 d).
    """

    kind = "grid"

    def __init__(self, X: np.ndarray, radius: float | None = None, k: int = 16, max_cells: int | None = None):
        X = np.ascontiguousarray(X, dtype=np.float64)
        n, d = X.shape
        self.X = X
        if radius is None or not np.isfinite(radius) or radius <= 0:
            radius = self.typical_radius(X, X, k)
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = np.maximum(hi - lo, 1e-300)
        cap = max(8 * n, 65536) if max_cells is None else int(max_cells)
        s = 0.5 * radius
        if s <= 0 or not np.isfinite(s):
            s = float(span.max())
        while np.prod(np.floor(span / s) + 1.0) > cap:
            s *= 1.25
        dims = (np.floor(span / s) + 1).astype(np.int64)
        strides = np.ones(d, dtype=np.int64)
        for k_ in range(1, d):
            strides[k_] = strides[k_ - 1] * dims[k_ - 1]
        idt = np.int32 if n < 2**31 else np.int64
        self.lo, self.s, self.dims, self.strides = lo, float(s), dims, strides
        step = min(n, 1 << 16)
        u, fl = np.empty(step), np.empty(step)
        cid = self._cell_ids()
        perm = np.argsort(cid, kind="stable").astype(idt)
        cid = cid[perm]
        # the non-empty cells: where the sorted id changes
        first = np.flatnonzero(cid[1:] != cid[:-1])
        nc = first.size + 1
        self.cell_start = np.empty(nc + 1, dtype=idt)
        self.cell_start[0], self.cell_start[nc] = 0, n
        np.add(first, 1, out=self.cell_start[1:nc], casting="unsafe")
        del first
        cid = cid[self.cell_start[:nc]]  # the non-empty cells' ids, ascending
        # occupancy bits of the cells by id, and per 64-cell word the number of non-empty cells before it: a
        # cell's index among the non-empty ones in O(1) (a word more for the id one past the last cell)
        n_words = int(np.prod(dims)) // 64 + 1
        self.cell_bits = np.zeros(n_words, dtype=np.uint64)
        np.bitwise_or.at(self.cell_bits, cid >> 6, np.left_shift(np.uint64(1), (cid & 63).astype(np.uint64)))
        rank = np.zeros(n_words + 1, dtype=np.int32)  # int32 throughout: no temporaries over the words
        np.add.at(rank, (cid >> 6) + 1, 1)
        self.cell_rank = np.cumsum(rank, out=rank)[:n_words]
        del cid
        # offsets in the cell (by the same operations as the cell ids, so in the same cells) in units of
        # 2^-24, the cell index mod 256 in the top byte (exact integers in float64 until the cast)
        self.F = np.zeros((max(d, 2), n), dtype=np.uint32)
        for j in range(0, n, step):
            rows = perm[j : j + step]
            for k_ in range(d):
                uu, ff = _cell_coords(X[rows, k_], lo[k_], s, dims[k_], u, fl)
                uu -= ff
                uu *= 2.0**24
                np.rint(uu, out=uu)
                np.clip(uu, 0.0, 2.0**24 - 1.0, out=uu)
                np.remainder(ff, 256.0, out=ff)
                ff *= 2.0**24
                uu += ff
                self.F[k_, j : j + step] = uu
        del perm  # the shared-block kernel reads F alone; perm is made again when asked (exact search)
        self._perm = self._Xs = None
        # the kernels see three axes; unused ones have a single cell
        self.lo3 = np.zeros(3)
        self.lo3[:d] = lo
        self.dims3 = np.ones(3, dtype=np.int64)
        self.dims3[:d] = dims
        self.h0 = int(max(1, np.floor(radius / s)))  # rings are added as needed, so start small

    def _cell_ids(self) -> np.ndarray:
        """Each point's cell id ``x + dims[0] (y + dims[1] z)``, int64 of shape (n,), by chunks of ≤ 1 MB."""
        X = self.X
        n, d = X.shape
        step = min(n, 1 << 16)
        u, fl = np.empty(step), np.empty(step)
        cid = np.zeros(n, dtype=np.int64)
        for j in range(0, n, step):
            for k_ in range(d):
                _, ff = _cell_coords(X[j : j + step, k_], self.lo[k_], self.s, self.dims[k_], u, fl)
                ff *= self.strides[k_]  # exact: ids stay below cap ≪ 2^53
                np.add(cid[j : j + step], ff, out=cid[j : j + step], casting="unsafe")
        return cid

    @property
    def perm(self) -> np.ndarray:
        """Sorted position → row of X, array of shape (n,), int32 (int64 from 2³¹ points); made on first use."""
        if self._perm is None:
            n = self.X.shape[0]
            self._perm = np.argsort(self._cell_ids(), kind="stable").astype(np.int32 if n < 2**31 else np.int64)
        return self._perm

    @property
    def Xs(self) -> np.ndarray:
        """The points in sorted order, array of shape (n, d), float64 (``X[perm]``, made on first use)."""
        if self._Xs is None:
            self._Xs = np.take(self.X, self.perm, axis=0)
        return self._Xs

    @staticmethod
    def typical_radius(X: np.ndarray, Q: np.ndarray, k: int, sample: int = 256, random_state: int = 0,
                       index=None) -> float:
        """Median distance from (a sample of) the rows of Q to their k-th nearest row of X.

        Uses ``index`` when given, else blocked NumPy partitions (no compiled code).
        """
        rng = np.random.default_rng(random_state)
        n = X.shape[0]
        k = max(1, min(k, n))
        q = Q[rng.choice(Q.shape[0], size=min(sample, Q.shape[0]), replace=False)]
        if index is not None:
            kth = index.query(q, k)[0][:, -1]
        else:
            xn = np.einsum("ij,ij->i", X, X)
            step = max(1, (1 << 15) // n)  # blocks of ≤ 256 KB (one row if larger), worked in place
            kth = np.empty(len(q))
            for s in range(0, len(q), step):
                b = q[s : s + step]
                G = b @ X.T
                G *= -2.0
                G += xn
                G.partition(k - 1, axis=1)
                kth[s : s + step] = G[:, k - 1] + np.einsum("ij,ij->i", b, b)
        return float(np.sqrt(max(np.median(kth), 0.0)))

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from .grid_numba import grid_knn

        k = min(k, self.X.shape[0])
        d2, i = grid_knn(self, np.asarray(Q, dtype=np.float64), k)
        return d2, self.perm[i]


class NNDescentIndex:
    """Approximate search with pynndescent, built by the first query.

    pynndescent is slow to import and compiles its search for each index it builds: a model loaded with this
    index spent most of a minute on it before sampling, where the walk search (the latent sets' default) never
    queries the index.  ``graph``: the k-NN graph the index starts from (the fit's and a reload's, so both answer
    alike).
    """

    kind = "nndescent"

    def __init__(self, X: np.ndarray, graph: np.ndarray | None = None, random_state: int = 0):
        self.X = X
        self._graph = graph
        self._random_state = random_state
        self._nnd = None

    @property
    def nnd(self):
        if self._nnd is None:
            from pynndescent import NNDescent

            kw = {} if self._graph is None else {"init_graph": self._graph}
            nnd = NNDescent(self.X, n_neighbors=min(30, self.X.shape[0] - 1), random_state=self._random_state,
                            low_memory=True, **kw)
            nnd.prepare()
            self._nnd = nnd
        return self._nnd

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from .brute_numba import candidate_sqdist

        idx, dist = self.nnd.query(Q, k=k)
        idx = idx.astype(np.int64)
        d2 = candidate_sqdist(self.X, Q, idx)  # exact float64 distances (pynndescent returns float32 ones)
        order = np.argsort(d2, axis=1, kind="stable")
        return np.take_along_axis(d2, order, axis=1), np.take_along_axis(idx, order, axis=1)


class IVFIndex:
    """Approximate search with faiss's ``IndexIVFFlat`` (built on first query; faiss imported then).

    ``nlist`` = 4 √n k-means lists trained on 16 points per list (a fixed sample), ``nprobe`` = 16 lists
    scanned per query: recall@16 ≥ 0.99 on the measured latent sets.  Distances are recomputed in float64
    (faiss works in float32), so rows come sorted as the exact indexes sort them.

    A faiss call holds the main thread until it returns, and with it Ctrl-C and SIGTERM (on 1,000,000 × 64 the
    fit's graph query took 77 s in one call, adding the points 11 s): points are added and queried in blocks of
    about ``BLOCK_FLOPS`` of work, and the k-means runs on a worker thread (:func:`~mmsold_cli._threads.interruptible`).
    Each query's lists and distances do not depend on the others in its call, so blocks give the results of one call.

    ``lists``: the centroids and each point's list of an index built before (:meth:`lists`, kept in model
    files); the index is then rebuilt from them with neither the k-means nor the assignment of every point to
    its nearest centroid (on 1,000,000 × 64 these took 6.3 s and 10.8 s of each load).  The same lists hold
    the same points in the same order, so queries give what the first index gave.
    """

    #: Work per faiss call, in multiply-adds: about 0.1–0.3 s on one core.
    BLOCK_FLOPS = 1e9

    kind = "ivf"

    def __init__(self, X: np.ndarray, nprobe: int = 16, lists: tuple | None = None):
        self.X = X
        self.nprobe = int(nprobe)
        self._lists = lists
        self._index = None

    @property
    def index(self):
        if self._index is None:
            try:
                import faiss
            except ImportError:
                raise MmsoldError('index "ivf" needs faiss: pip install "mmsold[fast]" (or faiss-cpu)') from None
            from .._threads import interruptible, n_threads

            faiss.omp_set_num_threads(n_threads())  # the kernels' thread count: no oversubscribed cores
            n, d = self.X.shape
            X32 = np.ascontiguousarray(self.X, dtype=np.float32)
            if self._lists is not None:
                centroids, assign = self._lists
                nlist = centroids.shape[0]
                quantizer = faiss.IndexFlatL2(d)
                quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
                index = faiss.IndexIVFFlat(quantizer, d, nlist)
                index.is_trained = True
                assign = np.ascontiguousarray(assign, dtype=np.int64)
                rows = self._block(1)  # a copy of each row into its list
                for s in range(0, n, rows):
                    e = min(s + rows, n)
                    index.add_core(e - s, faiss.swig_ptr(X32[s:e]), None, faiss.swig_ptr(assign[s:e]))
            else:
                nlist = max(1, min(int(4 * np.sqrt(n)), n // 16))
                train = X32[np.sort(np.random.default_rng(0).permutation(n)[: 16 * nlist])]
                index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
                index.cp.seed = 0
                index.cp.max_points_per_centroid = 16  # use the sample as given (no faiss warning, no resampling)
                index.cp.min_points_per_centroid = 1
                interruptible(index.train, train)
                rows = self._block(nlist)  # each point against every list's centroid
                for s in range(0, n, rows):
                    index.add(X32[s : s + rows])
            index.nprobe = min(self.nprobe, nlist)
            self._index = index
        return self._index

    def lists(self) -> tuple | None:
        """``(centroids, assignment)``: the lists' centroids, array (nlist, d) of float32, and each point's list,
        array (n,) of int32; None while the index is not built (it is built by the first query)."""
        if self._index is None:
            return self._lists
        import faiss

        index = self._index
        centroids = index.quantizer.reconstruct_n(0, index.nlist)
        assign = np.empty(index.ntotal, np.int32)
        for lst in range(index.nlist):
            size = index.invlists.list_size(lst)
            if size:
                assign[faiss.rev_swig_ptr(index.invlists.get_ids(lst), size)] = lst
        return centroids, assign

    def _block(self, per_row: float) -> int:
        """Rows per faiss call for ``per_row`` vectors of work per row."""
        return int(np.clip(self.BLOCK_FLOPS / (max(per_row, 1.0) * self.X.shape[1]), 256, 65536))

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.index
        Q32 = np.ascontiguousarray(Q, dtype=np.float32)
        n, nlist = self.X.shape[0], index.nlist
        rows = self._block(nlist + index.nprobe * n / nlist)  # the centroids, then the probed lists' points
        idx = np.empty((Q32.shape[0], k), np.int64)
        for s in range(0, Q32.shape[0], rows):
            idx[s : s + rows] = index.search(Q32[s : s + rows], k)[1]
        # −1 (fewer than k found in the lists scanned) is left as is; recomputed float64 distances sort the rest
        from .brute_numba import candidate_sqdist

        d2 = candidate_sqdist(self.X, Q, idx)
        order = np.argsort(d2, axis=1, kind="stable")
        return np.take_along_axis(d2, order, axis=1), np.take_along_axis(idx, order, axis=1)


def check_index(kind: str, d: int) -> None:
    """Refuse an index kind that is unknown or cannot serve d-D points."""
    if kind not in INDEX_KINDS:
        raise MmsoldError(f"index must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    if kind == "grid" and d > GRID_MAX_DIM:
        raise MmsoldError(f"index grid needs dimension ≤ {GRID_MAX_DIM}, got {d}")


def build_index(X: np.ndarray, kind: str = "auto", graph: np.ndarray | None = None, lists: tuple | None = None):
    """Build the search structure ``kind`` over training points X of shape (n, d) (``graph``: the training points'
    k-NN graph, which an ``nndescent`` index starts from; ``lists``: an ``ivf`` index's, see :class:`IVFIndex`)."""
    check_index(kind, X.shape[1])
    if kind == "auto":
        kind = choose_index(*X.shape)
    if kind == "kdtree":
        return KDTreeIndex(X)
    if kind == "brute":
        return BruteIndex(X)
    if kind == "grid":
        return GridIndex(X)
    if kind == "ivf":
        return IVFIndex(X, lists=lists)
    return NNDescentIndex(X, graph=graph)


def knn_graph(X: np.ndarray, k: int, index=None) -> tuple[np.ndarray, np.ndarray]:
    """Each training point's k nearest other training points.

    Returns
    -------
    sqdist : array of shape (n, k)
    idx : array of shape (n, k), int64; a point is never its own neighbour
    """
    n = X.shape[0]
    k = min(k, n - 1)
    if index is None:
        index = build_index(X)
    d2, idx = index.query(X, k + 1)
    # drop self (duplicates may put self at any of the zero-distance slots)
    self_mask = idx == np.arange(n)[:, None]
    has_self = self_mask.any(axis=1)
    keep = ~self_mask
    keep[~has_self, -1] = False  # self not found: drop the farthest instead
    return d2[keep].reshape(n, k), idx[keep].reshape(n, k)
