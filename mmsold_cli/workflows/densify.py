r"""Densifying a sparse surface point cloud: sample, then put the samples back on the surface.

Langevin samples of the blurred law :math:`p_t` sit off the surface: with
:math:`t` of the order of the point spacing they spread into a shell of
thickness about :math:`t` (measured: mean point-to-surface distance
:math:`\approx 0.8\,t`).  :func:`densify` therefore samples :math:`N` points
with MM-SOLD at a noise level scaled to the spacing :math:`\delta`, then
denoises them with one of

* ``"mls"`` (default) — projection on the moving-least-squares surface of the
  sparse points [1]_, [2]_: around each sample :math:`z`, with weights
  :math:`w_j = e^{-\|x_j - z\|^2/h^2}` on its :math:`k` nearest sparse points,
  take the weighted centroid :math:`c` and the weighted covariance's
  eigenvectors :math:`e_1, e_2` (tangent) and :math:`\nu` (normal, smallest
  eigenvalue); fit a quadratic height by weighted least squares and move
  :math:`z` onto it,

  .. math::

      \min_a \sum_j w_j\big(\nu^\top(x_j-c) - f_a(u_j, v_j)\big)^2, \qquad
      z \leftarrow c + u_z e_1 + v_z e_2 + f_a(u_z, v_z)\,\nu,

  with :math:`(u, v) = (e_1^\top(\cdot - c), e_2^\top(\cdot - c))` and
  :math:`f_a` a polynomial of degree 2, kept within :math:`h/4` of the
  neighbours' range of heights (a quadratic over nearly collinear points, on
  a thin tube or a tip, would otherwise extrapolate far); repeated ``iters``
  times so the weights centre on the projected point.  Where one smooth
  quadratic does not fit (a crease), the point is re-projected on a two-sided
  fit (:func:`crease_project`).  Then the share
  ``reject`` of least trusted points is dropped (they were drawn in excess):
  first those farther than 2 δ from every input point, then those with the
  largest fit residual :math:`(\sum_j w_j(\nu^\top(x_j-c)-f_a(u_j,v_j))^2)^{1/2}`
  — creases and thin parts, where a smooth fit from the sparse points is
  least accurate;
* ``"tweedie"`` — one posterior-mean step at a small noise level
  :math:`t_d`, :math:`z \leftarrow b_{t_d}(z) = \mathbb E[x \mid x + t_d\varepsilon = z]`
  under the empirical law (the barycentre of :mod:`mmsold_cli.score.smoothed`) [3]_;
* ``"anneal"`` — the sampler's noise level falls geometrically to
  :math:`t_{\text{end}}` over its last steps (:func:`mmsold_cli.samplers.schedules.anneal`);
* ``"none"``.

Defaults, all scaled by the sparse input's spacing :math:`\delta` (mean
nearest-neighbour distance):

.. math::

    t = 1.5\,\delta,\quad \sigma = 0,\quad h = 1.5\,\delta,\quad k = 24,\quad
    \text{reject} = 0.08,\quad t_d = 0.5\,\delta,\quad t_{\text{end}} = 0.1\,\delta

where
    * :math:`t, \sigma` are the sampler's noise level and smoothing,
    * :math:`h, k` the MLS kernel width and neighbour count, reject the share dropped,
    * :math:`t_d` the Tweedie step's noise level and :math:`t_{\text{end}}`
      the annealing's last noise level.

They come from ``benchmarks/densify_meshes.py`` on four meshes; its table and
what they trade (distance to the surface against coverage) are in the README.

References
----------
.. [1] D. Levin, "Mesh-independent surface interpolation", in Geometric
   Modeling for Scientific Visualization, Springer 2003.
.. [2] M. Alexa et al., "Computing and rendering point set surfaces",
   IEEE TVCG 9(1), 2003.
.. [3] B. Efron, "Tweedie's formula and selection bias", JASA 106, 2011.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..defaults import (
    ANNEAL_STEPS,
    ANNEAL_T_END,
    FAR,
    MLS_ITERS,
    MLS_NEIGHBOURS,
    MLS_RADIUS,
    REJECT,
    TWEEDIE_T,
)
from ..defaults import DENSIFY_ANNEAL_TOTAL_STEPS as ANNEAL_TOTAL_STEPS
from ..defaults import DENSIFY_FACTOR as FACTOR
from ..defaults import DENSIFY_SIGMA_FACTOR as SIGMA_FACTOR
from ..defaults import DENSIFY_STEPS as STEPS
from ..defaults import DENSIFY_T_FACTOR as T_FACTOR
from ..errors import MmsoldError
from ..validation import check_int, check_points, check_positive

__all__ = [
    "ANNEAL_STEPS",
    "ANNEAL_T_END",
    "DENOISERS",
    "NOISE_THRESHOLD",
    "choose_kernel",
    "local_kernels",
    "crease_project",
    "even_density",
    "local_spacing_project",
    "estimate_noise",
    "smooth_support",
    "FACTOR",
    "FAR",
    "MLS_ITERS",
    "MLS_NEIGHBOURS",
    "MLS_RADIUS",
    "REJECT",
    "SIGMA_FACTOR",
    "STEPS",
    "TWEEDIE_T",
    "T_FACTOR",
    "DensifyResult",
    "densify",
    "densify_cloud",
    "mls_grid",
    "mls_project",
    "trusted",
    "tweedie_step",
]

DENOISERS = ("mls", "tweedie", "anneal", "none")
#: Above this estimated noise (in spacings, :func:`estimate_noise`) the input counts as noisy.
NOISE_THRESHOLD = 0.2
#: Candidate (MLS kernel width in spacings, neighbours) for a noisy input; the one with the smallest
#: leave-one-out residual is used (:func:`choose_kernel`: over the whole cloud; :func:`local_kernels`: around
#: each point).
NOISY_KERNELS = ((1.5, 24), (2.0, 32), (2.5, 48), (3.0, 64), (4.0, 96))
#: Passes moving a noisy input onto its own MLS surface (the support samples are projected on).
NOISY_PASSES = 1
#: MLS iterations of each pass (the weights re-centred on the moved point).
NOISY_ITERS = 1
#: local_kernels: neighbours whose leave-one-out residuals are averaged to choose a point's kernel.
NOISY_AVERAGE = 48
#: even_density: filling passes, candidate jitter (in local spacings), percentile of the reference spacing.
EVEN_PASSES, EVEN_JITTER, EVEN_PERCENTILE = 3, 0.8, 25
#: even="auto" runs the even stage when more than EVEN_AUTO_SHARE of the points have a local spacing above
#: EVEN_AUTO_RATIO × the reference: uniform surface samples (2,000 or 50,000 points on the shared meshes, a
#: plane) give 0.004–0.010, a 2:1 density step 0.035–0.049, 3:1 and more ≥ 0.07 (docs/performance.md §8).
EVEN_AUTO_RATIO, EVEN_AUTO_SHARE = 2.0, 0.03
#: local_spacing_project: kernel widths, in MLS_RADIUS × spacing, by the local spacing of the input.
EVEN_LEVELS = (1.0, 1.5, 2.0, 3.0)
#: even_density drops candidates whose neighbours' centroid is farther than this share of their mean distance.
RIM_OFFSET = 0.7
_MLS_BLOCK = 16_384
#: crease_project: residual (in spacings) above which a point is tested for a crease; smallest angle
#: (degrees) between the two sides' normals; largest two-sided / one-surface residual ratio; least weight
#: of a side; PCA neighbours of the input normals; 2-means and reassignment passes; alternating projections
#: onto the crease line; ridge on a side's slope and curvature.
CREASE_RESIDUAL, CREASE_ANGLE, CREASE_GAIN, CREASE_MIN_WEIGHT = 0.04, 30.0, 0.15, 0.001
CREASE_NORMAL_NEIGHBOURS, CREASE_KMEANS, CREASE_REASSIGN, CREASE_ALTERNATIONS, CREASE_RIDGE = 6, 4, 2, 6, (1e-3, 0.1)
#: mls_project runs the numba kernel (:mod:`mmsold_cli.workflows.mls_numba`, 5-6x faster) and the grid k-NN
#: search from this many points on; below, the NumPy fit and the k-d tree, which compile nothing.
MLS_NUMBA_POINTS = 20_000


@dataclass
class DensifyResult:
    """Dense points and how they were made.

    Attributes
    ----------
    points : array of shape (N, 3)
    settings : dict
        Every resolved setting, including ``spacing`` of the input.
    diagnostics : dict
        ``sample_time``, ``denoise_time`` (s), ``mean_move`` (mean
        displacement by the denoising stage, in spacings) and the sampler's
        own diagnostics under ``sampler``.
    support : array of shape (n_s, 3)
        The points the samples were projected on: the input after the noise
        stage (the even stage's points guide the sampler only).
    """

    points: np.ndarray
    settings: dict
    diagnostics: dict = field(default_factory=dict)
    #: The points the samples were projected on: the input after the noise stage (the input itself when it
    #: did not run).
    support: np.ndarray | None = None


def _quad_basis(u, v):
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)


def _mls_once(Z, X, idx, d2, h):
    P = X[idx]  # (m, k, 3)
    w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (h * h))  # shifted by the nearest: same weights once normalised
    w /= w.sum(axis=1, keepdims=True)
    c = (w[:, None, :] @ P)[:, 0]  # batched matmul: several times faster than einsum over (m, k, d)
    D = P - c[:, None, :]
    C = (D * w[..., None]).transpose(0, 2, 1) @ D
    _, vec = np.linalg.eigh(C)  # ascending: normal first
    nrm, e2, e1 = vec[..., 0], vec[..., 1], vec[..., 2]
    uvh = D @ np.stack([e1 / h, e2 / h, nrm], axis=2)  # (m, k, 3): tangential coordinates and height
    u, v, hgt = uvh[..., 0], uvh[..., 1], uvh[..., 2]
    A = _quad_basis(u, v)
    Aw = A * w[..., None]
    G = Aw.transpose(0, 2, 1) @ A + 1e-6 * np.eye(6)
    r = (Aw.transpose(0, 2, 1) @ hgt[..., None])[..., 0]
    coef = np.linalg.solve(G, r[..., None])[..., 0]
    resid = np.sqrt(np.einsum("mk,mk->m", w, (hgt - (A @ coef[..., None])[..., 0]) ** 2))
    zc = Z - c
    uz = np.einsum("md,md->m", zc, e1) / h
    vz = np.einsum("md,md->m", zc, e2) / h
    f = np.einsum("mi,mi->m", _quad_basis(uz, vz), coef)
    # stay near the slab the neighbours span along the normal (margin h/4, room for a cap or a peak):
    # a quadratic fitted to nearly collinear points (a thin tube, a tip) is free across them and can
    # otherwise extrapolate arbitrarily far (measured: 37 spacings on the cow's tail)
    f = np.clip(f, hgt.min(axis=1) - 0.25 * h, hgt.max(axis=1) + 0.25 * h)
    return c + (uz * h)[:, None] * e1 + (vz * h)[:, None] * e2 + f[:, None] * nrm, resid


def _tangents(nrm):
    """Two unit tangents completing each normal to an orthonormal frame."""
    a = np.where(np.abs(nrm[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    e1 = np.cross(nrm, a)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(nrm, e1)


def _side_fit(P, w, nrm, h):
    """Weighted quadratic height over the frame of the normals ``nrm``: (fit, weighted squared residual)."""
    ws = w / (w.sum(axis=1, keepdims=True) + 1e-300)
    c = (ws[:, None, :] @ P)[:, 0]
    e1, e2 = _tangents(nrm)
    D = P - c[:, None, :]
    uvh = D @ np.stack([e1 / h, e2 / h, nrm], axis=2)
    A = _quad_basis(uvh[..., 0], uvh[..., 1])
    Aw = A * ws[..., None]
    # a side may hold few points, all near the crease line: a ridge keeps its slope bounded and its curvature
    # small instead of free (measured on the capped cylinder: ridge 1e-3 on the curvature 0.049 / 0.251 δ
    # near the rims, 0.1 gives 0.019 / 0.092 δ)
    G = Aw.transpose(0, 2, 1) @ A + np.diag([1e-6, CREASE_RIDGE[0], CREASE_RIDGE[0]] + [CREASE_RIDGE[1]] * 3)
    coef = np.linalg.solve(G, (Aw.transpose(0, 2, 1) @ uvh[..., 2:]))[..., 0]
    r2 = np.einsum("mk,mk->m", w, (uvh[..., 2] - (A @ coef[..., None])[..., 0]) ** 2)
    return (c, e1, e2, nrm, coef, uvh[..., 2].min(axis=1), uvh[..., 2].max(axis=1)), r2


def _side_eval(Q, fit, h):
    """Signed height of Q (shape (m, 3) or (m, k, 3)) above the fitted side, and Q's projection on it."""
    c, e1, e2, nrm, coef, gmin, gmax = fit
    D = Q - (c if Q.ndim == 2 else c[:, None, :])
    u, v, g = (np.einsum("m...d,md->m...", D, a) for a in (e1 / h, e2 / h, nrm))
    f = np.einsum("m...i,mi->m...", _quad_basis(u, v), coef)
    if Q.ndim == 3:
        return g - f, None
    f = np.clip(f, gmin - 0.25 * h, gmax + 0.25 * h)
    return g - f, c + (u * h)[:, None] * e1 + (v * h)[:, None] * e2 + f[:, None] * nrm


def _crease_once(Q, X, NX, idx, d2, h, resid):
    r"""Two-sided MLS fit at points Q (NumPy; see :func:`crease_project`): (points, residuals, crease mask)."""
    m, k = idx.shape
    P = X[idx]
    w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (h * h))
    w /= w.sum(axis=1, keepdims=True)
    c = (w[:, None, :] @ P)[:, 0]
    D = P - c[:, None, :]
    nu = np.linalg.eigh((D * w[..., None]).transpose(0, 2, 1) @ D)[1][..., 0]
    N = NX[idx]
    N = N * np.where(np.einsum("mkd,md->mk", N, nu) < 0, -1.0, 1.0)[..., None]  # PCA signs: agree with the fit
    rows = np.arange(m)
    # 2-means on the neighbours' normals, started from the normal least like the weighted mean and the
    # normal least like that one
    mean = (w[:, None, :] @ N)[:, 0]
    n1 = N[rows, np.argmin(np.einsum("mkd,md->mk", N, mean), axis=1)]
    n2 = N[rows, np.argmin(np.einsum("mkd,md->mk", N, n1), axis=1)]
    for _ in range(CREASE_KMEANS):
        lab = np.einsum("mkd,md->mk", N, n1) >= np.einsum("mkd,md->mk", N, n2)
        n1 = ((w * lab)[:, None, :] @ N)[:, 0] + 1e-300
        n2 = ((w * ~lab)[:, None, :] @ N)[:, 0] + 1e-300
        n1 /= np.linalg.norm(n1, axis=1, keepdims=True)
        n2 /= np.linalg.norm(n2, axis=1, keepdims=True)
    angle_cos = np.einsum("md,md->m", n1, n2)
    fa, ra = _side_fit(P, w * lab, n1, h)
    fb, rb = _side_fit(P, w * ~lab, n2, h)
    for _ in range(CREASE_REASSIGN):
        # points near the crease have PCA normals blended across it: give each point to the side whose
        # surface it lies on (k-planes), then refit
        ga, gb = np.abs(_side_eval(P, fa, h)[0]), np.abs(_side_eval(P, fb, h)[0])
        lab = ga <= gb
        fa, ra = _side_fit(P, w * lab, fa[3], h)
        fb, rb = _side_fit(P, w * ~lab, fb[3], h)
    wa, wb = w * lab, w * ~lab
    r2 = np.sqrt(ra + rb)
    use = ((angle_cos < np.cos(np.radians(CREASE_ANGLE))) & (r2 < CREASE_GAIN * resid)
           & (wa.sum(axis=1) > CREASE_MIN_WEIGHT) & (wb.sum(axis=1) > CREASE_MIN_WEIGHT))
    ha_q, pa = _side_eval(Q, fa, h)
    hb_q, pb = _side_eval(Q, fb, h)
    # each fitted side is the surface only on the side of the other fit where its own points lie
    sa = np.einsum("mk,mk->m", wa, _side_eval(P, fb, h)[0])
    sb = np.einsum("mk,mk->m", wb, _side_eval(P, fa, h)[0])
    va = sa * _side_eval(pa, fb, h)[0] >= 0
    vb = sb * _side_eval(pb, fa, h)[0] >= 0
    near_a = np.linalg.norm(pa - Q, axis=1) <= np.linalg.norm(pb - Q, axis=1)
    q = pa
    for _ in range(CREASE_ALTERNATIONS):  # neither projection valid: the crease line, by alternating projections
        q = _side_eval(_side_eval(q, fb, h)[1], fa, h)[1]
    out = np.where((va & (~vb | near_a))[:, None], pa, np.where(vb[:, None], pb, q))
    return np.where(use[:, None], out, Q), np.where(use, r2, resid), use


def crease_project(P, X, radius: float, residual, *, spacing: float, neighbours: int = MLS_NEIGHBOURS,
                   index=None, normals=None):
    r"""Re-project MLS points near creases onto the side of the crease they belong to.

    One smooth quadratic over a kernel that straddles a crease rounds it off
    (measured with ``benchmarks/scans.py cad``: 0.16 δ mean, 0.42 δ p95 within
    2 δ of a capped cylinder's rims; 0.019 / 0.092 δ after this stage).
    Following the robust / piecewise MLS fits [4]_, [5]_, at each point
    :math:`p` whose fit residual exceeds ``CREASE_RESIDUAL`` δ:

    1. the :math:`k` neighbours' PCA normals (``CREASE_NORMAL_NEIGHBOURS``
       points; signs made to agree with the one-surface fit's normal) are split
       in two by weighted 2-means; each side :math:`A, B` gets its own
       weighted quadratic height over its mean normal (the weights
       :math:`w_j` of the module docstring restricted to the side; a ridge
       ``CREASE_RIDGE`` on the slope and curvature coefficients, since a side
       may hold only a strip of points along the crease);
    2. ``CREASE_REASSIGN`` times, each neighbour moves to the side whose
       fitted surface it is nearer (normals are blended within a spacing of
       the crease), and both sides are refitted;
    3. the two-sided fit is kept if the mean normals differ by more than
       ``CREASE_ANGLE`` degrees, each side holds more than ``CREASE_MIN_WEIGHT``
       of the weight and its residual :math:`(\sum_A w_j r_j^2 + \sum_B w_j r_j^2)^{1/2}`
       is below ``CREASE_GAIN`` × the one-surface residual;
    4. :math:`p` goes to the nearer of its projections :math:`p_A, p_B` that
       is *valid* — :math:`p_A` lies on the side of surface :math:`B` where
       :math:`A`'s points lie, :math:`\operatorname{sign}\big(\sum_A w_j g_B(x_j)\big)\,g_B(p_A) \ge 0`
       (:math:`g_B`: signed height above B) — so a convex and a concave crease are
       both handled; if neither is valid, onto the crease line (alternating
       projections on A and B).

    Parameters
    ----------
    P : array of shape (m, 3)
        MLS-projected points (:func:`mls_project`).
    X : array of shape (n, 3)
        The surface points they were projected on.
    radius : float
        Kernel width h.
    residual : array of shape (m,)
        Their one-surface fit residuals.
    spacing : float
        δ of X.
    neighbours : int
    index : optional
        Exact k-NN index over X with ``query(Q, k)`` → (squared distances, indices).
    normals : array of shape (n, 3), optional
        Unoriented unit normals of X; PCA over ``CREASE_NORMAL_NEIGHBOURS`` points when not given.

    Returns
    -------
    (points, residuals, crease) : arrays of shape (m, 3), (m,), (m,) bool
        The residual of a re-projected point is its two-sided fit's.

    References
    ----------
    .. [4] A. C. Öztireli, G. Guennebaud, M. Gross, "Feature preserving point
       set surfaces based on non-linear kernel regression", Computer
       Graphics Forum 28(2), 2009 (RIMLS).
    .. [5] S. Fleishman, D. Cohen-Or, C. T. Silva, "Robust moving least-squares
       fitting with sharp features", ACM TOG 24(3), 2005.
    """
    from scipy.spatial import cKDTree

    from .normals import _pca_normals

    P = check_points(P, name="points", dim=3)
    X = check_points(X, name="surface points", dim=3, min_points=6)
    radius = check_positive(radius, "MLS radius")
    spacing = check_positive(spacing, "spacing")
    residual = np.asarray(residual, dtype=np.float64)
    if residual.shape != (P.shape[0],):
        raise MmsoldError(f"residual must have shape ({P.shape[0]},), got {residual.shape}")
    k = min(check_int(neighbours, "MLS neighbours", low=6), X.shape[0])
    out, res = P.copy(), residual.copy()
    crease = np.zeros(P.shape[0], dtype=bool)
    cand = np.flatnonzero(residual > CREASE_RESIDUAL * spacing)
    if cand.size == 0:
        return out, res, crease
    tree = cKDTree(X) if index is None or normals is None else None

    def knn(q):
        if index is not None:
            return index.query(q, k)
        d, i = tree.query(q, k=k, workers=-1)
        return d * d, i

    if normals is None:
        normals = _pca_normals(X, X, tree, min(CREASE_NORMAL_NEIGHBOURS, X.shape[0]))
    for s in range(0, cand.size, _MLS_BLOCK):
        rows = cand[s : s + _MLS_BLOCK]
        d2, idx = knn(P[rows])
        out[rows], res[rows], crease[rows] = _crease_once(P[rows], X, normals, idx, d2, radius, residual[rows])
    return out, res, crease


def mls_grid(X, radius: float, neighbours: int = MLS_NEIGHBOURS):
    r"""The exact grid k-NN index over X that :func:`mls_project` searches for large calls.

    Its cell side follows from the kernel width rather than from a sampled
    estimate: on a surface of mean spacing δ (h = 1.5 δ by default) the k-th
    neighbour lies about :math:`2\delta\sqrt{k/\pi}` away.
    """
    from ..neighbors.indexes import GridIndex

    return GridIndex(X, radius=(4.0 / 3.0) * float(radius) * np.sqrt(neighbours / np.pi), k=neighbours)


def mls_project(Z, X, radius: float, *, neighbours: int = MLS_NEIGHBOURS, iters: int = MLS_ITERS, tree=None,
                return_residual: bool = False, grid=None):
    r"""Project points on the moving-least-squares surface of X (see the module docstring).

    Parameters
    ----------
    Z : array of shape (m, 3)
        Points to project.
    X : array of shape (n, 3)
        The sparse surface points, n ≥ 6.
    radius : float
        Kernel width h.
    neighbours : int
        Sparse points per fit (at most n).
    iters : int
        Projection passes.
    tree : scipy.spatial.cKDTree, optional
        A k-d tree over X, if one exists already (used below ``MLS_NUMBA_POINTS``
        points).
    grid : GridIndex, optional
        A grid index over X (:func:`mls_grid`), used from ``MLS_NUMBA_POINTS`` points on; built when
        not given.
    return_residual : bool
        Also return each point's fit residual.

    Returns
    -------
    Z_proj : array of shape (m, 3)
    residual : array of shape (m,), only with ``return_residual``
        Weighted RMS distance of the sparse neighbours from the last fitted
        quadratic, :math:`(\sum_j w_j (\nu^\top(x_j-c) - f_a(u_j,v_j))^2)^{1/2}`:
        large where the surface bends more sharply than a quadratic over the
        kernel (creases, thin parts), where the projection is least reliable.
    """
    from scipy.spatial import cKDTree

    Z = check_points(Z, name="points", dim=3)
    X = check_points(X, name="surface points", dim=3, min_points=6)
    radius = check_positive(radius, "MLS radius")
    k = min(check_int(neighbours, "MLS neighbours", low=6), X.shape[0])
    iters = check_int(iters, "MLS iterations", low=1)
    if Z.shape[0] >= MLS_NUMBA_POINTS:
        # large calls: the numba fit, and the exact grid k-NN search (3x faster than the k-d tree at k = 24)
        from .mls_numba import mls_once_numba as once

        grid = mls_grid(X, radius, k) if grid is None else grid

        def knn(z):
            return grid.query(z, k)
    else:  # small calls stay on NumPy and the k-d tree: they compile nothing
        once = _mls_once
        tree = cKDTree(X) if tree is None else tree

        def knn(z):
            d, idx = tree.query(z, k=k, workers=-1)
            return d * d, idx
    out = np.empty_like(Z)
    res = np.empty(Z.shape[0])
    for s in range(0, Z.shape[0], _MLS_BLOCK):
        z = Z[s : s + _MLS_BLOCK]
        for _ in range(iters):
            d2, idx = knn(z)
            z, r = once(z, X, idx, d2, radius)
        out[s : s + _MLS_BLOCK] = z
        res[s : s + _MLS_BLOCK] = r
    return (out, res) if return_residual else out


def estimate_noise(X, *, spacing: float | None = None, neighbours: int = MLS_NEIGHBOURS, max_points: int = 4000,
                   random_state=0, radius: float = MLS_RADIUS) -> float:
    r"""Scanner noise of a surface cloud, in units of its spacing δ: a leave-one-out MLS residual.

    For (up to ``max_points``) points :math:`x_i`, fit the local quadratic of
    the module docstring to its :math:`k` nearest neighbours *without*
    :math:`x_i` (kernel :math:`h = 1.5\,\delta`) and take the distance of
    :math:`x_i` from its projection; the estimate is the RMS of these
    distances over δ.  With i.i.d. noise :math:`N(0, s^2 I)` it is about
    :math:`s\sqrt{1 + p/k_\text{eff}}/\delta` (the fitted surface carries
    noise too); on clean meshes sampled at 2,000 points it is the quadratic's
    own error, measured 0.01–0.07 (benchmarks/scans.py).

    Returns
    -------
    float
        Estimated noise over δ.
    """
    from scipy.spatial import cKDTree

    from ..metrics.surface import mean_spacing

    X = np.ascontiguousarray(X, dtype=np.float64)
    delta = mean_spacing(X) if spacing is None else float(spacing)
    rng = np.random.default_rng(random_state)
    Q = X if len(X) <= max_points else X[rng.choice(len(X), max_points, replace=False)]
    k = min(int(neighbours) + 1, len(X))
    d, idx = cKDTree(X).query(Q, k=k, workers=-1)
    P, _ = _mls_once(Q, X, idx[:, 1:], d[:, 1:] ** 2, radius * delta)
    # median, not mean: creases and thin parts a quadratic cannot follow are a minority with large residuals
    return float(np.median(np.linalg.norm(P - Q, axis=1)) / 0.6745 / delta)


def local_spacing(X, neighbours: int = 6, *, tree=None, points=None) -> np.ndarray:
    """Mean distance from each of ``points`` (default: every point of X) to its ``neighbours`` nearest other
    points of X (``tree``: a k-d tree over X, made when not given); ``points`` must be rows of X."""
    from scipy.spatial import cKDTree

    tree = cKDTree(X) if tree is None else tree
    d, _ = tree.query(X if points is None else points, k=min(neighbours + 1, len(X)), workers=-1)
    return d[:, 1:].mean(axis=1)


def spacing_reference(s) -> float:
    """The spacing the even stage fills up to, from local spacings s (:func:`local_spacing`): their
    ``EVEN_PERCENTILE``-th percentile, the dense parts' spacing."""
    return float(np.percentile(s, EVEN_PERCENTILE))


def even_reference(X) -> float:
    """:func:`spacing_reference` of X's own local spacings."""
    return spacing_reference(local_spacing(X))


def even_choice(even):
    """``even`` checked: "auto", True or False (a NumPy bool taken as a bool)."""
    even = bool(even) if isinstance(even, (bool, np.bool_)) else even
    if even not in ("auto", True, False):
        raise MmsoldError(f"even must be 'auto', True or False, got {even!r}")
    return even


def uneven_share(spacings, reference: float) -> float:
    """Share of points whose local spacing exceeds ``EVEN_AUTO_RATIO`` × ``reference``: ``even="auto"`` runs the
    even stage when it is above ``EVEN_AUTO_SHARE``.  A reference of 0 (over a quarter of the points have six
    or more exact copies) gives 0: there is no spacing to fill up to."""
    if not reference > 0:
        return 0.0
    return float(np.mean(np.asarray(spacings) > EVEN_AUTO_RATIO * reference))


def even_density(X, *, passes: int = EVEN_PASSES, jitter: float = EVEN_JITTER, reference: float | None = None,
                 neighbours: int = 6, random_state=0, spacings=None) -> np.ndarray:
    r"""Fill the sparse parts of a surface cloud up to the density of its dense parts (points added, none moved).

    Let :math:`s_i` be the mean distance from :math:`x_i` to its 6 nearest
    neighbours and :math:`s_\text{ref}` the ``reference`` spacing (default :func:`even_reference` of X: the
    dense parts' spacing; a tile of a larger cloud is given the whole cloud's).  Each pass gives every point
    :math:`c_i = \max(0, \operatorname{round}((s_i/s_\text{ref})^2 - 1))`
    candidates (capped at 20) — the points missing from its share
    :math:`\propto s_i^2` of the surface at density :math:`s_\text{ref}^{-2}` —

    .. math::

        z = x_i + \text{jitter}\cdot s_i\,\varepsilon, \qquad \varepsilon \sim N(0, I),

    drops candidates within :math:`s_\text{ref}/2` of an existing point,
    moves the rest onto the MLS surface of the current cloud (kernel
    :math:`1.5\,\operatorname{median} s` of their sources) and keeps those
    inside the cloud: the centroid of their 6 nearest points within
    ``RIM_OFFSET`` × those points' mean distance (past an open border the
    neighbours all lie on one side).  A second pass
    fills what the first left (the candidates are random, so their first
    layer is uneven), a third what is left.  Measured on an 8:1 density step (tests/test_scans_even.py):
    sparse coverage 0.33 → 0.86, 0.93 × the dense part's.  ``spacings``: s of X when the caller has it
    (:func:`local_spacing` with these ``neighbours``), for the first pass.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(random_state)
    X = np.ascontiguousarray(X, dtype=np.float64)
    ref = reference
    for k in range(int(passes)):
        tree = cKDTree(X)
        s = spacings if k == 0 and spacings is not None else local_spacing(X, neighbours, tree=tree)
        ref = spacing_reference(s) if ref is None else ref
        if not ref > 0:
            raise MmsoldError("even density needs a positive reference spacing, got 0: over a quarter of the points "
                              "have six or more exact copies (remove the duplicates, or --no-even)")
        c = np.minimum(np.maximum(np.rint((s / ref) ** 2 - 1), 0), 20).astype(np.int64)
        src = np.repeat(np.arange(len(X)), c)
        if len(src) == 0:
            break
        Z = X[src] + jitter * s[src, None] * rng.standard_normal((len(src), 3))
        keep = tree.query(Z, k=1, workers=-1)[0] > 0.5 * ref
        if not keep.any():
            break
        Z = mls_project(Z[keep], X, 1.5 * float(np.median(s[src])), tree=tree)
        # a rim point's neighbours all lie on one side, so its s is large and candidates spill past an open
        # border: keep a candidate only if it sits among its neighbours, not beside them (centroid offset)
        dz, iz = tree.query(Z, k=min(neighbours, len(X)), workers=-1)
        offset = np.linalg.norm(X[iz].mean(axis=1) - Z, axis=1) / dz.mean(axis=1)
        X = np.r_[X, Z[offset < RIM_OFFSET]]
    return X


def choose_kernel(X, *, spacing: float | None = None) -> tuple[float, int]:
    r"""The MLS kernel (width in spacings, neighbours) for a noisy cloud: least leave-one-out residual.

    Among :data:`NOISY_KERNELS`, the one whose fit predicts held-out points
    best (smallest :func:`estimate_noise` at that kernel).  The held-out
    residual is noise + the fit's variance + its bias: a wider kernel lowers
    the variance (more points) and raises the bias (detail it cannot bend
    to), so its minimum is the best trade on *this* shape — measured 3 δ on a
    smooth torus, 2–2.5 δ on the 2,000-point bunny and cow.
    """
    scores = [estimate_noise(X, spacing=spacing, radius=h, neighbours=k) for h, k in NOISY_KERNELS]
    return NOISY_KERNELS[int(np.argmin(scores))]


def smooth_support(X, radius, *, neighbours, passes: int) -> np.ndarray:
    """The input moved onto its own MLS surface ``passes`` times: the support a noisy cloud is projected on.

    ``radius`` and ``neighbours`` are one kernel for every point, or arrays of shape (n,) giving each
    point its own (:func:`local_kernels`); each pass is one MLS fit (``iters=1``) per point.
    """
    S = np.ascontiguousarray(X, dtype=np.float64)
    radius, neighbours = np.broadcast_to(radius, S.shape[:1]), np.broadcast_to(neighbours, S.shape[:1])
    for _ in range(passes):
        out = S.copy()
        for h, k in sorted(set(zip(radius.tolist(), neighbours.tolist()))):
            m = (radius == h) & (neighbours == k)
            out[m] = mls_project(S[m], S, h, neighbours=int(k), iters=NOISY_ITERS)
        S = out
    return S


def local_kernels(X, *, spacing: float | None = None, kernels=NOISY_KERNELS, average: int = NOISY_AVERAGE):
    r"""Each point's MLS kernel for a noisy cloud: least leave-one-out residual *around* it.

    For every point :math:`x_i` and candidate kernel :math:`(h, k)`, the
    held-out residual :math:`e_i(h) = \|x_i - \pi_{h}^{-i}(x_i)\|^2` (the
    projection on the MLS fit of its neighbours without :math:`x_i`, as in
    :func:`estimate_noise`); the point takes the kernel minimising the mean of
    :math:`e_j(h)` over its ``average`` nearest points.  The held-out residual
    is noise + the fit's variance + its bias², so a smooth part takes a wide
    kernel (more points averaged) and a detailed one (ears, a nose) a narrow
    one — where :func:`choose_kernel` makes one trade for the whole shape.
    Measured (benchmarks/scans.py noise, 0.3 δ noise, 2,000 points): output
    distance 0.77 → 0.73 of the input's on the bunny, 0.90 → 0.79 on the cow,
    1.00 → 0.89 on Suzanne.

    Returns
    -------
    (radius, neighbours) : arrays of shape (n,), float and int
        Kernel width (in X's units) and neighbour count of each point.
    """
    from scipy.spatial import cKDTree

    from ..metrics.surface import mean_spacing

    X = check_points(X, name="surface points", dim=3, min_points=7)
    delta = mean_spacing(X) if spacing is None else check_positive(spacing, "spacing")
    average = min(check_int(average, "average", low=1), X.shape[0])
    tree = cKDTree(X)
    errors = np.empty((X.shape[0], len(kernels)))
    for j, (hf, k) in enumerate(kernels):
        k = min(int(k) + 1, X.shape[0])
        for s in range(0, X.shape[0], _MLS_BLOCK):
            q = X[s : s + _MLS_BLOCK]
            d, idx = tree.query(q, k=k, workers=-1)
            P, _ = _mls_once(q, X, idx[:, 1:], d[:, 1:] ** 2, hf * delta)
            errors[s : s + _MLS_BLOCK, j] = np.sum((P - q) ** 2, axis=1)
    _, nb = tree.query(X, k=average, workers=-1)
    choice = np.argmin(errors[nb.reshape(X.shape[0], -1)].mean(axis=1), axis=1)
    table = np.array(kernels, dtype=np.float64)
    return table[choice, 0] * delta, table[choice, 1].astype(np.int64)


def trusted(P, residual, model, n: int, index=None) -> np.ndarray:
    """Indices (sorted) of the n most trusted MLS-projected points.

    Dropped first: points farther than ``FAR`` spacings from every training
    point of ``model`` (off the end of a tip, in no sample's neighbourhood);
    then those with the largest fit residual.

    Parameters
    ----------
    P : array of shape (m, 3)
        Projected points.
    residual : array of shape (m,)
        Their fit residuals (:func:`mls_project` with ``return_residual``).
    model : Model
        Fitted to the sparse points.
    n : int
        Points to keep, at most m.
    index : optional
        An exact index over the model's points to search instead of its own
        (``query(P, k)`` → squared distances, indices), e.g. :func:`mls_grid`'s.

    Returns
    -------
    keep : array of shape (n,), int, increasing
    """
    far = np.sqrt((model.index_ if index is None else index).query(P, 1)[0][:, 0]) / model.spacing_
    score = residual / model.spacing_ + 10.0 * np.maximum(far - FAR, 0.0)
    return np.sort(np.argsort(score, kind="stable")[:n])


def tweedie_step(Z, model, t: float, *, neighbours: int = 16, random_state=None):
    r"""One posterior-mean step :math:`z \leftarrow b_t(z)` on the model's training points.

    Parameters
    ----------
    Z : array of shape (m, d)
    model : Model
    t : float
        Noise level of the step.
    neighbours : int
        Nearest training points in each barycentre.

    Returns
    -------
    array of shape (m, d)
    """
    from ..score.smoothed import SmoothedScore
    from ..validation import check_random_state

    t = check_positive(t, "Tweedie noise level")
    score = SmoothedScore(model.X_, model.index_, sigma=0.0, M=1, K=neighbours, L=0)
    return score.barycentre(np.ascontiguousarray(Z, dtype=np.float64), t, check_random_state(random_state))


def densify(X, n: int | None = None, *, factor: float = FACTOR, denoise: str = "mls", random_state=None,
            t: float | None = None, sigma: float | None = None, steps: int | None = None,
            sampler: str = "mmsold", mls_radius: float | None = None, mls_neighbours: int = MLS_NEIGHBOURS,
            mls_iters: int = MLS_ITERS, reject: float | None = None, tweedie_t: float | None = None, anneal_t_end: float | None = None,
            anneal_steps: int = ANNEAL_STEPS, model=None, progress=None, noise="auto", even="auto",
            even_spacing: float | None = None, creases: bool = True, **sample_options) -> DensifyResult:
    """Fit a model to a sparse point cloud, sample N points, denoise them onto the surface.

    Parameters
    ----------
    X : array of shape (n_in, 3)
        The sparse surface points.
    n : int, optional
        Output points; default ``round(factor × n_in)``.
    factor : float
        Output points per input point when ``n`` is not given.
    denoise : {"mls", "tweedie", "anneal", "none"}
        The stage that puts the samples back on the surface (module docstring).
    random_state : int or None
    t, sigma, steps : optional
        Sampler noise level, smoothing and steps; defaults ``T_FACTOR × spacing``,
        ``SIGMA_FACTOR × t`` and ``STEPS`` (``ANNEAL_TOTAL_STEPS`` with ``denoise="anneal"``).
    sampler : {"mmsold", "sold", "cfdm"}
    mls_radius : float, optional
        MLS kernel width; default ``MLS_RADIUS × spacing``.
    mls_neighbours, mls_iters : int
    reject : float
        With MLS, draw ``n / (1 − reject)`` points and drop the share
        ``reject`` least trusted, keeping n: first points farther than
        ``FAR`` spacings from every input point, then those whose local
        quadratic fits the sparse points worst (largest residual: creases,
        thin parts).  0 keeps every point.  Default ``REJECT × min(1, n / (FACTOR × len(X)))`` (FACTOR = 20):
        0.08 at ×20, less for fewer new points per input point, where each dropped point leaves a
        larger hole (at ×4 on the PU-GAN protocol the 8 % left holes in thin parts: Chamfer 0.41 against
        0.31 ×10⁻³ with 2 %, on the bunny).
    tweedie_t : float, optional
        Tweedie step noise; default ``TWEEDIE_T × spacing``.
    anneal_t_end : float, optional
        Annealing's last noise level; default ``ANNEAL_T_END × spacing``.
    anneal_steps : int
        Steps of the annealing (at most ``steps``).
    model : Model, optional
        A model already fitted to X (skips the fit).
    progress : callable, optional
        Passed to :func:`mmsold_cli.sampling.sample`.
    noise : "auto", bool
        MLS only.  A noisy input (``"auto"``: :func:`estimate_noise` above
        ``NOISE_THRESHOLD`` spacings; ``True``: always) is denoised first:
        each point moved ``NOISY_PASSES`` times onto its own MLS surface with
        the kernel of :func:`local_kernels` (the one that predicts held-out
        points best around it: from 1.5 δ and 24 neighbours on detail to 4 δ
        and 96 on smooth parts); the denoised points are then densified as a
        clean input (a given ``model`` is refitted to them).  The input array
        itself is not changed.
    even : {"auto", True, False}
        Fill the input's sparse parts first (:func:`even_density`) so the
        output is about as dense everywhere, whatever the input's density
        (a given ``model`` is refitted).  The added points only guide the
        sampler; they are not in the output, and the samples are projected on
        the input's own MLS surface with kernels widened where it is sparse
        (:func:`local_spacing_project`).  ``"auto"`` (the default) does it when the input is uneven
        (:func:`uneven_share` above ``EVEN_AUTO_SHARE``; 3-D points only).
    even_spacing : float, optional
        The dense parts' spacing the even stage fills up to (default :func:`even_reference` of X); a tile of
        a larger cloud is given the whole cloud's, so that a sparsely scanned tile is filled too.
    creases : bool
        MLS only.  Re-project the points near a crease onto the side they belong to
        (:func:`crease_project`) instead of the one smooth surface that rounds the crease off.
    **sample_options
        Further options of :func:`mmsold_cli.sampling.sample` (M, K, P, eta, …).

    Returns
    -------
    DensifyResult
    """
    import functools

    from ..defaults import draw_count
    from ..metrics.surface import distinct_rows
    from ..model import fit_moments
    from ..samplers import schedules
    from ..sampling import sample

    if denoise not in DENOISERS:
        raise MmsoldError(f"denoise must be one of {', '.join(DENOISERS)}, got {denoise!r}")
    X = check_points(X, name="sparse points", min_points=7)
    if denoise == "mls" and X.shape[1] != 3:
        raise MmsoldError(f"MLS denoising projects on a surface in 3-D; got {X.shape[1]}-D points "
                          "(use denoise='tweedie' or 'none')")
    if n is None:
        factor = check_positive(factor, "factor")
        n = max(int(round(factor * X.shape[0])), 1)
    n = check_int(n, "number of output points n", low=1)
    # a repeated point says nothing more about the surface, and the spacings (hence every kernel) would read 0
    distinct = distinct_rows(X)
    noise_info = {"repeated": X.shape[0] - distinct.shape[0]} if distinct.shape[0] < X.shape[0] else {}
    if distinct.shape[0] < 7:
        raise MmsoldError(f"sparse points: at least 7 distinct points are needed, got {distinct.shape[0]}")
    X = distinct
    n_given = X.shape[0]
    if denoise == "mls" and noise is not False:
        if noise not in ("auto", True):
            raise MmsoldError(f"noise must be 'auto', True or False, got {noise!r}")
        from ..metrics.surface import mean_spacing

        delta0 = mean_spacing(X)
        if noise == "auto":
            noise_info["noise_estimate"] = estimate_noise(X, spacing=delta0)
        if noise is True or noise_info["noise_estimate"] > NOISE_THRESHOLD:
            # a noisy input: denoise it first (its own MLS surface, kernel chosen by held-out residual), then
            # densify the denoised points as a clean input — measured better than projecting the samples of
            # the noisy points on a smoothed support (bunny 0.77 against 1.05 of the input's distance)
            # each point with its own kernel (local_kernels): measured better than one kernel for the whole
            # cloud (choose_kernel, two passes: bunny 0.77, cow 0.90, Suzanne 1.00 of the input's distance;
            # per point, one pass: 0.73, 0.79, 0.89)
            radii, kns = local_kernels(X, spacing=delta0)
            X = smooth_support(X, radii, neighbours=kns, passes=NOISY_PASSES)
            model = None
            noise_info.update(noisy=True, noise_kernel=float(np.median(radii)) / delta0,
                              noise_neighbours=int(np.median(kns)))
        else:
            noise_info["noisy"] = False
    # the even stage's points shape the sampler's density only: the surface stays the measured points'
    surface = None
    even = even_choice(even)
    if even is True and X.shape[1] != 3:
        raise MmsoldError(f"even density works on 3-D surface points, got {X.shape[1]}-D")
    if even_spacing is not None:
        even_spacing = check_positive(even_spacing, "even_spacing")
    surface_s = None  # the measured points' local spacings: the auto rule, the fill and the projection read them
    if even is not False and X.shape[1] == 3:
        surface_s = local_spacing(X)
        even_spacing = spacing_reference(surface_s) if even_spacing is None else even_spacing
    if even == "auto" and X.shape[1] == 3:
        noise_info["even_share"] = uneven_share(surface_s, even_spacing)
        even = noise_info["even_share"] > EVEN_AUTO_SHARE
    noise_info["even"] = even = even is True
    if even:
        n_in = X.shape[0]
        surface = X
        X = even_density(X, reference=even_spacing, spacings=surface_s,
                         random_state=random_state if isinstance(random_state, int) else 0)
        model = None
        noise_info.update(even_added=int(X.shape[0] - n_in), even_spacing=even_spacing)
    if model is None:
        model = fit_moments(X, name="sparse points")
    spacing = model.spacing_
    sigma_given = sigma is not None
    t = T_FACTOR * spacing if t is None else check_positive(t, "noise t")
    sigma = SIGMA_FACTOR * t if sigma is None else check_positive(sigma, "smoothing sigma", allow_zero=True)
    if steps is None:
        steps = ANNEAL_TOTAL_STEPS if denoise == "anneal" else STEPS
    steps = check_int(steps, "steps", low=1)
    if reject is None:
        reject = REJECT * min(1.0, n / (FACTOR * n_given))
    reject = check_positive(reject, "reject", allow_zero=True)
    if reject >= 1:
        raise MmsoldError(f"reject must be in [0, 1), got {reject!r}")
    n_draw = int(np.ceil(n / (1.0 - reject))) if denoise == "mls" else n
    # too few for an ensemble: the first n of one (projected on the surface, they need not hold the moments)
    n_draw = draw_count(n_draw, X.shape[1], sampler, what=None)
    radius = MLS_RADIUS * spacing if mls_radius is None else check_positive(mls_radius, "mls_radius")
    mls_neighbours = check_int(mls_neighbours, "MLS neighbours", low=6)
    mls_iters = check_int(mls_iters, "MLS iterations", low=1)
    td = TWEEDIE_T * spacing if tweedie_t is None else check_positive(tweedie_t, "tweedie_t")
    if sampler == "cfdm":  # no noise level t; its own smoothing unless one is given
        t, sigma = None, sigma if sigma_given else None
    schedule = None
    settings = dict(n=n, denoise=denoise, sampler=sampler, spacing=spacing, t=t, sigma=sigma, steps=steps,
                    **noise_info)
    if denoise == "anneal":
        t_end = ANNEAL_T_END * spacing if anneal_t_end is None else check_positive(anneal_t_end, "anneal_t_end")
        anneal_steps = check_int(anneal_steps, "anneal_steps", low=1)
        schedule = functools.partial(schedules.anneal, t_end=t_end, n_anneal=min(anneal_steps, steps))
        settings.update(anneal_t_end=t_end, anneal_steps=min(anneal_steps, steps))
    t0 = time.perf_counter()
    res = sample(model, n_draw, random_state=random_state, progress=progress, schedule=schedule, sampler=sampler,
                 t=t, sigma=sigma, steps=steps, **sample_options)
    t1 = time.perf_counter()
    settings.update(t=res.settings.get("t"), sigma=res.settings.get("sigma"))
    Z = res.samples if denoise == "mls" else res.samples[:n]  # MLS keeps the n most trusted
    support = model.X_ if surface is None else surface
    if denoise == "mls":
        grid = mls_grid(support, radius, mls_neighbours) if len(Z) >= MLS_NUMBA_POINTS else None
        if surface is None:
            out, resid = mls_project(Z, support, radius, neighbours=mls_neighbours, iters=mls_iters,
                                     return_residual=True, grid=grid)
        else:
            out, resid, width = local_spacing_project(Z, support, radius, neighbours=mls_neighbours,
                                                      iters=mls_iters, reference=even_spacing, spacings=surface_s)
        n_crease = 0
        if creases:
            out, resid, crease = crease_project(out, support, radius, resid, spacing=spacing,
                                                neighbours=mls_neighbours, index=grid)
            n_crease = int(crease.sum())
        if surface is not None:
            # wider fits have larger residuals everywhere: ranked raw, the sparse parts lost most points, so
            # each width's residuals are scaled to the same median
            resid, mid = resid.copy(), float(np.median(resid))
            for w in np.unique(width):
                resid[width == w] *= mid / max(float(np.median(resid[width == w])), np.finfo(float).tiny)
        keep = trusted(out, resid, model, n, index=grid if surface is None else None)
        out, Z = out[keep], Z[keep]
        settings.update(mls_radius=radius, mls_neighbours=mls_neighbours, mls_iters=mls_iters, reject=reject,
                        drawn=n_draw, creases=bool(creases))
    elif denoise == "tweedie":
        out = tweedie_step(Z, model, td, random_state=random_state)
        settings["tweedie_t"] = td
    else:
        out = Z
    t2 = time.perf_counter()
    settings.update({k: v for k, v in res.settings.items() if k not in settings})
    diagnostics = dict(sample_time=t1 - t0, denoise_time=t2 - t1, crease_points=n_crease if denoise == "mls" else 0,
                       mean_move=float(np.linalg.norm(out - Z, axis=1).mean() / spacing), sampler=res.diagnostics)
    return DensifyResult(out, settings, diagnostics, support)


def local_spacing_project(Z, X, radius: float, *, levels=EVEN_LEVELS, neighbours: int = MLS_NEIGHBOURS,
                          iters: int = MLS_ITERS, reference: float | None = None, spacings=None):
    r"""MLS projection on X with a kernel widened where X is sparse: the projection after the even stage.

    Each point z takes the kernel :math:`h\,\ell` with :math:`\ell` the largest of ``levels`` at most
    :math:`s_{i(z)}/s_\text{ref}`: :math:`s_i` is the mean distance from :math:`x_i` to its 6 nearest
    neighbours, :math:`i(z)` the nearest point of X, :math:`s_\text{ref}` the ``reference`` spacing (as in
    :func:`even_density`; default :func:`even_reference` of X), to which ``radius`` belongs.  One kernel fits
    the dense parts, but in a part sampled k times more sparsely it holds a k-th of the points and the
    quadratic fit wanders between them.  On the bunny with an 8:1 density step (``benchmarks/scans.py
    uneven``) the sparse half's output went from 0.32 to 0.25 δ from the surface, where uniform surface
    points projected the same way land 0.27 δ off.

    ``spacings``: :func:`local_spacing` of X when the caller has it.

    Returns (Z_proj, residual, width): the first two as :func:`mls_project` with ``return_residual``, and
    each point's ℓ.
    """
    from scipy.spatial import cKDTree

    levels = np.sort(np.asarray(levels, dtype=np.float64))
    tree = cKDTree(X)
    s = local_spacing(X, tree=tree) if spacings is None else spacings
    ref = spacing_reference(s) if reference is None else reference
    ratio = s[tree.query(Z, k=1, workers=-1)[1]] / ref
    cls = np.clip(np.searchsorted(levels, ratio, side="right") - 1, 0, levels.size - 1)
    out, res = np.empty_like(Z), np.empty(len(Z))
    for c in np.unique(cls):
        m = cls == c
        out[m], res[m] = mls_project(Z[m], X, radius * levels[c], neighbours=neighbours, iters=iters,
                                     return_residual=True, tree=tree)
    return out, res, levels[cls]


def project_on_support(X, res: DensifyResult) -> np.ndarray:
    """Input points moved onto the MLS surface the new points were projected on (``--project-input``).

    The surface is that of ``res.support``: for a noisy input its denoised points, so the input points
    lose their noise too; the kernel is the one the samples were projected with.
    """
    S = res.support if res.support is not None else X
    radius = res.settings.get("mls_radius") or MLS_RADIUS * res.settings["spacing"]
    return mls_project(X, S, radius, neighbours=res.settings.get("mls_neighbours", MLS_NEIGHBOURS))


def densify_cloud(cloud, n: int | None = None, *, factor: float = FACTOR, random_state=None, normals: bool = False,
                  drop_attributes=(), keep_input: bool = False, project_input: bool = False,
                  tile_points: int | None = None, halo: float | None = None, progress=None, tile_progress=None,
                  client=None, sink=None, **options):
    """Densify a :class:`~mmsold_cli.io.cloud.PointCloud`, carrying its attributes onto the new points.

    Parameters
    ----------
    cloud : PointCloud or array of shape (n_in, 3)
        Positions and per-point attributes (LAS dimensions, PLY properties);
        an array is a cloud of positions only.
    n : int, optional
        New points; default ``round(factor × len(cloud))``.  With tiles the
        count is ``Σ round(factor × core points)`` (``n`` sets the factor), or with
        ``even=True`` exactly ``round(factor × len(cloud))``, shared by area
        (:func:`mmsold_cli.workflows.tiles.even_plan`).
    factor : float
    random_state : int or None
        With tiles each tile's seed derives from it and the tile index
        (:func:`mmsold_cli.workflows.tiles.tile_seed`); None draws a run seed,
        reported as ``diagnostics["seed"]``.
    normals : bool, "up" or a position (x, y, z)
        Add oriented normals ``nx, ny, nz`` (:mod:`mmsold_cli.workflows.normals`), pointing out (True), up, or
        towards a scanner position (:func:`~mmsold_cli.workflows.normals.orientation`)
        to the new points (and to the input points with ``keep_input``).
    drop_attributes : iterable of str or True
        Attributes left out of the output (True: all of them).
    keep_input : bool
        Output the input points first, then the new ones.
    project_input : bool
        Output the input points first (implies ``keep_input``), moved onto the MLS surface the
        new points were projected on (:func:`project_on_support`: after the
        noise stage, the denoised one; with tiles, each tile's); otherwise
        they are kept exactly as read.
    tile_points : int, optional
        Process in tiles of at most this many input points
        (:mod:`mmsold_cli.workflows.tiles`) when the cloud is larger; default
        :func:`mmsold_cli.workflows.tiles.auto_tile_points` (``TILE_POINTS``, fewer
        when a tile that large would not fit in the available memory).  0 never tiles.
    halo : float, optional
        Tile halo in spacings (default :data:`mmsold_cli.workflows.tiles.HALO`).
    progress : callable, optional
        ``progress(done, total, step, steps)`` of the sampler (with tiles:
        ``done``/``total`` count tiles).
    tile_progress : callable, optional
        ``tile_progress(done, total)`` after each tile.
    client : distributed.Client, optional
        Run the tiles as tasks on this Dask cluster
        (:func:`mmsold_cli.distributed.densify_distributed`): the same bytes as here for the same seed
        (one is drawn and reported when None); ``tile_progress(done, total)`` counts tiles, ``progress``
        is not called.
    sink : callable, optional
        Hand the output over in parts instead of returning it:
        ``sink(n_points)`` is called once, when the output's size is known,
        and returns a function that takes the parts (PointClouds) in output
        order — with tiles, one per tile as it is made, so the output is
        never held whole (e.g. :class:`mmsold_cli.io.cloud.CloudWriter`'s
        ``write``).  Tiled runs with ``project_input`` hold the new points
        until the last tile, since the moved input points come first.
    **options
        Passed to :func:`densify`.

    Returns
    -------
    (PointCloud or None, dict)
        The output cloud (input metadata kept, so it writes back in the
        input's format; None with ``sink``) and diagnostics (``tiles``:
        per-tile info, or the untiled densify settings and diagnostics).
    """
    from scipy.spatial import cKDTree

    from ..io.cloud import PointCloud, concat_clouds
    from . import tiles as tl
    from .attributes import transfer_attributes
    from .normals import estimate_normals, normals_for, orient_normals, orientation, scan_viewpoints

    given = isinstance(cloud, PointCloud)
    X = check_points(cloud.positions if given else cloud, name="input points", dim=3, min_points=7)
    if not given:  # an array: a cloud of positions only
        cloud = PointCloud(X)
    keep_input = bool(keep_input or project_input)
    if normals is not None and normals is not False:
        normals = orientation(normals)  # one form from here on: "mst", "up", "scanner" or a tuple
    scanners = None
    if normals == "scanner":  # the input's normals turned to their scanners; new points take their neighbour's side
        scanners, normals = scan_viewpoints(cloud), "mst"
    orient = normals or None

    def toward_scanners(NX):
        return NX if scanners is None or NX is None else orient_normals(X, NX, orient=scanners)

    if drop_attributes is True:
        drop_attributes = tuple(cloud.attributes)
    drop = tuple(drop_attributes)
    unknown = [d for d in drop if d not in cloud.attributes]
    if unknown:
        raise MmsoldError(f"cannot drop {', '.join(map(repr, unknown))}: the input's attributes are "
                          f"{', '.join(cloud.attributes) or 'none'}")
    if n is not None:
        factor = check_int(n, "number of output points n", low=1) / X.shape[0]
    factor = check_positive(factor, "factor")
    tile_points = tl.auto_tile_points(factor) if tile_points is None else check_int(tile_points, "tile_points", low=0)
    halo = tl.HALO if halo is None else check_positive(halo, "halo")
    diag: dict = {}
    tree = projected = None
    if client is not None and project_input:
        raise MmsoldError("project_input is not available with a Dask client: the tiles' surfaces stay on the workers")
    if tile_points and X.shape[0] > tile_points and client is None:
        if random_state is None:  # every tile's seed derives from one run seed: draw it, and report it
            random_state = int(np.random.SeedSequence().generate_state(1)[0])
        tl.tile_seed(random_state, 0)
        diag.update(seed=random_state, tile_points=tile_points, halo=halo)
        tiles = tl.plan_tiles(X, tile_points)
        projected = np.empty_like(X) if keep_input and project_input else None
        # even density: tiles share the new points by surface area, not by input points
        plan, even_info = tl.decide_even(X, tiles, factor, options.pop("even", "auto"), halo=halo)
        diag.update(even_info)
        # normals: the whole cloud's, oriented across tiles, so every tile's point the same way
        NX = toward_scanners(tl.oriented_normals(X, tiles, halo=halo, orient=orient) if normals else None)
        parts = tl.iter_tiles(cloud, tiles, factor=factor, seed=random_state, halo=halo, normals=normals,
                              drop_attributes=drop, progress=progress, tile_progress=tile_progress,
                              projected=projected, plan=plan, input_normals=NX, **options)
        diag["tiles"] = infos = []
        n_new = sum(tl.tile_counts(tiles, factor, plan))
        if projected is not None:  # the moved input points come first and are known after the last tile
            parts = list(parts)
        put, kept = _output_parts(sink, n_new + (X.shape[0] if keep_input else 0))
        if keep_input:
            put = _after_input(put, _input_part(cloud, X, projected, drop, normals, tree, NX))
        for part, info in parts:
            infos.append(info)
            put(part)
        return (None if kept is None else concat_clouds(kept)), diag
    if client is not None:
        from ..distributed.densify import densify_distributed, layout

        if random_state is None:
            random_state = int(np.random.SeedSequence().generate_state(1)[0])
        tp = tile_points if tile_points else max(X.shape[0], 100)
        work = layout(X, factor, tile_points=tp, halo=halo, even=options.get("even", "auto"))
        # the tiles' points go out as they come back, in order: the client never holds the whole output
        put, kept = _output_parts(sink, int(work.offsets[-1]) + (X.shape[0] if keep_input else 0))
        NX = tl.oriented_normals(X, work.tiles, halo=halo, orient=orient) if normals and not work.whole else None
        if keep_input and normals and NX is None:  # untiled: the one task estimates them again, as here
            NX = estimate_normals(X, orient=orient)
        NX = toward_scanners(NX)
        if keep_input:
            put = _after_input(put, _input_part(cloud, X, None, drop, normals, None, NX))
        # one untiled task runs this function on the whole cloud: it turns the normals to the scanners itself
        _, dd = densify_distributed(cloud, client=client, factor=factor, seed=random_state, tile_points=tp, halo=halo,
                                    normals="scanner" if scanners is not None and work.whole else normals,
                                    drop_attributes=drop, progress=tile_progress, work=work, put=put,
                                    input_normals=NX, **options)
        if work.whole:  # reported as the same run on one machine is: settings and diagnostics, no tiles
            dd.pop("tiles")
        diag.update(dd)
        return (None if kept is None else concat_clouds(kept)), diag
    res = densify(X, max(int(round(factor * X.shape[0])), 1), random_state=random_state, progress=progress,
                  **options)
    tree = cKDTree(X)
    attrs = transfer_attributes(cloud.attributes, X, res.points, spacing=res.settings["spacing"], tree=tree,
                                drop=drop)
    NX = None
    if normals:
        NX = toward_scanners(estimate_normals(X, tree=tree, orient=orient))
        attrs.update(dict(zip(("nx", "ny", "nz"), normals_for(res.points, X, NX, tree=tree, orient=orient).T)))
    out = type(cloud)(res.points, attrs, cloud.fmt, cloud.meta)
    diag.update(settings=res.settings, diagnostics=res.diagnostics)
    if keep_input and project_input:
        projected = project_on_support(X, res)
    put, kept = _output_parts(sink, len(out) + (X.shape[0] if keep_input else 0))
    if keep_input:
        put = _after_input(put, _input_part(cloud, X, projected, drop, normals, tree, NX))
    put(out)
    return (None if kept is None else concat_clouds(kept)), diag


def _output_parts(sink, n: int):
    """``(put, kept)``: where :func:`densify_cloud` sends its parts; ``kept`` gathers them when there is no sink."""
    if sink is not None:
        return sink(n), None
    kept: list = []
    return kept.append, kept


def _after_input(put, first):
    """Send the input part, and return a ``put`` that gives the new points' attributes the input's types."""
    put(first)
    types = {k: np.asarray(v).dtype for k, v in first.attributes.items()}

    def put_new(part):
        put(type(part)(part.positions, {k: np.asarray(part.attributes[k]).astype(t) for k, t in types.items()},
                       part.fmt, part.meta))
    return put_new


def _input_part(cloud, X, projected, drop, normals, tree, NX=None):
    """The input points as the output's first part: moved when ``projected`` is given, normals when asked
    (``NX``, or estimated here)."""
    from .normals import estimate_normals

    attrs = {k: np.asarray(v) for k, v in cloud.attributes.items() if k not in drop}
    if normals:
        if NX is None:
            from .normals import orientation

            NX = estimate_normals(X, tree=tree, orient=orientation(normals))
        attrs.update(dict(zip(("nx", "ny", "nz"), NX.T)))
    return type(cloud)(X if projected is None else projected, attrs, cloud.fmt, cloud.meta)
