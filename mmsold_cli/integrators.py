r"""Integrators for overdamped Langevin dynamics, as tiny step helpers.

Each integrator maps the current drift :math:`G` (the score pulled back to the
sampler's coordinates), the step size :math:`h` and its own state to a drift
displacement, a unit-variance noise increment :math:`\bar\xi` and the new
state; the sampler then moves by ``drift + sqrt(2h) * noise`` (projected, for
MM-SOLD).  Integrators are chosen by module-level functions, not flags.

Leimkuhler–Matthews [1]_ (the default): :math:`\bar\xi_k = (\xi_k+\xi_{k+1})/2`,
one fresh Gaussian a step, second-order accurate for the invariant measure.

Euler–Maruyama: :math:`\bar\xi_k = \xi_k`.

References
----------
.. [1] B. Leimkuhler, C. Matthews, "Rational construction of stochastic
   numerical methods for molecular sampling", AMRX 2013(1):34–56.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INTEGRATORS", "leimkuhler_matthews", "euler_maruyama", "get_integrator"]


def leimkuhler_matthews(G, h, rng, state):
    """Drift ``h G`` and noise ``(ξ_prev + ξ)/2``; the state is ξ_prev (None at the start)."""
    if state is None:
        state = rng.standard_normal(G.shape)
    xi = rng.standard_normal(G.shape)
    return h * G, 0.5 * (state + xi), xi


def euler_maruyama(G, h, rng, state):
    """Drift ``h G`` and noise ``ξ``; no state."""
    return h * G, rng.standard_normal(G.shape), None


INTEGRATORS = {"lm": leimkuhler_matthews, "em": euler_maruyama}


def get_integrator(name: str):
    """The step helper registered under ``name``."""
    from .errors import MmsoldError

    try:
        return INTEGRATORS[name]
    except KeyError:
        raise MmsoldError(f"integrator must be one of {', '.join(INTEGRATORS)}, got {name!r}") from None
