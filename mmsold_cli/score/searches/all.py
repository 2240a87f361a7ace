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
        from ..smoothed import barycentre_exact

        m, d = Z.shape
        U = antithetic_draws(rng, M, Z.shape, sigma)
        B = barycentre_exact(self.X, (Z[None] + U).reshape(-1, d), t).reshape(U.shape[0], m, d).mean(axis=0)
        return self.finish(B, Z, t, out, score)
