import h5py
import numpy as np
import pytest

from mmsold_cli import MmsoldError, fit_moments
from mmsold_cli.model import Model


def test_fit_attributes(aniso_rotated):
    X = aniso_rotated
    m = fit_moments(X)
    assert np.allclose(m.mean_, X.mean(0))
    assert np.allclose(m.covariance_, np.cov(X.T, bias=True))
    assert np.allclose(m.cholesky_ @ m.cholesky_.T, m.covariance_)
    # spacing: mean nearest-other-point distance, by brute force
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    assert m.spacing_ == pytest.approx(D.min(1).mean(), rel=1e-12)
    assert np.array_equal(np.sort(m.knn_idx_[:, :3], 1), np.sort(np.argsort(D, 1)[:, :3], 1))


def test_init_only_stores():
    m = Model(index="brute")
    assert m.index == "brute" and not hasattr(m, "X_")


def test_save_load_round_trip(tmp_path, aniso_rotated):
    m = fit_moments(aniso_rotated)
    path = m.save(tmp_path / "m.h5")
    with h5py.File(path) as f:
        assert f.attrs["format"] == "mmsold-model"
        # only numeric datasets, nothing opaque
        f.visititems(lambda n, o: isinstance(o, h5py.Dataset) and (o.dtype.kind in "fiu" or pytest.fail(n)))
    m2 = Model.load(path)
    for a in ("X_", "mean_", "covariance_", "cholesky_", "knn_idx_"):
        assert np.array_equal(getattr(m, a), getattr(m2, a))
    assert m2.index_kind_ == m.index_kind_ and m2.spacing_ == m.spacing_


def test_checksum_detects_corruption(tmp_path, aniso_rotated):
    path = fit_moments(aniso_rotated).save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        f["points"][0, 0] += 1.0
    with pytest.raises(MmsoldError, match="checksum"):
        Model.load(path)


@pytest.mark.parametrize("kind", ["kdtree", "brute", "grid"])
def test_index_kinds_agree(aniso_rotated, kind):
    """Each exact index's graph is the brute-force one: every point's 4 nearest others, by a NumPy argsort."""
    m = fit_moments(aniso_rotated, index=kind)
    X = m.X_
    D = ((X[:, None, :] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    assert np.array_equal(m.knn_idx_[:, :4], np.argsort(D, axis=1, kind="stable")[:, :4])


def test_loaded_graph_is_read_on_first_use(tmp_path, aniso_rotated):
    """A loaded model keeps its k-NN graph in the file until asked; a file changed since the load is refused."""
    m = fit_moments(aniso_rotated)
    path = m.save(tmp_path / "m.h5")
    m2 = Model.load(path)
    assert "_knn_idx" not in m2.__dict__ and "_knn_sqdist" not in m2.__dict__
    assert m2.kth_dist_ == pytest.approx(np.sqrt(m.knn_sqdist_[:, -1]).mean(), rel=1e-12)
    assert m2.kth_dist_ == pytest.approx(m.kth_dist_, rel=1e-12)
    np.testing.assert_array_equal(m2.knn_idx_, m.knn_idx_)
    assert m2.knn_idx_.dtype == np.int32
    np.testing.assert_array_equal(m2.knn_sqdist_, m.knn_sqdist_)
    m3 = Model.load(path)
    with h5py.File(path, "r+") as f:
        f.attrs["settings"] = "{}  "
    with pytest.raises(MmsoldError, match="changed after it was loaded"):
        _ = m3.knn_idx_


def test_graph_out_of_range_refused_on_load(tmp_path, aniso_rotated):
    """The graph is checked in full at load time, block by block, though it is not kept."""
    path = fit_moments(aniso_rotated).save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        f["knn_idx"][len(aniso_rotated) - 1, 3] = len(aniso_rotated)
    with pytest.raises(MmsoldError, match="outside the training set"):
        Model.load(path)


def test_reload_samples_the_same_bytes_above_three_dimensions(tmp_path):
    """A latent model's defaults read kth_dist_: the file's load averaged it block by block and read a float one
    unit in the last place off, so t, σ and every sample changed after a save and load."""
    from mmsold_cli import sample

    X = np.random.default_rng(0).standard_normal((20000, 16))
    m = fit_moments(X)
    m2 = Model.load(m.save(tmp_path / "m.h5"))
    assert m2.kth_dist_ == m.kth_dist_
    a, b = (sample(k, 600, random_state=0, steps=3) for k in (m, m2))
    assert a.settings["t"] == b.settings["t"] and a.samples.tobytes() == b.samples.tobytes()


def test_nndescent_index_answers_the_same_after_reload(tmp_path):
    """pynndescent's index is rebuilt from the stored graph; the fit builds it the same way, so a reloaded
    model's index queries (search="index", σ-CFDM) give the fit's answers."""
    from mmsold_cli import sample

    pytest.importorskip("pynndescent")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 12)) @ rng.standard_normal((12, 12))
    m = fit_moments(X, index="nndescent")
    m2 = Model.load(m.save(tmp_path / "m.h5"))
    # built by its first query: loading and a run of the walk search build none (each took most of a minute)
    assert sample(m2, 300, random_state=0, steps=3).settings["search"] == "walk" and m2.index_._nnd is None
    Q = X[:200] + 0.3 * rng.standard_normal((200, 12))
    (d1, i1), (d2, i2) = m.index_.query(Q, 16), m2.index_.query(Q, 16)
    assert np.array_equal(i1, i2) and np.array_equal(d1, d2)
