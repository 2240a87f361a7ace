"""End-to-end CLI: fit-moments → sample → evaluate on the bundled sample data."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import SAMPLE_DATA


def mmsold(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mmsold_cli.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def test_end_to_end(tmp_path):
    train, test = SAMPLE_DATA / "moons_train.npy", SAMPLE_DATA / "moons_test.npy"
    r = mmsold("fit-moments", train, "-o", tmp_path / "m.h5", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["points"] == 2000 and info["dim"] == 2 and info["index"] == "kdtree"

    r = mmsold("sample", tmp_path / "m.h5", "-n", 500, "-o", tmp_path / "s.npy", "--steps", 60, "--seed", 3, "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar when not a terminal
    S = np.load(tmp_path / "s.npy")
    assert S.shape == (500, 2)
    diag = json.loads((tmp_path / "s.diagnostics.json").read_text())
    assert diag["settings"]["steps"] == 60 and diag["settings"]["sampler"] == "mmsold"
    assert len(diag["cov_error"]) == 60 and max(diag["cov_error"]) < 1e-9
    assert len(diag["score_norm"]) == 60 and min(diag["score_norm"]) > 0
    X = np.load(train)
    assert np.allclose(S.mean(0), X.mean(0), atol=1e-10)

    r = mmsold("evaluate", tmp_path / "s.npy", test, "--train", tmp_path / "m.h5", "--json")
    assert r.returncode == 0, r.stderr
    met = json.loads(r.stdout)
    for key in ("mean_error", "cov_error", "w2", "sliced_w2", "mmd2", "precision", "recall", "memorisation"):
        assert key in met
    assert met["w2"] < 0.15 and met["precision"] > 0.8 and met["memorisation"] < 0.3

    # same seed, same bytes
    r = mmsold("sample", tmp_path / "m.h5", "-n", 500, "-o", tmp_path / "s2.npy", "--steps", 60, "--seed", 3)
    assert r.returncode == 0 and np.array_equal(np.load(tmp_path / "s2.npy"), S)


@pytest.mark.parametrize("ext", [".csv", ".h5", ".txt"])
def test_output_formats(tmp_path, ext):
    r = mmsold("fit-moments", SAMPLE_DATA / "8gaussians_train.npy", "-o", tmp_path / "m.h5")
    assert r.returncode == 0, r.stderr
    out = tmp_path / f"s{ext}"
    r = mmsold("sample", tmp_path / "m.h5", "-n", 100, "-o", out, "--steps", 5, "--seed", 0)
    assert r.returncode == 0, r.stderr
    from mmsold_cli.io.arrays import read_points

    assert read_points(out).shape == (100, 2)


def test_help_is_quick_and_lists_commands():
    r = mmsold("--help")
    assert r.returncode == 0
    for cmd in ("fit-moments", "sample", "evaluate"):
        assert cmd in r.stdout
