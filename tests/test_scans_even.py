"""Uneven input density (8:1 between two halves): the output covers the sparse half nearly as well as the dense one."""

import numpy as np
from scipy.spatial import cKDTree

from mmsold_cli.metrics.surface import mean_spacing
from mmsold_cli.workflows.densify import densify


def _height(x, y):
    return 0.3 * np.sin(2 * x) * np.cos(2 * y)


def _patch(rng, n, x0, x1):
    u = np.c_[rng.uniform(x0, x1, n), rng.uniform(0, 4, n)]
    return np.c_[u, _height(u[:, 0], u[:, 1])]


def test_even_density_fills_the_sparse_half():
    rng = np.random.default_rng(0)
    X = np.r_[_patch(rng, 1778, 0, 2), _patch(rng, 222, 2, 4)]  # 8:1
    delta = mean_spacing(X)
    ref = _patch(rng, 40000, 0, 4)
    inner = (ref[:, 1] > 0.3) & (ref[:, 1] < 3.7)
    dense = inner & (ref[:, 0] > 0.3) & (ref[:, 0] < 1.7)
    sparse = inner & (ref[:, 0] > 2.3) & (ref[:, 0] < 3.7)

    def cover(Z):  # share of uniform surface points with an output point within δ/2
        d = cKDTree(Z).query(ref, k=1)[0] <= 0.5 * delta
        return d[dense].mean(), d[sparse].mean()

    before = cover(densify(X, 40000, random_state=0).points)
    res = densify(X, 40000, random_state=0, even=True)
    dc, sc = cover(res.points)
    assert before[1] < 0.5  # the failure: measured 0.33 against 0.96
    assert sc >= 0.8 and sc >= 0.9 * dc, (dc, sc)  # measured 0.860 and 0.926 × 0.929
    assert res.settings["even_added"] > 1000 and len(res.points) == 40000
    # no worse on the surface: the added points were projected on the input's MLS surface
    d = np.abs(res.points[:, 2] - _height(res.points[:, 0], res.points[:, 1])) / delta
    assert d.mean() <= 0.1 and np.percentile(d, 95) <= 0.3


def test_local_spacing_projection_fits_the_sparse_half():
    """A sphere with 8:1 density between its halves: one MLS kernel sized for the dense half wanders between the
    sparse half's points; kernels widened by the local spacing follow the sphere there, and the dense half is
    projected as before."""
    from mmsold_cli.workflows.densify import local_spacing_project, mls_project

    rng = np.random.default_rng(0)

    def sphere(n):
        v = rng.standard_normal((n, 3))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    U = sphere(16000)
    X = np.r_[U[U[:, 2] <= 0][:1778], U[U[:, 2] > 0][:222]]
    delta = mean_spacing(X)
    Z = sphere(4000) + 0.5 * delta * rng.standard_normal((4000, 3))
    off = {}
    for name, P in (("one", mls_project(Z, X, 1.5 * delta)), ("local", local_spacing_project(Z, X, 1.5 * delta)[0])):
        d = np.abs(np.linalg.norm(P, axis=1) - 1) / delta
        off[name] = d[P[:, 2] > 2 * delta].mean(), d[P[:, 2] < -2 * delta].mean()
    # measured: sparse half 0.0825 δ with one kernel, 0.0059 δ with local ones; dense half 0.0001 δ both
    assert off["one"][0] > 0.05 and off["local"][0] < 0.2 * off["one"][0], off
    assert off["local"][1] <= 1.01 * off["one"][1] + 1e-4, off
