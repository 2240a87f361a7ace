"""``all``: every training point in every barycentre (dense BLAS) — the exact, brute-force score for given draws."""

from __future__ import annotations

from .base import Search, antithetic_draws

__all__ = ["AllPoints"]


class AllPoints(Search):
    """Exact barycentres over all n points (:func:`mmsold_cli.score.smoothed.barycentre_exact`)."""

    name = "all"

    def __init__(self, X):
        self.X = X

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        import numpy as np

        from ...rng.streams import as_step_stream
        from ..smoothed import barycentre_exact

        rng = as_step_stream(rng)
        U = antithetic_draws(rng, M, Z.shape, sigma)
        B = np.zeros(Z.shape)
        for u in U:  # blocks placed by the rows' index in the run: the same numbers in any batch
            B += barycentre_exact(self.X, Z + u, t, row0=rng.start(1))
        B /= U.shape[0]
        return self.finish(B, Z, t, out, score)
