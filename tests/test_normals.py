"""The counter-based normals: the numba kernel against NumPy's Philox, and their law."""

import numpy as np
import pytest
from scipy import stats

from mmsold_cli.rng import normals
from mmsold_cli.rng.normals_numba import _fill, fill, philox_block


def test_philox_block_matches_numpy():
    key = np.array([0x0123456789ABCDEF, 42], dtype=np.uint64)
    for block in [(0, 0, 0, 0), (5, 7, 1, 0), (2**64 - 1, 3, 0, 9)]:
        want = normals._philox_from(key, block).random_raw(4)
        got = philox_block(*(np.uint64(c) for c in block), key[0], key[1])
        assert [int(w) for w in got] == [int(w) for w in want], block


@pytest.mark.parametrize("n", [1, 7, 4096, 100_003])
def test_kernel_equals_reference_bit_for_bit(n):
    key = np.array([123, 456], dtype=np.uint64)
    ref = normals.standard_normal_reference(key, n)
    out = np.empty(n)
    fill(key, out)
    np.testing.assert_array_equal(out, ref)
    if n == 100_003:  # the slow paths are in the comparison: the tail, the wedges
        assert (np.abs(ref) > normals.ZIGGURAT_R).sum() > 10
        i = (normals._philox_from(key, (0, 0, 0, 0)).random_raw(n) & np.uint64(255)).astype(int)
        m = (normals._philox_from(key, (0, 0, 0, 0)).random_raw(n) >> np.uint64(11)).astype(np.int64)
        assert ((m >= normals._K[i]) & (i > 0)).sum() > 500


def test_any_split_of_the_range_gives_the_same_numbers():
    key = np.array([9, 10], dtype=np.uint64)
    n = 50_001
    whole = np.empty(n)
    _fill(normals._W, normals._K, normals._F, key[0], key[1], 0, whole, 0, n)
    parts = np.empty(n)
    cuts = [0, 1, 6, 4099, 30_000, 30_003, n]
    for a, b in zip(cuts[:-1], cuts[1:]):
        _fill(normals._W, normals._K, normals._F, key[0], key[1], 0, parts, a, b)
    np.testing.assert_array_equal(parts, whole)
    # and a range of the stream by its offset
    np.testing.assert_array_equal(normals.from_key(key, (3, 7), start=1001), whole[1001:1022].reshape(3, 7))


def test_law_is_standard_normal():
    x = normals.standard_normal(np.random.default_rng(3), (1000, 1000))
    assert x.shape == (1000, 1000)
    assert stats.kstest(x.ravel(), "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5e-3 and abs(x.var() - 1) < 5e-3
    # beyond the base strip's edge r the tail sampler alone makes the draws: its mass must be right
    p = 2 * stats.norm.sf(normals.ZIGGURAT_R)
    k = (np.abs(x) > normals.ZIGGURAT_R).sum()
    assert abs(k - p * x.size) < 5 * np.sqrt(p * x.size), (k, p * x.size)
    assert abs(np.corrcoef(x.ravel()[:-1], x.ravel()[1:])[0, 1]) < 5e-3


def test_reproducible_from_the_generator_and_fresh_per_call():
    a = normals.standard_normal(np.random.default_rng(5), (3, 4))
    b = normals.standard_normal(np.random.default_rng(5), (3, 4))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    first, second = normals.standard_normal(rng, 12), normals.standard_normal(rng, 12)
    np.testing.assert_array_equal(first, a.ravel())
    assert not np.array_equal(first, second)
    out = np.empty((3, 4))
    assert normals.standard_normal(np.random.default_rng(5), (3, 4), out=out) is out
    np.testing.assert_array_equal(out, a)


def test_tables_have_equal_layer_areas():
    w, fy = normals._W * 2.0**53, normals._F
    x = np.append(w, 0.0)
    areas = x[1:-1] * (fy[2:] - fy[1:-1])  # layers 1 … N−1: width x_i, heights f(x_i) … f(x_{i+1})
    v = normals.ZIGGURAT_R * fy[1] + np.sqrt(np.pi / 2) * stats.norm.sf(normals.ZIGGURAT_R) * 2
    np.testing.assert_allclose(areas, v, rtol=1e-6)
    np.testing.assert_allclose(x[0] * fy[1], v, rtol=1e-12)  # the base strip's pseudo-width: v / f(r)


def test_mean_of_two_keys_equals_the_two_arrays_averaged():
    a, b = np.array([3, 4], dtype=np.uint64), np.array([5, 6], dtype=np.uint64)
    shape = (37, 129)  # several 256-wide pieces per thread range, and a ragged end
    want = (normals.from_key(a, shape, start=11) + normals.from_key(b, shape, start=11)) * 0.5
    np.testing.assert_array_equal(normals.mean_of_two(a, b, shape, start=11), want)


def test_lm_integrator_uses_the_last_steps_key_and_the_rows_counters():
    """LM's noise at step k is (ξ_k + ξ_k+1)/2 of the step keys, at the rows' own counters; no state."""
    from mmsold_cli.rng.streams import NOISE, RunStream
    from mmsold_cli.samplers.integrators import Noise, leimkuhler_matthews

    G = np.ones((5, 7, 3))
    run = RunStream(2, row0=40)
    _, noise1, st1 = leimkuhler_matthews(G.copy(), 0.1, Noise(run.at(0), G.shape), None)
    _, noise2, st2 = leimkuhler_matthews(G.copy(), 0.1, Noise(run.at(1), G.shape), st1)
    assert st1 is None and st2 is None
    keys = [run.key(NOISE, step) for step in (-1, 0, 1)]
    xi = [normals.from_key(k, G.shape, start=40 * 3) for k in keys]
    np.testing.assert_array_equal(noise1, (xi[0] + xi[1]) * 0.5)
    np.testing.assert_array_equal(noise2, (xi[1] + xi[2]) * 0.5)
    # rows 2 … of the same stream: the numbers of those rows of the whole draw
    _, part, _ = leimkuhler_matthews(G[2:].copy(), 0.1, Noise(run.at(1), G[2:].shape, row=2 * 7), None)
    np.testing.assert_array_equal(part, noise2[2:])


def test_numpy_normals_are_the_kernels_numbers_at_any_offset():
    key = normals.new_key(np.random.default_rng(11))
    for start, n in [(0, 5000), (12_345, 777), (3, 1)]:
        a = normals.from_key(key, (n,), start=start)
        b = normals.from_key(key, (n,), start=start, kernel=False)
        np.testing.assert_array_equal(a, b)
    k2 = normals.new_key(np.random.default_rng(12))
    np.testing.assert_array_equal(normals.mean_of_two(key, k2, (40, 3), start=9),
                                  normals.mean_of_two(key, k2, (40, 3), start=9, kernel=False))
