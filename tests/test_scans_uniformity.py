"""PU-GAN's uniformity: lower for evenly spread points than for random ones, and for random than clustered."""

import numpy as np
import pytest

from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.uniformity import farthest_points, uniformity


def _fibonacci(n):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    a = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.c_[r * np.cos(a), r * np.sin(a), z]


def test_uniformity_orders_even_random_and_clustered_points(rng):
    n = 3000
    even = _fibonacci(n)
    v = rng.standard_normal((n, 3))
    random = v / np.linalg.norm(v, axis=1, keepdims=True)
    w = rng.standard_normal((n, 3)) * [1, 1, 3]  # a density 8:1 or so between the poles and the equator
    clustered = w / np.linalg.norm(w, axis=1, keepdims=True)
    area = 4 * np.pi
    u = [uniformity(P, area=area, seeds=200) for P in (even, random, clustered)]
    for key in u[0]:
        assert u[0][key] < u[1][key] < u[2][key], (key, [x[key] for x in u])
    est = uniformity(random, seeds=200)  # area 4 N δ̄², right in expectation for independent points
    assert 0.5 < est["uniformity_1.0%"] / u[1]["uniformity_1.0%"] < 2


def test_farthest_points_spread_and_bad_input():
    P = _fibonacci(500)
    idx = farthest_points(P, 20)
    assert len(set(idx.tolist())) == 20
    d = np.linalg.norm(P[idx][:, None] - P[idx][None], axis=2) + 10 * np.eye(20)
    assert d.min() > 0.5  # 20 points over a unit sphere, spread: far apart
    with pytest.raises(MmsoldError, match="at least 10 points"):
        uniformity(np.zeros((5, 3)))
