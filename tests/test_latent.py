"""The PCA latent space (fit, encode, decode, storage in the model file), KID, and the CLI around them."""

import json

import numpy as np
import pytest
from conftest import shared_data
from typer.testing import CliRunner

from mmsold_cli.cli import app
from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.points import kid
from mmsold_cli.model import Model, fit_moments
from mmsold_cli.workflows import latent


@pytest.fixture
def images(rng):
    """120 low-rank 'images' of 6×5 in uint8: 4 patterns mixed plus a little noise."""
    patterns = rng.random((4, 30))
    w = rng.random((120, 4))
    x = w @ patterns / 4 + 0.02 * rng.random((120, 30))
    return np.clip(np.rint(255 * x / x.max()), 0, 255).astype(np.uint8).reshape(120, 6, 5)


def test_pca_matches_svd(images):
    b = latent.fit_pca(images, 5)
    x = images.reshape(120, -1) / 255.0
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(b.explained_variance, s[:5] ** 2 / 120, rtol=1e-9)
    np.testing.assert_allclose(np.abs(b.components @ vt[:5].T), np.eye(5), atol=1e-8)
    # deterministic signs: the largest entry of each component is positive
    assert (b.components[np.arange(5), np.abs(b.components).argmax(axis=1)] > 0).all()
    assert b.shape == (6, 5) and b.scale == 255.0 and b.dtype == "uint8"
    np.testing.assert_allclose(b.components @ b.components.T, np.eye(5), atol=1e-12)


def test_encode_decode_round_trip(images):
    full = latent.fit_pca(images, 30)  # K = D: lossless up to rounding
    codes = latent.encode(images, full)
    np.testing.assert_array_equal(latent.decode(codes, full, as_input=True), images)
    back = latent.decode(codes, full)
    assert back.dtype == np.float32 and back.shape == (120, 6, 5)
    np.testing.assert_allclose(back, images / 255.0, atol=1e-5)
    small = latent.fit_pca(images, 2)
    c2 = latent.encode(images, small)
    np.testing.assert_allclose(c2.var(axis=0), small.explained_variance, rtol=1e-9)
    # decoding far outside the data is clipped to the training pixel range
    wild = latent.decode(np.full((1, 2), 1e3), small)
    assert wild.min() >= small.lo and wild.max() <= small.hi


def test_randomized_solver_above_4096_pixels(rng):
    # 70×60 = 4,200 pixels: the randomized range finder; rank-3 data, so it is exact
    basis_true = np.linalg.qr(rng.standard_normal((4200, 3)))[0]
    x = rng.standard_normal((60, 3)) * np.array([5.0, 2.0, 1.0]) @ basis_true.T
    b = latent.fit_pca(x.reshape(60, 70, 60), 3)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(np.abs(b.components @ vt[:3].T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(b.explained_variance, s[:3] ** 2 / 60, rtol=1e-8)


def test_basis_survives_the_model_file(images, tmp_path):
    b = latent.fit_pca(images, 4)
    codes = latent.encode(images, b)
    m = fit_moments(codes)
    m.extras_ = latent.to_extras(b)
    m.save(tmp_path / "m.h5")
    m2 = Model.load(tmp_path / "m.h5")
    assert latent.has_basis(m2)
    b2 = latent.from_extras(m2.extras_)
    for f in ("mean", "components", "explained_variance"):
        np.testing.assert_array_equal(getattr(b2, f), getattr(b, f))
    assert (b2.shape, b2.scale, b2.lo, b2.hi, b2.dtype) == (b.shape, b.scale, b.lo, b.hi, b.dtype)
    plain = fit_moments(codes)
    assert not latent.has_basis(plain)
    with pytest.raises(MmsoldError, match="no PCA basis"):
        latent.from_extras({})


def test_bad_images():
    with pytest.raises(MmsoldError, match=r"shape \(N, H, W\)"):
        latent.images_from_array(np.zeros((10, 4)))
    with pytest.raises(MmsoldError, match="at most|≤"):
        latent.fit_pca(np.zeros((5, 3, 3)), 5)
    with pytest.raises(MmsoldError, match="expected images of shape"):
        latent.encode(np.zeros((5, 3, 4)), latent.fit_pca(np.random.default_rng(0).random((5, 3, 3)), 2))


def _kid_slow(a, b):
    d = a.shape[1]

    def k(x, y):
        return (np.dot(x, y) / d + 1) ** 3

    m = len(a)
    saa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sbb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sab = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
    return saa + sbb - 2 * sab


def test_kid_against_slow_reference(rng):
    A = rng.standard_normal((30, 4))
    B = rng.standard_normal((30, 4)) + 0.5
    mean, std = kid(A, B, n_subsets=3, subset_size=30)
    assert mean == pytest.approx(_kid_slow(A, B), rel=1e-10)
    # every subset is both whole sets: the std is the jackknife's, each pair (a_i, b_i) left out in turn
    loo = [_kid_slow(np.delete(A, i, 0), np.delete(B, i, 0)) for i in range(30)]
    assert std == pytest.approx(np.sqrt(29 / 30 * np.sum((np.array(loo) - np.mean(loo)) ** 2)), rel=1e-9) and std > 0
    same = kid(rng.standard_normal((3000, 8)), rng.standard_normal((3000, 8)), n_subsets=20, subset_size=500)
    shifted = kid(rng.standard_normal((3000, 8)), rng.standard_normal((3000, 8)) + 0.3, n_subsets=20, subset_size=500)
    assert abs(same[0]) < 3 * same[1] / np.sqrt(20) + 1e-3
    assert shifted[0] > 10 * abs(same[0]) and shifted[0] > 0.1


def test_kid_std_of_whole_sets_estimates_the_sampling_deviation():
    """Between different distributions the jackknife's std is the deviation of KID over fresh draws of the sets."""
    rng = np.random.default_rng(3)
    draws = [kid(rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 0.3) for _ in range(150)]
    spread, estimate = np.std([v for v, _ in draws]), np.median([s for _, s in draws])
    assert 0.8 * spread < estimate < 1.25 * spread


def test_cli_pca_fit_sample_evaluate(images, tmp_path):
    runner = CliRunner()
    data = tmp_path / "imgs.npy"
    np.save(data, images)
    r = runner.invoke(app, ["fit-moments", str(data), "--pca", "3", "-o", str(tmp_path / "m.h5"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["pca_components"] == 3 and json.loads(r.stdout)["dim"] == 3
    r = runner.invoke(app, ["sample", str(tmp_path / "m.h5"), "-n", "40", "-o", str(tmp_path / "s.npy"),
                            "--steps", "5", "--seed", "1", "--json"])
    assert r.exit_code == 0, r.output
    codes = np.load(tmp_path / "s.npy")
    imgs = np.load(tmp_path / "s.images.npy")
    b = latent.from_extras(Model.load(tmp_path / "m.h5").extras_)
    assert codes.shape == (40, 3) and imgs.shape == (40, 6, 5) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, latent.decode(codes, b, as_input=True))
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # evaluated against held-out images: in the model's codes, the images encoded by its basis
    np.save(tmp_path / "codes.npy", latent.encode(images, b))
    res = {}
    for name, args in (("images", ["s.npy", "imgs.npy", "--train", "m.h5"]),
                       ("codes", ["s.npy", "codes.npy", "--train", "m.h5"]),
                       ("decoded", ["s.images.npy", "imgs.npy", "--train", "m.h5"]),
                       ("pixels", ["s.images.npy", "imgs.npy"])):
        r = runner.invoke(app, ["evaluate", *(str(tmp_path / a) if a.endswith((".npy", ".h5")) else a for a in args),
                                "--json"])
        assert r.exit_code == 0, r.output
        res[name] = json.loads(r.stdout)
    assert res["images"] == res["codes"] and res["images"]["dim"] == 3 and res["images"]["n_reference"] == 120
    assert res["decoded"]["dim"] == 3 and res["pixels"]["dim"] == 30  # without a basis: pixels
    assert res["decoded"]["sliced_w2"] == pytest.approx(res["images"]["sliced_w2"], rel=0.1)
    # a second run refuses to overwrite any of the four outputs
    r = runner.invoke(app, ["sample", str(tmp_path / "m.h5"), "-n", "40", "-o", str(tmp_path / "s.npy")])
    assert r.exit_code == 2 and "exists" in r.output
    # images that are not images
    np.save(tmp_path / "flat.npy", images.reshape(120, -1))
    r = runner.invoke(app, ["fit-moments", str(tmp_path / "flat.npy"), "--pca", "3", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "shape (N, H, W)" in r.output and not (tmp_path / "x.h5").exists()


def test_mnist_pca_basis():
    z = np.load(shared_data("mnist.npz"))
    imgs = z["images"][::35]  # 2,000 images of every class
    b = latent.fit_pca(imgs, 64)
    x = imgs.reshape(len(imgs), -1) / 255.0
    share = b.explained_variance.sum() / x.var(axis=0).sum()
    assert 0.8 < share < 0.95  # 64 components keep most, not all, of MNIST's variance
    err = np.abs(latent.decode(latent.encode(imgs, b), b) - imgs / 255.0).mean()
    assert err < 0.06
