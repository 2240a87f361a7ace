"""Noisy scans: the noise is detected, the input denoised first, the output nearer the surface than the input."""

import numpy as np
import pytest
from conftest import shared_data

from mmsold_cli.datasets import bumpy_torus, surface_samples
from mmsold_cli.io.mesh import read_mesh
from mmsold_cli.metrics.surface import MeshDistance, mean_spacing
from mmsold_cli.workflows.densify import (
    NOISE_THRESHOLD,
    NOISY_KERNELS,
    choose_kernel,
    densify,
    estimate_noise,
    local_kernels,
    smooth_support,
)


@pytest.fixture(scope="module")
def torus():
    V, F = bumpy_torus(192, 96)  # fine facets: chord error 2e-4, under 0.01 δ
    rng = np.random.default_rng(0)
    C = surface_samples(V, F, 2000, random_state=rng)
    delta = mean_spacing(C)
    return V, F, C, delta, C + 0.3 * delta * rng.standard_normal(C.shape)


def test_noise_estimate_separates_clean_from_noisy(torus):
    _, _, C, _, X = torus
    clean, noisy = estimate_noise(C), estimate_noise(X)
    assert clean < 0.05 and noisy > NOISE_THRESHOLD  # measured 0.007 and 0.36 (noise 0.3 δ, fit noise on top)


def test_noisy_input_gives_output_within_half_the_input_distance(torus):
    V, F, C, delta, X = torus
    md = MeshDistance(V, F)
    d_in = md.query(X)[0].mean() / delta
    X0 = X.copy()
    res = densify(X, 20000, random_state=0)
    assert np.array_equal(X, X0)  # the input array is left as it is
    assert res.settings["noisy"] and res.settings["noise_kernel"] >= 2.5
    d = md.query(res.points)[0] / delta
    # measured 0.103 against 0.237 (0.43 ×; 0.36 × with one 3 δ kernel and two passes, which the meshes lose by)
    assert d.mean() <= 0.5 * d_in, (d.mean(), d_in)
    # without the denoising stage the same run is barely better than its input (the 0.215 vs 0.241)
    raw = densify(X, 20000, random_state=0, noise=False)
    assert md.query(raw.points)[0].mean() / delta > 0.6 * d_in


def test_local_kernels_beat_one_kernel_on_a_real_mesh():
    V, F = read_mesh(shared_data("meshes/cow.obj"))
    rng = np.random.default_rng(0)
    C = surface_samples(V, F, 2000, random_state=rng)
    delta = mean_spacing(C)
    X = C + 0.3 * delta * rng.standard_normal(C.shape)
    md = MeshDistance(V, F)
    d_in = md.query(X)[0].mean() / delta
    d0 = mean_spacing(X)
    radii, kns = local_kernels(X, spacing=d0)
    widths = set(np.round(radii / d0, 6).tolist())
    assert len(widths) >= 3 and widths <= {h for h, _ in NOISY_KERNELS}  # the cow's parts take different kernels
    hf, kn = choose_kernel(X, spacing=d0)
    one = md.query(smooth_support(X, hf * d0, neighbours=kn, passes=2))[0].mean() / delta
    local = md.query(smooth_support(X, radii, neighbours=kns, passes=1))[0].mean() / delta
    # the denoised input: measured 0.184 δ with one kernel (two passes), 0.159 δ with each point's (input 0.232 δ)
    assert local < 0.92 * one, (local, one)
    out = md.query(densify(X, 20000, random_state=0).points)[0].mean() / delta
    raw = md.query(densify(X, 20000, random_state=0, noise=False).points)[0].mean() / delta
    # the denoised run against the same run without the noise stage: measured 0.195 δ against 0.239 δ (0.84 × and
    # 1.03 × the input's 0.232 δ). The 0.5 × is met on the torus above, not on a 2,000-point cow, where
    # even the best choice of local kernel leaves 0.62 × (docs/performance.md §8)
    assert out < 0.9 * raw and out < 0.9 * d_in, (out, raw, d_in)
