"""Refused before any work, exit 2 and nothing written: an output that is an input, an output that cannot
fit the disk or memory, a model file declaring sizes no model of its kind can have."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from mmsold_cli import MmsoldError, fit_moments
from mmsold_cli.cli import app
from mmsold_cli.io import room

RNG = np.random.default_rng(7)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(res, *fragments):
    assert res.exit_code == 2, (res.exit_code, res.stderr, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmsold: error:"), res.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture
def model_file(tmp_path):
    data = tmp_path / "train.npy"
    np.save(data, RNG.standard_normal((300, 2)) * [2.0, 0.5])
    path = tmp_path / "m.h5"
    fit_moments(np.load(data)).save(path)
    return data, path


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_sample_output_that_is_the_model_is_refused(tmp_path, model_file, how):
    data, model = model_file
    target = model
    if how == "symlink":
        target = tmp_path / "link.h5"
        os.symlink(model, target)
    elif how == "hardlink":
        target = tmp_path / "hard.h5"
        os.link(model, target)
    before = snapshot(tmp_path)
    refused(invoke("sample", model, "-n", 50, "-o", target, "--overwrite"), "is the input", "none of the command's inputs")
    assert snapshot(tmp_path) == before


def test_other_commands_refuse_their_input_as_output(tmp_path, model_file):
    data, model = model_file
    before = snapshot(tmp_path)
    refused(invoke("fit-moments", data, "-o", data, "--overwrite"), "is the input")
    refused(invoke("sample", model, "-n", 50, "-o", tmp_path / "s.npy", "--plot", model, "--overwrite"), "is the input")
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, RNG.standard_normal((200, 3)))
    before = snapshot(tmp_path)
    refused(invoke("densify", cloud, "-o", cloud, "--overwrite"), "is the input")
    refused(invoke("evaluate", cloud, cloud, "--plot", cloud), "is the input")
    assert snapshot(tmp_path) == before


def test_an_output_larger_than_the_disk_is_refused_up_front(tmp_path, model_file):
    _, model = model_file
    before = snapshot(tmp_path)
    res = invoke("sample", model, "-n", 10**13, "-o", tmp_path / "s.npy")
    refused(res, "10,000,000,000,000 samples", "160.0 TB", "free")
    assert snapshot(tmp_path) == before


def test_an_output_held_in_memory_must_fit_it(tmp_path, monkeypatch):
    monkeypatch.setattr(room, "available_memory", lambda: 10**9)
    room.check_room(tmp_path / "s.npy", 10**8, 2, in_memory=False)  # streamed: the disk only
    with pytest.raises(MmsoldError, match=r"1.6 GB of memory .* 1.0 GB is available"):
        room.check_room(tmp_path / "s.h5", 10**8, 2, in_memory=True)
    assert room.output_bytes(10, 3, ".csv") >= 30 * len(f"{-1.2345678901234567e-300:.18e},")


def test_a_model_declaring_impossible_sizes_is_refused_before_reading(tmp_path, model_file):
    _, model = model_file
    big = tmp_path / "big.h5"
    shutil.copy(model, big)
    n = 2_000_000_000
    with h5py.File(big, "a") as f:  # compressed and nearly empty: a small file declaring 48 GB
        for name, cols, dtype in (("points", 2, "f8"), ("knn_idx", f["knn_idx"].shape[1], f["knn_idx"].dtype),
                                  ("knn_sqdist", f["knn_sqdist"].shape[1], "f8"), ("nn_dist", None, "f8")):
            if name in f:
                del f[name]
            shape = (n, cols) if cols else (n,)
            f.create_dataset(name, shape=shape, dtype=dtype, chunks=(100_000,) + shape[1:], compression="gzip")
    assert big.stat().st_size < 5_000_000
    before = snapshot(tmp_path)
    refused(invoke("sample", big, "-n", 50, "-o", tmp_path / "s.npy"), "2,000,000,000 points", "memory",
            "available")
    assert snapshot(tmp_path) == before
    with h5py.File(big, "a") as f:
        del f["mean"]
        f.create_dataset("mean", data=np.zeros(3))
    refused(invoke("sample", big, "-n", 50, "-o", tmp_path / "s.npy"), "/mean should have shape (2,)", "got shape (3,)")
