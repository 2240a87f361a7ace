"""The array backend, chosen once per run: NumPy (the reference and test oracle) or numba kernels.

A sampler asks its :class:`Backend` for the per-step ensemble work — positions from
the state, the manifold step, the moment checks and, where one exists, the fused
Langevin step — and never checks dimensions or imports kernels itself.  The numba
kernels for the d × d work per ensemble are written for small d
(:data:`mmsold_cli.samplers.stiefel_numba.MAX_DIM`); above it the numba backend
uses the NumPy functions for that work (the score kernels, which dominate, stay
numba).  This module is the one place that rule lives.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .errors import MmsoldError

__all__ = ["Backend", "BACKENDS", "get_backend"]

#: Backend names.
BACKENDS = ("numba", "numpy")


class Backend(NamedTuple):
    """The functions a sampler kernel calls on (E, P, d) stacks of ensembles.

    Attributes
    ----------
    name : str
        ``"numba"`` or ``"numpy"``: also what the score's candidate searches use.
    to_z : callable ``(Y, mean, chol) -> Z``
        Positions :math:`Z = \\mathbf 1\\mu^\\top + Y L^\\top`.
    to_y : callable ``(Z, mean, chol) -> Y``
    manifold_step : callable ``(Y, D) -> Y``
        :math:`R(Y + \\Pi_Y(D))`, written over Y.
    moment_error : callable ``(Z, mean, cov) -> (mean_err, cov_err)``
        Relative errors per ensemble.
    moment_error_y : callable ``(Y, chol, cov) -> (mean_err, cov_err)``
        The same errors for the positions of Y, without making them.
    langevin_step : callable or None
        ``(Y, S, h, chol, key, prev_key, start, *, lm)``: pull-back, LM/EM noise and manifold
        step fused in one pass, in place; None where the backend has none.
    """

    name: str
    to_z: Callable
    to_y: Callable
    manifold_step: Callable
    moment_error: Callable
    moment_error_y: Callable
    langevin_step: Optional[Callable]


def _numpy_backend() -> Backend:
    from .samplers import stiefel

    return Backend("numpy", stiefel.to_z, stiefel.to_y, lambda Y, D: stiefel.step(Y, D, out=Y),
                   stiefel.moment_error, stiefel.moment_error_y, None)


def get_backend(name: str, d: int) -> Backend:
    """The backend ``name`` for d-dimensional ensembles."""
    if name not in BACKENDS:
        raise MmsoldError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    base = _numpy_backend()
    if name == "numpy":
        return base
    from .samplers import stiefel_numba

    if d > stiefel_numba.MAX_DIM:  # the score kernels stay numba; the d × d work is BLAS-sized
        return base._replace(name="numba")
    return Backend("numba", stiefel_numba.to_z, base.to_y,
                   lambda Y, D: stiefel_numba.step(Y, D, out=Y), stiefel_numba.moment_error,
                   stiefel_numba.moment_error_y, stiefel_numba.langevin_step)
