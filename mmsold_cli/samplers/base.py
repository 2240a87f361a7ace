r"""The sampler kernel interface.

A sampler is a small kernel object; the driver (:func:`mmsold_cli.sampling.sample`)
owns the loop, the batching, the diagnostics, the progress and the output:

.. code-block:: python

    state = kernel.init(start, target)          # start: (E, P, d) positions
    for i, (t, h) in enumerate(zip(schedule.t, schedule.h)):
        state, info = kernel.step(state, score, t, h, rng.at(i))
    samples = kernel.positions(state)

where
    * ``start`` holds E ensembles of P particles in data coordinates (the driver
      draws them from :mod:`mmsold_cli.samplers.inits`, from the law the kernel's
      ``start_law(target)`` names, a :class:`StartLaw`),
    * ``target`` is a :class:`Target` (the moments an ensemble is held at),
    * ``score(Z, t, rng, out=None)`` is the smoothed score
      (:class:`mmsold_cli.score.SmoothedScore`) at the rows of a (m, d) array,
      written into ``out`` when given (which may be Z),
    * ``rng`` a :class:`mmsold_cli.rng.streams.StepStream`: the step's keys at the
      batch's own row counters,
    * ``info`` a :class:`StepInfo` (at least the score the step used).

A kernel may also define ``moment_error(state, t, h) -> (mean_err, cov_err)``
(relative errors per ensemble of the positions after the step); the driver
otherwise compares :meth:`positions` with ``target``.  A new sampler is one new
module with such a class and one entry in :data:`mmsold_cli.samplers.SAMPLERS`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Target", "StepInfo", "StartLaw"]


class Target(NamedTuple):
    """The moments every ensemble is held at: mean (d,), covariance (d, d) and a factor L, L Lᵀ = covariance.

    L is the lower Cholesky factor (d, d), or (d, r) over a singular covariance's support
    (:func:`mmsold_cli.sampling.support_factor`); the kernels' Y coordinates then have r columns.
    """

    mean: np.ndarray
    cov: np.ndarray
    chol: np.ndarray


class StepInfo(NamedTuple):
    """What a step reports: the score it used, shape (E, P, d) (overwritten by the next step)."""

    score: np.ndarray


class StartLaw(NamedTuple):
    """Where a kernel's particles start: the blurred training law :math:`a\\,x_i + s\\,\\varepsilon` (the
    ``data``, ``moments`` and ``gmm`` starts of :mod:`mmsold_cli.samplers.inits`), and the Gaussian
    ``mean + ξ cholᵀ`` that is the kernel's own standard normal (the ``gaussian`` start)."""

    a: float
    s: float
    mean: np.ndarray
    chol: np.ndarray
