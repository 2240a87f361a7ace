"""Toy data sets with known generators, for demos, tests and benchmarks.

The 2-D suite (moons, swiss roll, 8 Gaussians, checkerboard) follows the
shapes common in the generative-modelling literature; a benchmark can draw
fresh points from the same law as the bundled files.  ``bumpy_torus`` is a
procedurally built triangle mesh whose area-weighted surface samples stand in
for a scanned point cloud; ``capped_cylinder`` and ``bevelled_box`` are
CAD-like meshes with sharp creases (:func:`crease_segments` lists them).
"""

from __future__ import annotations

import numpy as np

from .validation import check_random_state

__all__ = ["moons", "swiss_roll", "eight_gaussians", "checkerboard", "TOY_2D", "bumpy_torus", "surface_samples",
           "capped_cylinder", "bevelled_box", "crease_segments", "segment_distance"]


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


def capped_cylinder(r: float = 1.0, h: float = 2.0, seg: int = 512, rings: int = 64):
    """A closed cylinder of radius r and height h (axis z, from 0 to h) with flat caps: (vertices, faces).

    Two circular creases of 90° at z = 0 and z = h; ``seg`` facets around (chord error r(1 − cos(π/seg))).
    """
    a = 2 * np.pi * np.arange(seg) / seg
    z = np.linspace(0, h, rings + 1)
    side = np.stack([np.tile(r * np.cos(a), rings + 1), np.tile(r * np.sin(a), rings + 1), np.repeat(z, seg)], 1)
    i, j = np.meshgrid(np.arange(rings), np.arange(seg), indexing="ij")
    p = (i * seg + j).ravel()
    q = (i * seg + (j + 1) % seg).ravel()
    faces = [np.stack([p, q, q + seg], 1), np.stack([p, q + seg, p + seg], 1)]
    c0, c1, top = len(side), len(side) + 1, rings * seg
    jj = np.arange(seg)
    faces += [np.stack([np.full(seg, c0), (jj + 1) % seg, jj], 1),
              np.stack([np.full(seg, c1), top + jj, top + (jj + 1) % seg], 1)]
    return np.r_[side, [[0, 0, 0], [0, 0, h]]], np.concatenate(faces)


def bevelled_box(a: float = 1.0, b: float = 0.75, c: float = 0.5, bevel: float = 0.2):
    """A box of half-sides a, b, c with its 12 edges chamfered at 45° (``bevel`` cut from each side): (V, F).

    The convex hull of three points per corner: 26 flat faces (6 sides, 12 bevels, 8 corner triangles)
    meeting at creases of 135° (side–bevel) and about 145° (bevel–corner triangle).
    """
    from scipy.spatial import ConvexHull

    pts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            for sz in (-1, 1):
                pts += [(sx * (a - bevel), sy * (b - bevel), sz * c), (sx * (a - bevel), sy * b, sz * (c - bevel)),
                        (sx * a, sy * (b - bevel), sz * (c - bevel))]
    hull = ConvexHull(np.array(pts, dtype=np.float64))
    return hull.points, hull.simplices


def crease_segments(vertices, faces, angle: float = 20.0) -> np.ndarray:
    """Mesh edges whose two triangles' normals differ by more than ``angle`` degrees: array (s, 2, 3)."""
    V, F = np.asarray(vertices, dtype=np.float64), np.asarray(faces)
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    edges = {}
    for t, tri in enumerate(F.tolist()):
        for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            edges.setdefault(tuple(sorted(e)), []).append(t)
    cos = np.cos(np.radians(angle))
    segs = [e for e, ts in edges.items() if len(ts) == 2 and abs(n[ts[0]] @ n[ts[1]]) < cos]
    return V[np.array(segs, dtype=np.int64).reshape(-1, 2)]


def segment_distance(P, segments) -> np.ndarray:
    """Distance from each point of P (m, 3) to the nearest of the segments (s, 2, 3)."""
    P, S = np.asarray(P, dtype=np.float64), np.asarray(segments, dtype=np.float64)
    A, AB = S[:, 0], S[:, 1] - S[:, 0]
    out = np.empty(len(P))
    for s in range(0, len(P), 4096):
        D = P[s : s + 4096, None, :] - A
        t = np.clip(np.einsum("psd,sd->ps", D, AB) / np.einsum("sd,sd->s", AB, AB), 0.0, 1.0)
        out[s : s + 4096] = np.linalg.norm(D - t[..., None] * AB, axis=2).min(axis=1)
    return out
