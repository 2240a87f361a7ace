"""Toy data sets with known generators, for demos, tests and benchmarks.

The 2-D suite (moons, swiss roll, 8 Gaussians, checkerboard) follows the
shapes common in the generative-modelling literature; a benchmark can draw
fresh points from the same law as the bundled files.  ``bumpy_torus`` is a
procedurally built triangle mesh whose area-weighted surface samples stand in
for a scanned point cloud.
"""

from __future__ import annotations

import numpy as np

from .validation import check_random_state

__all__ = ["moons", "swiss_roll", "eight_gaussians", "checkerboard", "TOY_2D", "bumpy_torus", "surface_samples"]


def moons(n: int, random_state=None, noise: float = 0.05) -> np.ndarray:
    """Two interleaved half circles of radius 1, Gaussian noise ``noise``: array of shape (n, 2)."""
    rng = check_random_state(random_state)
    upper = rng.random(n) < 0.5
    a = np.pi * rng.random(n)
    x = np.where(upper, np.cos(a), 1.0 - np.cos(a))
    y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
    return np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))


def swiss_roll(n: int, random_state=None, noise: float = 0.25) -> np.ndarray:
    """A 2-D spiral ``(s cos s, s sin s)/5`` with s ∈ [1.5π, 4.5π]: array of shape (n, 2)."""
    rng = check_random_state(random_state)
    s = 1.5 * np.pi * (1 + 2 * rng.random(n))
    pts = np.stack([s * np.cos(s), s * np.sin(s)], axis=1) + noise * rng.standard_normal((n, 2))
    return pts / 5.0


def eight_gaussians(n: int, random_state=None, radius: float = 2.0, std: float = 0.1) -> np.ndarray:
    """Eight equal Gaussians on a circle: array of shape (n, 2)."""
    rng = check_random_state(random_state)
    k = rng.integers(0, 8, n)
    ang = 2 * np.pi * k / 8
    centres = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return centres + std * rng.standard_normal((n, 2))


def checkerboard(n: int, random_state=None) -> np.ndarray:
    """Uniform on the black squares of a 4×4 board of side 4 (coordinates in [−4, 4]): shape (n, 2)."""
    rng = check_random_state(random_state)
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2
    x2 = x2 + (np.floor(x1) % 2)
    return 2.0 * np.stack([x1, x2], axis=1)


TOY_2D = {"moons": moons, "swiss_roll": swiss_roll, "8gaussians": eight_gaussians, "checkerboard": checkerboard}


def bumpy_torus(n_major: int = 48, n_minor: int = 24, R: float = 1.0, r: float = 0.35, bumps: float = 0.08):
    """A torus whose tube radius varies with both angles, as a closed triangle mesh.

    Returns
    -------
    vertices : array of shape (n_major * n_minor, 3)
    faces : array of shape (2 * n_major * n_minor, 3), int64
    """
    u = 2 * np.pi * np.arange(n_major) / n_major
    v = 2 * np.pi * np.arange(n_minor) / n_minor
    U, V = np.meshgrid(u, v, indexing="ij")
    rr = r * (1 + bumps / r * np.sin(3 * U) * np.cos(2 * V))
    verts = np.stack([(R + rr * np.cos(V)) * np.cos(U), (R + rr * np.cos(V)) * np.sin(U), rr * np.sin(V)], axis=-1)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    e = i * n_minor + (j + 1) % n_minor
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, e], -1).reshape(-1, 3)])
    return verts.reshape(-1, 3), faces.astype(np.int64)


def surface_samples(vertices, faces, n: int, random_state=None) -> np.ndarray:
    """n points uniform on a triangle mesh (area-weighted triangle, uniform barycentric): shape (n, 3)."""
    rng = check_random_state(random_state)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    f = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = tri[f]
    return t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
