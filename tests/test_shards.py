"""Results depend on the seed only: not on the batch size, nor on how the ensembles are split into shards."""

from pathlib import Path

import numpy as np
import pytest

from mmsold_cli import fit_moments, sample
from mmsold_cli.errors import MmsoldError
from mmsold_cli.sampling import ensemble_layout

DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def moons():
    return fit_moments(np.load(DATA / "moons_train.npy"))


@pytest.fixture(scope="module")
def latent16():
    rng = np.random.default_rng(3)
    centres = 3 * rng.standard_normal((6, 16))
    return fit_moments(centres[rng.integers(0, 6, 3000)] + rng.standard_normal((3000, 16)))


# 7,300 samples at P = 1,000 make 8 ensembles of two sizes (913 and 912)
N, STEPS = 7300, 12


@pytest.mark.parametrize("opts", [{}, {"sampler": "sold"}, {"sampler": "cfdm", "steps": STEPS},
                                  {"integrator": "ams"}, {"init": "gmm"}, {"backend": "numpy"},
                                  {"backend": "numpy", "search": "index", "L": 3}])
def test_same_bytes_for_any_batch_size_and_shards(moons, opts):
    kw = {"steps": STEPS, "backend": "numba", **opts}  # numba's fused grid kernels unless the case says NumPy
    whole = sample(moons, N, random_state=11, batch_size=65_536, **kw)
    assert whole.settings["shard"] == [0, 8] and len(whole.diagnostics["ensemble_sizes"]) == 2
    small = sample(moons, N, random_state=11, batch_size=1_000, **kw)
    assert small.samples.tobytes() == whole.samples.tobytes()
    sizes, offsets = ensemble_layout(N, whole.settings["P"], 2)
    parts = [sample(moons, N, random_state=11, shard=s, **kw) for s in [(0, 3), (3, 4), (4, 8)]]
    assert [p.samples.shape[0] for p in parts] == [offsets[3], offsets[4] - offsets[3], N - offsets[4]]
    assert np.concatenate([p.samples for p in parts]).tobytes() == whole.samples.tobytes()
    assert whole.settings["search"] == ("grid" if kw["backend"] == "numba" and kw.get("L") is None else "index")
    other = sample(moons, N, random_state=12, **kw)
    assert not np.array_equal(other.samples, whole.samples)


def test_small_point_set_jobs_run_on_numpy_and_compile_nothing(moons):
    """backend="auto": a job of ≤ SMALL_JOB particle-steps in ≤ 3-D takes the NumPy backend (no compilation);
    its normals are the kernels' own numbers (NumPy's Philox), so only the arithmetic path differs."""
    from mmsold_cli.defaults import SMALL_JOB

    small = sample(moons, 1000, random_state=0, steps=SMALL_JOB // 1000)
    assert small.settings["backend"] == "numpy" and small.settings["search"] == "index"
    big = sample(moons, 1000, random_state=0, steps=SMALL_JOB // 1000 + 1)
    assert big.settings["backend"] == "numba" and big.settings["search"] == "grid"
    forced = sample(moons, 1000, random_state=0, steps=SMALL_JOB // 1000, backend="numpy")
    assert forced.samples.tobytes() == small.samples.tobytes()


def test_same_bytes_above_three_dimensions(latent16):
    """The walked beams (16-D): each particle's beam is its own, so batches and shards agree too."""
    whole = sample(latent16, 2500, random_state=5, steps=8, P=500)
    assert whole.settings["search"] == "walk"
    small = sample(latent16, 2500, random_state=5, steps=8, P=500, batch_size=1000)
    shards = [sample(latent16, 2500, random_state=5, steps=8, P=500, shard=s).samples for s in [(0, 1), (1, 5)]]
    assert small.samples.tobytes() == whole.samples.tobytes()
    assert np.concatenate(shards).tobytes() == whole.samples.tobytes()


def test_without_a_seed_runs_differ_and_shard_is_checked(moons):
    a = sample(moons, 500, steps=3).samples
    b = sample(moons, 500, steps=3).samples
    assert not np.array_equal(a, b)
    for bad in [(0, 0), (-1, 1), (0, 2), (1.5, 2), "ab", (0, 1, 2)]:
        with pytest.raises(MmsoldError, match="shard must be"):
            sample(moons, 500, steps=3, shard=bad)


@pytest.mark.parametrize("opts", [{}, {"search": "all"}, {"search": "index"}, {"sampler": "sold"}])
def test_same_bytes_in_64_dimensions_with_small_ensembles(opts):
    """Seven ensembles of 150 particles in 64-D: the change to Y coordinates at the start and the exact score's BLAS
    products once rounded a particle by how many ensembles shared its batch (differences of 6e-14)."""
    rng = np.random.default_rng(4)
    model = fit_moments(rng.standard_normal((2000, 64)) * np.linspace(0.5, 2.0, 64))
    kw = {"steps": 2, "P": 150, **opts}
    whole = sample(model, 1050, random_state=11, **kw)
    assert len(whole.diagnostics["ensemble_sizes"]) == 1 and whole.settings["shard"] == [0, 7]
    alone = sample(model, 1050, random_state=11, batch_size=1, **kw)
    part = sample(model, 1050, random_state=11, shard=(2, 5), **kw)
    assert alone.samples.tobytes() == whole.samples.tobytes()
    assert part.samples.tobytes() == whole.samples[300:750].tobytes()


def test_exact_score_same_bytes_in_small_ensembles(moons):
    """The exact (all-points) score in 2-D with ensembles of 150: its products run on blocks of one shape placed by
    the rows' index in the run, so a batch of one ensemble gives the whole run's numbers."""
    whole = sample(moons, 1050, random_state=11, steps=3, P=150, search="all")
    alone = sample(moons, 1050, random_state=11, steps=3, P=150, search="all", batch_size=1)
    assert alone.samples.tobytes() == whole.samples.tobytes()
