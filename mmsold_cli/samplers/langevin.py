r"""Overdamped Langevin kernels on the smoothed closed-form score: what MM-SOLD and naive SOLD share.

MM-SOLD [1]_ moves a stack of ensembles :math:`Y\in\mathcal M` (see
:mod:`mmsold_cli.samplers.stiefel`), particles :math:`Z = \mathbf 1\hat\mu^\top + Y L^\top`:

.. math::

    G &= S L \qquad\text{(pull-back: } Z = YL^\top \Rightarrow \nabla_Y = \nabla_Z L\text{, eq. 34 of [1])}\\
    \tilde Y &= Y + h\,\Pi_Y(G) + \sqrt{2h}\,\Pi_Y(\bar\xi)\\
    Y &\leftarrow R(\tilde Y)

Naive SOLD is the same preconditioned dynamics without the constraint,
:math:`Z \leftarrow Z + h\hat\Sigma S + \sqrt{2h}\,L\bar\xi`, written in the
same Y coordinates (:math:`\Delta Z = \Delta Y L^\top`).

where
    * :math:`S` is the (P, d) matrix of smoothed scores at the rows of Z,
    * :math:`L` the lower Cholesky factor of the target covariance :math:`\hat\Sigma`,
    * :math:`\Pi_Y` the tangent projection and :math:`R` the polar retraction,
    * :math:`\bar\xi` the integrator's noise (see :mod:`mmsold_cli.samplers.integrators`).

The authors' code multiplies by :math:`L^\top`; the gradient of
:math:`\sum_i V(z_i)` in Y is :math:`G_Z L`, which the tests check by finite
differences on an anisotropic, rotated data set.

References
----------
.. [1] Z. Yao, D. Paulin, "Training-Free Generative Sampling via Moment-Matched
   Score Smoothing", arXiv:2605.14276, 2026.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import StartLaw, StepInfo, Target
from .integrators import Noise, get_integrator

__all__ = ["LangevinState", "LangevinKernel", "pullback"]


class LangevinState(NamedTuple):
    """Y of shape (E, P, d) (updated in place by the steps), the target, each chunk's integrator state."""

    y: np.ndarray
    target: Target
    integrator: tuple


def pullback(S: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Score in Y coordinates, :math:`G = S L`: array of the shape of S (L of shape (d,): its diagonal)."""
    return S * chol if chol.ndim == 1 else np.matmul(S, chol)


def ensemble_chunks(shape):
    """Ranges of whole ensembles of about 256 KB: the unfused step goes chunk by chunk.

    An ensemble's step involves its own rows only, so chunks change the memory
    (the drift and noise temporaries stay small), not the numbers.
    """
    E, P, d = shape
    per = max(1, (1 << 18) // (8 * P * d))
    return [(a, min(a + per, E)) for a in range(0, E, per)]


class LangevinKernel:
    """Preconditioned overdamped Langevin dynamics in Y coordinates (subclasses: MM-SOLD, SOLD).

    Parameters
    ----------
    backend : mmsold_cli.backend.Backend
    t : float
        The noise level of the blurred law (the start's blur).
    integrator : str or callable
        A name of :data:`mmsold_cli.samplers.integrators.INTEGRATORS`, or such a function
        (e.g. ``functools.partial(adaptive_momentum, beta_max=0.0)``).
    """

    #: Project and retract each step (MM-SOLD) or not (SOLD).
    constrained = True

    def __init__(self, backend, t: float, integrator: str = "lm"):
        self.backend = backend
        self.t = float(t)
        if callable(integrator):
            self.integrator_name, self.integrator = getattr(integrator, "__name__", "custom"), integrator
        else:
            self.integrator_name, self.integrator = integrator, get_integrator(integrator)

    @classmethod
    def from_config(cls, config, backend):
        return cls(backend, config.t, config.integrator)

    def start_law(self, target: Target) -> StartLaw:
        """Training points plus N(0, t² I), the blurred law the score targets; Gaussian: N(μ, Σ), i.e. Y ~ N(0, I)."""
        return StartLaw(1.0, self.t, target.mean, target.chol)

    def init(self, start: np.ndarray, target: Target) -> LangevinState:
        """The state of start positions (E, P, d) (the array is reused; retracted for MM-SOLD)."""
        from . import stiefel

        y = self.backend.to_y(start, target.mean, target.chol)
        if self.constrained:
            y = stiefel.retract(y)
        return LangevinState(y, target, (None,) * len(ensemble_chunks(y.shape)))

    def positions(self, state: LangevinState) -> np.ndarray:
        """:math:`Z = \\mathbf 1\\mu^\\top + Y L^\\top`: a new (E, P, d) array."""
        return self.backend.to_z(state.y, state.target.mean, state.target.chol)

    def moment_error(self, state: LangevinState, t: float, h: float):
        """Relative mean and covariance errors per ensemble, from Y (no positions made)."""
        return self.backend.moment_error_y(state.y, state.target.chol, state.target.cov)

    def step(self, state: LangevinState, score, t: float, h: float, rng):
        """One step: the score at the positions (written over them), then the move of Y in place."""
        y, target, integ = state
        E, P, d = y.shape  # d: Y's columns, fewer than Z's when the target is held on a support
        z = self.positions(state)
        D = z.shape[-1]
        s = score(z.reshape(-1, D), t, rng, out=z.reshape(-1, D)).reshape(z.shape)
        del z  # the score took its place
        if self.constrained and self.backend.langevin_step is not None and self.integrator_name in ("lm", "em"):
            from ..rng.streams import NOISE

            self.backend.langevin_step(y, s, h, target.chol, rng.key(NOISE), rng.key(NOISE, lag=1),
                                       rng.start(d), lm=self.integrator_name == "lm")
            return state, StepInfo(s)
        new = list(integ)
        for c, (a, b) in enumerate(ensemble_chunks(y.shape)):
            drift, noise, new[c] = self.integrator(pullback(s[a:b], target.chol), h, Noise(rng, (b - a, P, d), a * P),
                                                   integ[c])
            noise *= np.sqrt(2 * h)  # the displacement, built in the noise array
            noise += drift
            del drift
            self.move(y[a:b], noise)
        return state._replace(integrator=tuple(new)), StepInfo(s)

    def move(self, y, displacement):
        """Apply a displacement to a chunk of Y in place."""
        raise NotImplementedError
