r"""The interface of a candidate search: where each barycentre's training points come from.

:class:`~mmsold_cli.score.SmoothedScore` averages the softmax barycentre
:math:`\hat b_t(z + u_r)` over the M draws :math:`u_r` of each particle; a
search decides which training points each barycentre runs over and may fuse
the draws, the search and the softmax in one kernel.  It implements

``barycentre_mean(Z, t, sigma, M, rng, *, out=None, score=False) -> (m, d) array``
    the mean over the draws (``score``: :math:`(\bar b - z)/t^2` instead), written
    into ``out`` when given (which may be Z itself);
``new_particles()``
    forget what was tracked about the previous particles (a new batch starts).

The draws come from the step stream ``rng`` (:mod:`mmsold_cli.rng.streams`) at
the rows' own counters: particle p's standard normals for draw r are normals
:math:`(p\,M_g + r)\,d \dots` of the step's score key, with
:math:`M_g = M - \lfloor M/2\rfloor` generated and the first :math:`\lfloor M/2\rfloor`
mirrored (antithetic pairs) — :func:`antithetic_normals`.
"""

from __future__ import annotations

import numpy as np

from ...rng.streams import SCORE, as_step_stream

__all__ = ["Search", "antithetic_normals", "antithetic_draws", "draw_counts", "score_key"]


def draw_counts(M: int, sigma: float) -> tuple[int, int]:
    """(generated draws Mg, mirrored pairs) for M draws at smoothing σ (σ = 0: one draw, none)."""
    if sigma == 0:
        return 1, 0
    return M - M // 2, M // 2


def score_key(rng, m: int, d: int, Mg: int):
    """The step's score key and the counter of the first row when each of m rows takes Mg·d normals."""
    rng = as_step_stream(rng)
    return rng.key(SCORE), rng.start(Mg * d)


def antithetic_normals(rng, M: int, shape: tuple) -> tuple[np.ndarray, int]:
    """Standard normals for M draws in antithetic pairs, without the mirrored half.

    Returns ``(G, n_pairs)``: G of shape (M − M // 2, m, d) for shape (m, d); the draws are
    ``G[r]`` for every r and ``−G[r]`` for r < n_pairs = M // 2 (an odd M's last row is unpaired).
    Particle-major in the key, ``G[r, p] =`` normals ``start + (p Mg + r) d …``: the numbers the
    fused kernels draw themselves from the same key.
    """
    m, d = shape
    Mg = M - M // 2
    G = as_step_stream(rng).normals(SCORE, (m, Mg, d))
    return np.moveaxis(G, 1, 0), M // 2


def antithetic_draws(rng, M: int, shape: tuple, sigma: float) -> np.ndarray:
    """M Gaussian draws of standard deviation sigma in pairs (u, −u): shape (M, *shape) (σ = 0: one zero draw)."""
    if sigma == 0:
        return np.zeros((1,) + tuple(shape))
    G, k = antithetic_normals(rng, M, shape)
    return np.concatenate([sigma * G[:k], -sigma * G[:k], sigma * G[k:]], axis=0)


class Search:
    """Base class: ``name``, :meth:`barycentre_mean`, :meth:`new_particles`."""

    name = "?"

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        raise NotImplementedError

    def new_particles(self):
        """Nothing is tracked by default."""

    @staticmethod
    def finish(B, Z, t, out, score):
        """``B`` (the mean barycentre) as the result: the score if asked, in ``out`` if given."""
        if score:
            B -= Z  # in place: (b − z)/t² without more (m, d) temporaries
            B /= t * t
        if out is None:
            return B
        out[...] = B
        return out
