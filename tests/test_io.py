"""Streaming writer of sample files: the same bytes as writing the whole array."""

import numpy as np
import pytest

from mmsold_cli.io.arrays import PointWriter, save_points


@pytest.mark.parametrize("ext", [".npy", ".csv", ".txt", ".xyz"])
def test_point_writer_writes_the_bytes_of_save_points(tmp_path, ext):
    X = np.random.default_rng(0).standard_normal((1001, 3)) * 1e3
    save_points(tmp_path / f"whole{ext}", X)
    with PointWriter(tmp_path / f"blocks{ext}", *X.shape) as w:
        for a, b in [(0, 1), (1, 500), (500, 1001)]:
            w[a:b] = X[a:b]
    assert (tmp_path / f"blocks{ext}").read_bytes() == (tmp_path / f"whole{ext}").read_bytes()
    if ext == ".npy":
        np.testing.assert_array_equal(np.load(tmp_path / "blocks.npy"), X)


def test_point_writer_refuses_gaps_overlaps_and_a_short_file(tmp_path):
    X = np.ones((10, 2))
    w = PointWriter(tmp_path / "a.npy", 10, 2)
    w[0:4] = X[:4]
    for key in (slice(5, 8), slice(0, 4), slice(4, 11), 4):
        with pytest.raises(ValueError, match="in order"):
            w[key] = X[:3]
    with pytest.raises(ValueError, match="shape"):
        w[4:6] = X[:3]
    with pytest.raises(ValueError, match="4 of 10 rows"):
        w.close()
    with pytest.raises(Exception, match="stream"):
        PointWriter(tmp_path / "a.h5", 10, 2)


def test_sample_into_out_equals_sample_in_memory(tmp_path):
    from mmsold_cli import fit_moments, sample
    from mmsold_cli.errors import MmsoldError

    X = np.random.default_rng(1).standard_normal((300, 2))
    model = fit_moments(X)
    want = sample(model, 700, random_state=3, steps=5, batch_size=200).samples  # 4 batches
    with PointWriter(tmp_path / "s.npy", 700, 2) as w:
        res = sample(model, 700, random_state=3, steps=5, batch_size=200, out=w)
    assert res.samples is w
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), want)
    with pytest.raises(MmsoldError, match=r"out must have shape \(700, 2\), got \(700, 3\)"):
        sample(model, 700, random_state=3, steps=5, out=np.empty((700, 3)))


def test_the_bundled_sample_data_is_what_its_script_makes(tmp_path):
    """sample_data/ is made by our own code: the script remakes every bundled file byte for byte."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "sample_data"
    spec = importlib.util.spec_from_file_location("make_sample_data", folder / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in folder.iterdir() if p.suffix in (".npy", ".obj", ".ply"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
