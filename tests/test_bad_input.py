"""Bad input: one ``mmsold: error:`` line naming the file and the problem, exit 2, no output.

Every case of issue 4's list runs the real command in process (Typer's
CliRunner) and checks the exit code, the message, and that no output file —
nor a temporary one — exists afterwards.  Usable-but-suspicious input
(duplicates, constant columns, a planar cloud) must warn and succeed instead.
"""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from mmsold_cli import MmsoldError
from mmsold_cli.cli import app
from mmsold_cli.model import Model, fit_moments
from mmsold_cli.samplers.stiefel import moment_error
from mmsold_cli.sampling import sample

RNG = np.random.default_rng(20260523)
X3 = RNG.standard_normal((300, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.3, 0.2]])


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def leftovers(folder):
    """Temporary files an atomic writer could have left behind."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def assert_refused(res, *fragments, outputs=()):
    """Exit 2, exactly one error line containing every fragment, no outputs, no temp files."""
    assert res.exit_code == 2, (res.exit_code, res.stderr, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmsold: error: "), res.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    for out in outputs:
        assert not os.path.exists(out), out
        assert not leftovers(out.parent), leftovers(out.parent)
    return lines[0]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    np.save(folder / "train.npy", X3)
    path = folder / "model.h5"
    fit_moments(X3).save(path)
    return path


@pytest.fixture
def fit(tmp_path):
    """Run fit-moments on an array (or a file's raw bytes) saved under a given name."""

    def run(name, data=None, text=None, raw=None):
        src = tmp_path / name
        if data is not None:
            np.save(src, data, allow_pickle=data.dtype == object)
        elif text is not None:
            src.write_text(text)
        elif raw is not None:
            src.write_bytes(raw)
        out = tmp_path / "out.h5"
        return invoke("fit-moments", src, "-o", out), out

    return run


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path):
    out = tmp_path / "m.h5"
    res = invoke("fit-moments", tmp_path / "nope.npy", "-o", out)
    assert_refused(res, "nope.npy", "no such file", outputs=[out])


def test_unreadable_file(tmp_path, monkeypatch):
    src = tmp_path / "locked.npy"
    np.save(src, X3)
    src.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the permission check see what a user would
        import mmsold_cli.io.arrays as mio

        monkeypatch.setattr(mio.os, "access", lambda p, mode: not str(p).endswith("locked.npy"))
    out = tmp_path / "m.h5"
    res = invoke("fit-moments", src, "-o", out)
    assert_refused(res, "locked.npy", "not readable", outputs=[out])


def test_directory_as_input(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    out = tmp_path / "m.h5"
    assert_refused(invoke("fit-moments", tmp_path / "dir.npy", "-o", out), "dir.npy", "directory", outputs=[out])


def test_unknown_extension(fit):
    res, out = fit("points.dat", text="1 2\n3 4\n")
    assert_refused(res, "points.dat", "unknown extension '.dat'", ".npy", ".csv", outputs=[out])


def test_hdf5_wrong_dataset_lists_the_datasets(tmp_path):
    src = tmp_path / "data.h5"
    with h5py.File(src, "w") as f:
        f["group/train"] = X3
        f["test"] = X3[:10]
    out = tmp_path / "m.h5"
    res = invoke("fit-moments", f"{src}:/group/nope", "-o", out)
    assert_refused(res, "data.h5", "'/group/nope'", "/group/train", "/test", outputs=[out])
    res = invoke("fit-moments", src, "-o", out)  # several datasets, none chosen
    assert_refused(res, "data.h5", "2 datasets", "/group/train", "/test", outputs=[out])
    assert invoke("fit-moments", f"{src}:/group/train", "-o", out).exit_code == 0


def test_npz_without_key_lists_the_arrays(tmp_path):
    src = tmp_path / "data.npz"
    np.savez(src, train=X3, test=X3[:10])
    out = tmp_path / "m.h5"
    assert_refused(invoke("fit-moments", src, "-o", out), "data.npz", "2 arrays", "train", "test", outputs=[out])
    assert_refused(invoke("fit-moments", f"{src}:other", "-o", out), "'other'", "train, test", outputs=[out])
    assert invoke("fit-moments", f"{src}:train", "-o", out).exit_code == 0


def test_garbage_bytes_as_npy(fit):
    res, out = fit("junk.npy", raw=b"\x00\x01not a numpy file at all" * 10)
    assert_refused(res, "junk.npy", "cannot read as npy", outputs=[out])


# --------------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    "name, data, fragments",
    [
        ("empty.npy", np.zeros((0, 3)), ["is empty", "(0, 3)"]),
        ("one.npy", np.ones((1, 3)), ["at least 2 points, got 1"]),
        ("few.npy", RNG.standard_normal((3, 3)), ["at least d + 1 = 4 points", "3-D", "got 3"]),
        ("flat.npy", RNG.standard_normal(20), ["1-D array of length 20", "(n, 1)"]),
        ("cube.npy", RNG.standard_normal((5, 4, 3)), ["2-D array", "(5, 4, 3)"]),
        ("text.npy", np.array([["1.0", "2.0"], ["3.0", "4.0"]]), ["expected numbers, got text"]),
        ("complex.npy", RNG.standard_normal((20, 2)) + 1j, ["real numbers", "complex"]),
        ("table.npy", np.zeros(20, dtype=[("x", "f8"), ("y", "f8")]), ["structured", "x, y"]),
        ("objects.npy", np.array([[1.0, None], [2.0, 3.0]], dtype=object), ["pickled Python objects"]),
        ("huge.npy", np.array([[1.0, 2.0], [3e60, 4.0], [5.0, 6.0]]), ["3e+60", "rescale"]),
        ("same.npy", np.tile([1.0, 2.0, 3.0], (50, 1)), ["all 50 points are identical"]),
        ("tiny.npy", 1e6 + RNG.standard_normal((50, 2)) * 1e-8, ["cannot resolve", "centre and rescale"]),
    ],
)
def test_unusable_arrays(fit, name, data, fragments):
    res, out = fit(name, data)
    assert_refused(res, name, *fragments, outputs=[out])


def test_nan_and_inf_rows_are_counted(fit):
    X = X3.copy()
    X[[4, 9, 9, 200], [0, 1, 2, 0]] = [np.nan, np.inf, -np.inf, np.nan]
    res, out = fit("holes.npy", X)
    assert_refused(res, "holes.npy", "3 of 300 rows contain NaN or infinity", "first at row 4", outputs=[out])


def test_empty_text_file(fit):
    res, out = fit("empty.csv", text="# only a comment\n\n")
    assert_refused(res, "empty.csv", "is empty", outputs=[out])


def test_ragged_csv_names_the_line(fit):
    res, out = fit("ragged.csv", text="1,2,3\n4,5,6\n7,8\n9,10,11\n")
    assert_refused(res, "ragged.csv", "line 3 has 2 values, expected 3", outputs=[out])


def test_non_numeric_line_names_the_line(fit):
    res, out = fit("bad.csv", text="x,y\n1,2\n3,4\n5,oops\n")
    assert_refused(res, "bad.csv", "line 4 is not numeric", "5,oops", outputs=[out])


def test_header_line_is_skipped(fit, tmp_path):
    rows = "\n".join(",".join(f"{v:.17g}" for v in r) for r in X3)
    res, out = fit("with_header.csv", text="x,y,z\n" + rows + "\n")
    assert res.exit_code == 0, res.stderr
    m = Model.load(out)
    np.testing.assert_array_equal(m.X_, X3)


def test_garbled_first_row_is_not_taken_for_a_header(fit):
    # a first line with numbers in it is data: a typo there must be reported, not skipped
    res, out = fit("typo.csv", text="1.0,2.o\n3,4\n5,6\n7,8\n")
    assert_refused(res, "typo.csv", "line 1 is not numeric", outputs=[out])


# --------------------------------------------------------------- usable, with a warning


def test_duplicates_warn_and_use_distinct_spacing(fit):
    base = RNG.standard_normal((100, 3))
    res, out = fit("dups.npy", np.repeat(base, 20, axis=0))  # every point 20 times: more than the stored 16 NN
    assert res.exit_code == 0, res.stderr
    assert "mmsold: warning: " in res.stderr and "1900 of 2000 points are exact duplicates" in res.stderr
    m = Model.load(out)
    ref = fit_moments(base)
    assert m.spacing_ == pytest.approx(ref.spacing_, rel=1e-12)  # as if each point were there once
    np.testing.assert_allclose(m.mean_, ref.mean_, rtol=1e-12, atol=1e-14)


def test_constant_column_warns_and_samples_exact_moments(fit, tmp_path):
    X = X3.copy()
    X[:, 1] = 7.0
    res, out = fit("const.npy", X)
    assert res.exit_code == 0
    assert "covariance is singular (1 of 3 directions without spread" in res.stderr
    m = Model.load(out)
    assert m.jitter_ == pytest.approx(1e-6 * np.linalg.eigvalsh(m.covariance_)[-1])
    Z = sample(m, 64, steps=5, random_state=0).samples
    me, ce = moment_error(Z[None], m.mean_, m.covariance_ + m.jitter_ * np.eye(3))
    assert me[0] < 1e-9 and ce[0] < 1e-9
    assert np.std(Z[:, 1]) == pytest.approx(np.sqrt(m.jitter_), rel=1e-6)  # the documented regulariser


def test_planar_cloud_warns_and_stays_near_the_plane(fit, tmp_path):
    Q, _ = np.linalg.qr(RNG.standard_normal((3, 3)))
    X = np.c_[RNG.standard_normal((400, 2)) * [3.0, 1.0], np.zeros(400)] @ Q.T + [1.0, -2.0, 5.0]
    res, out = fit("plane.npy", X)
    assert res.exit_code == 0 and "covariance is singular" in res.stderr and "planar" in res.stderr
    samples = tmp_path / "s.npy"
    res = invoke("sample", out, "-n", 200, "-o", samples, "--steps", 10, "--seed", 1)
    assert res.exit_code == 0, res.stderr
    Z = np.load(samples)
    m = Model.load(out)
    me, ce = moment_error(Z[None], m.mean_, m.covariance_ + m.jitter_ * np.eye(3))
    assert me[0] < 1e-9 and ce[0] < 1e-9
    off_plane = (Z - m.mean_) @ Q[:, 2]
    assert np.sqrt(np.mean(off_plane**2)) < 2e-3 * np.sqrt(np.linalg.eigvalsh(m.covariance_)[-1])


# --------------------------------------------------------------------------- model files


@pytest.fixture
def sample_out(tmp_path):
    return tmp_path / "s.npy", tmp_path / "s.diagnostics.json"


def test_model_from_another_tool(tmp_path, sample_out):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["weights"] = X3
        f.attrs["creator"] = "keras"
    res = invoke("sample", other, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "other.h5", "another tool", "'mmsold-model'", outputs=sample_out)


def test_not_an_hdf5_file_as_model(tmp_path, sample_out):
    src = tmp_path / "train.npy"
    np.save(src, X3)
    res = invoke("sample", src, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "train.npy", "not an HDF5 file", "fit-moments", outputs=sample_out)


def test_newer_format_version(model_path, tmp_path, sample_out):
    newer = tmp_path / "newer.h5"
    shutil.copy(model_path, newer)
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 7
    res = invoke("sample", newer, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "newer.h5", "format version 7", "reads versions 1 to 1", "upgrade", outputs=sample_out)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.02])
def test_truncated_model(model_path, tmp_path, sample_out, keep):
    data = model_path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])
    res = invoke("sample", cut, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "cut.h5", "truncated or corrupted", outputs=sample_out)


def test_empty_model_file(tmp_path, sample_out):
    (tmp_path / "zero.h5").write_bytes(b"")
    res = invoke("sample", tmp_path / "zero.h5", "-n", 10, "-o", sample_out[0])
    assert_refused(res, "zero.h5", "is empty", outputs=sample_out)


def test_corrupted_model_bytes_are_caught(model_path, tmp_path, sample_out):
    """Flip bytes inside the stored points: HDF5's Fletcher-32 checksum refuses the file."""
    with h5py.File(model_path, "r") as f:
        offset = f["points"].id.get_chunk_info(0).byte_offset
    data = bytearray(model_path.read_bytes())
    data[offset + 100 : offset + 108] = bytes(8)
    bad = tmp_path / "flipped.h5"
    bad.write_bytes(bytes(data))
    res = invoke("sample", bad, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "flipped.h5", "damaged model file", "Fletcher-32", outputs=sample_out)


def test_inconsistent_model_arrays(model_path, tmp_path, sample_out):
    """A structurally valid file whose arrays disagree (e.g. edited by hand) is refused."""
    bad = tmp_path / "edited.h5"
    shutil.copy(model_path, bad)
    with h5py.File(bad, "a") as f:
        del f["cholesky"]
        f["cholesky"] = np.eye(3)
    res = invoke("sample", bad, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "edited.h5", "/cholesky is not the factor of /covariance", outputs=sample_out)
    with h5py.File(bad, "a") as f:
        del f["mean"]
        f["mean"] = np.zeros(5)
    res = invoke("sample", bad, "-n", 10, "-o", sample_out[0])
    assert_refused(res, "edited.h5", "/mean should have shape (3,)", outputs=sample_out)


def test_model_dimension_differs_from_evaluate_data(model_path, tmp_path):
    A = tmp_path / "a.npy"
    np.save(A, RNG.standard_normal((50, 2)))
    res = invoke("evaluate", A, A, "--train", model_path, "--json")
    line = assert_refused(res, "model.h5", "dimension 3", "2")
    assert res.stdout == "", line


def test_reference_dimension_differs_from_samples(tmp_path):
    A, B = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(A, RNG.standard_normal((50, 2)))
    np.save(B, RNG.standard_normal((50, 3)))
    assert_refused(invoke("evaluate", A, B), "b.npy", "dimension 3", "2")


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "opts, fragments",
    [
        (["-n", "0"], ["number of samples n must be ≥ 1, got 0"]),
        (["-n", "-5"], ["number of samples n must be ≥ 1, got -5"]),
        (["-n", "10", "--steps", "0"], ["steps must be ≥ 1, got 0"]),
        (["-n", "10", "--steps", "-3"], ["steps must be ≥ 1, got -3"]),
        (["-n", "10", "--t", "0"], ["noise t must be > 0, got 0.0"]),
        (["-n", "10", "--t", "-0.5"], ["noise t must be > 0, got -0.5"]),
        (["-n", "10", "--sigma", "-1"], ["smoothing sigma must be ≥ 0"]),
        (["-n", "10", "--eta", "0"], ["step factor eta must be > 0"]),
        (["-n", "10", "-P", "3"], ["ensemble size P (more particles than the dimension 3) must be ≥ 4, got 3"]),
        (["-n", "10", "-K", "301"], ["neighbours K must be ≤ the 300 training points, got 301"]),
        (["-n", "10", "-M", "0"], ["draws M must be ≥ 1"]),
        (["-n", "10", "--sampler", "magic"], ["sampler must be one of", "'magic'"]),
        (["-n", "10", "-P", "0"], ["ensemble size P (more particles than the dimension 3) must be ≥ 4, got 0"]),
        (["-n", "10", "--seed", "-1"], ["seed must be a non-negative integer, got -1"]),
        (["-n", "10", "--t", "1e-160"], ["noise t must be ≥", "× the data's scale", "got 1e-160"]),
        (["-n", "10", "--t", "1e160"], ["noise t must be ≤", "(1e+09 × the data's scale", "got 1e+160"]),
        (["-n", "10", "--sigma", "1e160"], ["smoothing sigma must be ≤", "got 1e+160"]),
        (["-n", "10", "--steps", "100000000000"], ["steps must be ≤ 10000000, got 100000000000"]),
        (["-n", "10", "--sampler", "cfdm", "--target-cov", "blurred"], ["target_cov must be data for cfdm",
                                                                        "'blurred'"]),
        (["-n", "10", "--class", "foo"], ["holds one model, not one per class", "'foo'"]),
        (["-n", "10", "--plot", "picture.txt"], ["picture.txt", "must end in .png, .pdf or .svg", "'.txt'"]),
        (["-n", "10", "--steps", "abc"], ["sample: Invalid value for '--steps'", "sample --help`)"]),
        (["-n", "10", "--no-such-option"], ["sample: No such option: --no-such-option"]),
    ],
)
def test_nonsensical_sample_options(model_path, sample_out, opts, fragments):
    res = invoke("sample", model_path, *opts, "-o", sample_out[0])
    assert_refused(res, *fragments, outputs=sample_out)


def test_library_raises_the_same_errors():
    """Validation lives in the library: the CLI only prints it."""
    with pytest.raises(MmsoldError, match="1-D array"):
        fit_moments(np.arange(5.0))
    with pytest.raises(MmsoldError, match="NaN or infinity"):
        fit_moments(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 1.0], [2.0, 2.0]]))
    m = fit_moments(X3)
    with pytest.raises(MmsoldError, match="steps must be ≥ 1"):
        sample(m, 10, steps=0)
    with pytest.raises(MmsoldError, match="ensemble size P"):
        sample(m, 10, P=2)


def test_output_in_missing_folder(model_path, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "s.npy"
    res = invoke("sample", model_path, "-n", 10, "-o", out)
    assert_refused(res, "output folder", "does not exist")
    assert not (tmp_path / "no").exists()
    res = invoke("fit-moments", model_path.parent / "train.npy", "-o", tmp_path / "nope" / "m.h5")
    assert_refused(res, "nope", "does not exist")


def test_existing_output_needs_overwrite(model_path, tmp_path):
    out = tmp_path / "s.npy"
    out.write_bytes(b"precious")
    res = invoke("sample", model_path, "-n", 10, "-o", out, "--steps", 2)
    assert_refused(res, "s.npy", "exists", "--overwrite")
    assert out.read_bytes() == b"precious"
    assert not (tmp_path / "s.diagnostics.json").exists()
    # the diagnostics file counts as output too
    out.unlink()
    (tmp_path / "s.diagnostics.json").write_text("{}")
    res = invoke("sample", model_path, "-n", 10, "-o", out, "--steps", 2)
    assert_refused(res, "s.diagnostics.json", "exists")
    assert not out.exists()
    res = invoke("sample", model_path, "-n", 10, "-o", out, "--steps", 2, "--overwrite")
    assert res.exit_code == 0 and np.load(out).shape == (10, 3)
    model_copy = tmp_path / "m.h5"
    model_copy.write_bytes(b"old")
    res = invoke("fit-moments", model_path.parent / "train.npy", "-o", model_copy)
    assert_refused(res, "m.h5", "exists")
    assert model_copy.read_bytes() == b"old"


def test_unknown_output_extension(model_path, tmp_path):
    out = tmp_path / "s.parquet"
    res = invoke("sample", model_path, "-n", 10, "-o", out, "--steps", 2)
    assert_refused(res, "s.parquet", "unknown output extension", outputs=[out, tmp_path / "s.diagnostics.json"])


def test_output_formats_checked_before_any_work(model_path, tmp_path):
    """A model is HDF5; a PLY or XYZ file holds x, y, z (XYZ is read back as 3 columns): refused up front."""
    for out in (tmp_path / "model.npy", tmp_path / "model"):
        assert_refused(invoke("fit-moments", model_path.parent / "train.npy", "-o", out), "unknown output extension",
                       ".h5, .hdf5", outputs=[out])
    two = tmp_path / "two.npy"
    np.save(two, RNG.standard_normal((200, 2)))
    fit_moments(np.load(two)).save(tmp_path / "two.h5")
    for name in ("s.ply", "s.xyz"):
        out = tmp_path / name
        assert_refused(invoke("sample", tmp_path / "two.h5", "-n", 10, "-o", out), name, "holds 3-D points, got 2-D",
                       outputs=[out, tmp_path / "s.diagnostics.json"])


def test_images_with_nan_name_the_image(tmp_path):
    images = RNG.random((20, 6, 6))
    images[7, 1, 1] = np.nan
    np.save(tmp_path / "im.npy", images)
    assert_refused(invoke("fit-moments", tmp_path / "im.npy", "--pca", 4, "-o", tmp_path / "m.h5"), "im.npy",
                   "1 of 20 images contain NaN or infinity (first: image 7)", outputs=[tmp_path / "m.h5"])


def test_plot_at_the_image_grids_path_is_refused(tmp_path):
    """`sample -o codes.npy --plot codes.png` of a PCA model: the plot replaced the decoded images' grid
    (codes.png), silently."""
    np.save(tmp_path / "im.npy", RNG.random((60, 6, 6)))
    assert invoke("fit-moments", tmp_path / "im.npy", "--pca", 4, "-o", tmp_path / "m.h5").exit_code == 0
    out = tmp_path / "codes.npy"
    assert_refused(invoke("sample", tmp_path / "m.h5", "-n", 20, "-o", out, "--plot", tmp_path / "codes.png"),
                   "codes.png: two outputs of this run would be written to this one file",
                   outputs=[out, tmp_path / "codes.png", tmp_path / "codes.images.npy"])


def test_a_grid_index_of_12_dimensional_data_is_one_line(tmp_path):
    """The option's refusal came after the data's singular-covariance warning: two lines for one bad option."""
    X = RNG.standard_normal((300, 12))
    X[:, 3] = 1.0
    np.save(tmp_path / "x.npy", X)
    assert_refused(invoke("fit-moments", tmp_path / "x.npy", "--index", "grid", "-o", tmp_path / "m.h5"),
                   "index grid needs dimension ≤ 3, got 12", outputs=[tmp_path / "m.h5"])


def test_a_reference_of_one_repeated_point_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", X3[:50])
    np.save(tmp_path / "r.npy", np.ones((5, 3)))
    assert_refused(invoke("evaluate", tmp_path / "s.npy", tmp_path / "r.npy", "--json"),
                   "reference: all 5 points are identical")


def test_a_reference_spread_too_small_for_its_moments_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", 1e-100 * X3[:50])
    np.save(tmp_path / "r.npy", 1e-100 * X3[50:120])  # its covariance's norm would underflow: 0/0 errors
    assert_refused(invoke("evaluate", tmp_path / "s.npy", tmp_path / "r.npy", "--json"),
                   "reference: the points spread by")


def test_json_has_no_infinity():
    from mmsold_cli.cli import _finite

    payload = {"a": float("inf"), "b": [np.float32("nan"), 1, 2.5], "c": {"d": np.float64(-np.inf)}}
    assert _finite(payload) == {"a": None, "b": [None, 1, 2.5], "c": {"d": None}}


def test_binary_bytes_under_a_text_extension(fit):
    res, out = fit("scan.xyz", raw=b"1 2 3\n" + bytes(range(1, 256)) * 4 + b"\n")
    assert_refused(res, "scan.xyz", "holds binary data, not text", outputs=[out])


def test_debug_shows_the_traceback(tmp_path):
    """--debug adds the traceback; bad input keeps its exit code 2 (it was 1 with --debug)."""
    res = CliRunner().invoke(app, ["--debug", "fit-moments", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "m.h5")])
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert "Traceback" in res.stderr and "MmsoldError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("mmsold: error:") and "no such file" in res.stderr
