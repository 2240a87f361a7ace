import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from mmsold_cli import metrics


def test_w2_exact_matches_permutation_search(rng):
    A, B = rng.standard_normal((6, 2)), rng.standard_normal((6, 2)) + 1
    C = ((A[:, None] - B[None]) ** 2).sum(-1)
    best = min(C[np.arange(6), list(p)].mean() for p in itertools.permutations(range(6)))
    assert metrics.w2_exact(A, B) == pytest.approx(np.sqrt(best), rel=1e-12)


def test_w2_unequal_sizes_by_duplication(rng):
    """W2 with 3 vs 6 points equals W2 with each of the 3 doubled (uniform weights)."""
    A, B = rng.standard_normal((3, 2)), rng.standard_normal((6, 2))
    assert metrics.w2_exact(A, B) == pytest.approx(metrics.w2_exact(np.repeat(A, 2, 0), B), rel=1e-9)


def test_quantile_kernel_agrees_with_its_numpy_reference(rng):
    from mmsold_cli.metrics.sliced_numba import quantile_sq as kernel

    for m, n in ((1, 1), (3, 6), (7, 5), (500, 500), (1000, 333), (4096, 10_000)):
        pa = np.sort(rng.standard_normal((5, m)), axis=1)
        pb = np.sort(1.3 * rng.standard_normal((5, n)) + 0.1, axis=1)
        np.testing.assert_allclose(kernel(pa, pb), metrics.quantile_sq(pa, pb), rtol=1e-12)
    # ties and repeated values: the integral of a sample against itself is 0, against a shift its square
    a = np.sort(np.repeat(rng.standard_normal((2, 50)), 3, axis=1), axis=1)
    np.testing.assert_array_equal(kernel(a, a), 0.0)
    np.testing.assert_allclose(kernel(a, a + 0.25), 0.0625, rtol=1e-12)


def test_sliced_w2_of_large_sets_goes_in_blocks_of_directions(rng):
    """2²² values a block: 170,000 points take 64 directions in three; the figure is that of all at once."""
    na, nb = 100_000, 70_000
    a, b = rng.standard_normal((na, 3)), 1.1 * rng.standard_normal((nb, 3)) + 0.05
    theta = np.random.default_rng(7).standard_normal((3, 64))
    theta /= np.linalg.norm(theta, axis=0)
    pa, pb = np.sort(a @ theta, axis=0), np.sort(b @ theta, axis=0)
    qs = np.unique(np.r_[np.arange(na) / na, np.arange(nb) / nb, 1.0])
    assert (1 << 22) // (len(qs) - 1) < 32  # more than one block
    mid = 0.5 * (qs[:-1] + qs[1:])
    sq = ((pa[(mid * na).astype(int)] - pb[(mid * nb).astype(int)]) ** 2 * np.diff(qs)[:, None]).sum(axis=0)
    assert metrics.sliced_w2(a, b, n_projections=64, random_state=7) == pytest.approx(np.sqrt(sq.mean()), rel=1e-12)


def test_sliced_w2_in_1d_is_exact(rng):
    a, b = rng.standard_normal((500, 1)), rng.standard_normal((500, 1)) * 2
    assert metrics.sliced_w2(a, b, n_projections=4) == pytest.approx(metrics.w2_exact(a, b), rel=1e-9)
    # unequal sizes
    c = rng.standard_normal((250, 1))
    assert metrics.sliced_w2(c, b, n_projections=2) == pytest.approx(metrics.w2_exact(c, b), rel=1e-6)


def test_mmd_unbiased_formula(rng):
    A, B = rng.standard_normal((40, 3)), rng.standard_normal((50, 3)) + 0.5
    h = 1.3
    k = lambda x, y: np.exp(-((x - y) ** 2).sum() / (2 * h * h))  # noqa: E731
    aa = sum(k(A[i], A[j]) for i in range(40) for j in range(40) if i != j) / (40 * 39)
    bb = sum(k(B[i], B[j]) for i in range(50) for j in range(50) if i != j) / (50 * 49)
    ab = sum(k(a, b) for a in A for b in B) / (40 * 50)
    assert metrics.mmd2_rbf(A, B, bandwidth=h) == pytest.approx(aa + bb - 2 * ab, rel=1e-10)


def test_precision_recall_brute(rng):
    A, B = rng.standard_normal((200, 2)), rng.standard_normal((150, 2)) * 1.5
    def ref(Q, C, k=3):
        D = np.sqrt(((C[:, None] - C[None]) ** 2).sum(-1))
        r = np.sort(D, 1)[:, k]
        E = np.sqrt(((Q[:, None] - C[None]) ** 2).sum(-1))
        return (E <= r[None]).any(1).mean()
    p, r = metrics.precision_recall(A, B)
    assert p == pytest.approx(ref(A, B)) and r == pytest.approx(ref(B, A))
    assert 0 < p < 1 and 0 < r < 1


def test_memorisation_brute(rng):
    X = rng.standard_normal((300, 2))
    S = np.concatenate([X[:50] + 1e-4, rng.standard_normal((150, 2))])
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    nn = D.min(1)
    E = np.sqrt(((S[:, None] - X[None]) ** 2).sum(-1))
    ref = (E < nn[None] / 3).any(1).mean()
    assert metrics.memorisation_fraction(S, X) == pytest.approx(ref)
    assert ref >= 50 / 200


def test_moment_errors(rng):
    B = rng.standard_normal((1000, 2)) * [2, 1]
    C = np.cov(B.T, bias=True)
    shift = np.array([2.0, 0.0])
    assert metrics.mean_error(B + shift, B) == pytest.approx(np.sqrt(shift @ np.linalg.solve(C, shift)), rel=1e-9)
    assert 0.9 < metrics.mean_error(B + shift, B) < 1.1
    assert metrics.cov_error(B * np.sqrt(2), B) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("m, n, d", [(30, 40, 100), (12, 10, 300), (3, 5, 9), (50, 50, 2000)])
def test_moment_errors_of_wide_sets_from_the_points_products(rng, m, n, d):
    """More dimensions than points: the errors come from the points' products, never a d × d matrix, and equal
    the d × d formulas (the oracles here): the covariances' Frobenius error, and the mean's Mahalanobis
    distance under Ledoit and Wolf's shrunk covariance (scikit-learn's), where the pseudo-inverse of the
    singular sample covariance read two N(0, I) sets of 50 points in 5,000-D 0.136 apart instead of about 14."""
    sklearn_covariance = pytest.importorskip("sklearn.covariance")
    from mmsold_cli.metrics.points import _wide

    A = rng.standard_normal((m, d)) * np.linspace(1, 3, d) + 0.3
    B = rng.standard_normal((n, d)) * np.linspace(1, 2, d)
    assert _wide(A, B)
    ca, cb = np.cov(A.T, bias=True), np.cov(B.T, bias=True)
    diff = A.mean(axis=0) - B.mean(axis=0)
    assert metrics.cov_error(A, B) == pytest.approx(np.linalg.norm(ca - cb) / np.linalg.norm(cb), rel=1e-10)
    shrunk = sklearn_covariance.ledoit_wolf(B)[0]
    assert metrics.mean_error(A, B) == pytest.approx(np.sqrt(diff @ np.linalg.solve(shrunk, diff)), rel=1e-8)
    assert metrics.cov_error(B, B) == pytest.approx(0.0, abs=1e-7)
    if d == 2000:  # two samples of N(0, I): their means differ by about √(2d/n) = 8.9 deviations
        assert 7 < metrics.mean_error(rng.standard_normal((m, d)), rng.standard_normal((n, d))) < 11


def test_mean_error_off_a_degenerate_reference_is_infinite(rng):
    """A planar reference (n > d, no spread along z): a sample set 10 units above it was 0 deviations away by
    the pseudo-inverse; it is infinitely many.  On the plane, and far from the origin, the figure is finite."""
    P = np.c_[rng.random((500, 2)), np.zeros(500)]
    assert metrics.mean_error(P + [0, 0, 10], P) == np.inf
    Q = np.c_[rng.random((400, 2)), np.zeros(400)] + [0.05, 0, 0]
    assert 0 < metrics.mean_error(Q, P) < 0.5
    far = [4e6, 3e5, 120.0]  # projected coordinates: the means' rounding is not a shift off the plane
    assert 0 < metrics.mean_error(Q * 100 + far, P * 100 + far) < 0.5


def test_density_coverage_and_duplicate_rate():
    from mmsold_cli.metrics.points import density_coverage, duplicate_rate

    rng = np.random.default_rng(3)
    ref = rng.standard_normal((2000, 2))
    same = rng.standard_normal((2000, 2))
    d, c = density_coverage(same, ref, k=5)
    assert 0.85 < d < 1.15 and c > 0.95  # a fresh draw of the same law: density ≈ 1, coverage ≈ 1
    half = same[same[:, 0] > 0]  # only one half of the law: coverage about one half, density kept
    d2, c2 = density_coverage(half, ref, k=5)
    assert 0.4 < c2 < 0.6 and d2 > 0.8
    far = same + 10.0
    assert density_coverage(far, ref, k=5) == (0.0, 0.0)
    train = rng.standard_normal((1000, 2))
    copies = train[:400] + 1e-9
    assert duplicate_rate(copies, train, p=5) == 1.0
    assert duplicate_rate(rng.standard_normal((2000, 2)), train, p=5) < 0.1


def test_duplicate_rate_from_a_models_graph_equals_a_fresh_query():
    """With a model, DupRate takes the training points' nearest distances from the stored graph (a query per
    training point took 70 s on 10⁶ points): the same figure as querying them afresh."""
    from mmsold_cli import fit_moments
    from mmsold_cli.metrics.points import duplicate_rate, evaluate

    rng = np.random.default_rng(5)
    train = rng.standard_normal((3000, 6))
    model = fit_moments(train)
    S = np.vstack([train[:100] + 1e-6, rng.standard_normal((400, 6))])
    with_model = evaluate(S, rng.standard_normal((500, 6)), model=model)["dup_rate"]
    assert with_model == duplicate_rate(S, train)
    assert 0.2 <= with_model < 0.3, with_model  # the 100 copies, and a few fresh points as close


def test_evaluate_reads_a_las_scan_and_its_figures_do_not_move_with_the_origin(tmp_path):
    """`mmsold evaluate` refused .las/.laz/.e57 (so a densified scan could not be evaluated as written), and KID,
    unlike every other figure, depended on where the cloud sits: 4·10⁶ m from the origin, as scans in projected
    coordinates are, its polynomial kernel's terms cancelled in rounding and it read 1.5e23."""
    laspy = pytest.importorskip("laspy")
    from mmsold_cli.io.arrays import read_points
    from mmsold_cli.metrics.points import evaluate

    rng = np.random.default_rng(2)
    S, R = rng.uniform(0, 20, (1500, 3)), rng.uniform(0, 20, (1200, 3))
    off = np.array([512345.0, 4123456.0, 250.0])
    h = laspy.LasHeader(point_format=3, version="1.2")
    h.offsets, h.scales = off, np.full(3, 1e-4)
    las = laspy.LasData(h)
    las.x, las.y, las.z = (R + off).T
    las.write(tmp_path / "ref.las")
    R_read = read_points(tmp_path / "ref.las")
    assert R_read.shape == (1200, 3) and np.abs(R_read - off - R).max() <= 5e-5  # the file's 0.1 mm grid
    here, far = evaluate(S, R_read - off), evaluate(S + off, R_read)
    assert abs(far["kid"] - here["kid"]) <= 1e-6 * abs(here["kid"]) + 1e-9
    for key in ("precision", "recall", "coverage", "mean_error", "cov_error"):
        assert far[key] == pytest.approx(here[key], rel=1e-6, abs=1e-9), key
    r = subprocess.run([sys.executable, "-m", "mmsold_cli.cli", "evaluate", str(tmp_path / "ref.las"),
                        str(tmp_path / "ref.las"), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)  # the scan against itself, read through the CLI
    assert res["n_samples"] == res["n_reference"] == 1200 and res["chamfer"] == 0 and res["hausdorff"] == 0
    assert res["precision"] == res["recall"] == 1 and res["mean_error"] == 0


def test_repeats_average_the_seeded_figures_and_compute_the_others_once(tmp_path, rng):
    """`evaluate --repeats R`: the figures that depend on the seed are the mean (and sd) of full runs with seeds
    seed … seed + R − 1; the others appear once, without an sd (an sd of 0 would read as a measured spread)."""
    from pathlib import Path

    from mmsold_cli.io.mesh import read_mesh
    from mmsold_cli.jobs import evaluate_job
    from mmsold_cli.metrics.evaluate import evaluate_all

    data = Path(__file__).resolve().parents[1] / "sample_data"
    for samples, reference, train, mesh, seeded in (
        (rng.standard_normal((600, 2)), np.load(data / "moons_test.npy"), np.load(data / "moons_train.npy"), None,
         {"sliced_w2", "mmd2", "kid", "kid_std"}),
        (np.load(data / "torus_dense.npy")[:3000].astype(np.float64), np.load(data / "torus_dense.npy")[3000:6000],
         None, data / "torus.obj", {"sliced_w2", "mmd2", "kid", "kid_std", "surface_coverage"}),
        # 300 and 300: MMD²'s bandwidth pool and KID's subsets are the whole sets, so neither moves with the seed
        (rng.standard_normal((300, 2)), rng.standard_normal((300, 2)) + 0.2, None, None, {"sliced_w2"}),
    ):
        files = []
        for name, X in (("s", samples), ("r", reference), ("t", train)):
            if X is not None:
                np.save(tmp_path / f"{name}.npy", X)
            files.append(None if X is None else tmp_path / f"{name}.npy")
        res = evaluate_job(files[0], files[1], train=files[2], mesh=mesh, seed=4, repeats=3)
        assert res["repeats"] == 3 and {k[:-3] for k in res if k.endswith("_sd")} == seeded
        full = [evaluate_all(samples, reference, train=train, mesh=None if mesh is None else read_mesh(mesh),
                             random_state=s)[0] for s in (4, 5, 6)]
        for key in res:
            if key.endswith("_sd") or key == "repeats":
                continue
            vals = [f[key] for f in full]
            expected = np.mean(vals) if key in seeded else vals[0]
            assert res[key] == pytest.approx(expected, rel=1e-12, abs=1e-15), key
            if key in seeded:
                assert res[key + "_sd"] == pytest.approx(np.std(vals), rel=1e-9, abs=1e-15), key
            else:
                assert all(v == vals[0] for v in vals), key  # a figure without an sd does not move with the seed
        assert res["sliced_w2_sd"] > 0
