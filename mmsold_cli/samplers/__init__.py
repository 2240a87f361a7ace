"""Sampler kernels (MM-SOLD, naive SOLD, σ-CFDM), their integrators, schedules and starts.

A sampler is a kernel with ``init(start, target) -> state``, ``step(state, score, t, h, rng) ->
(state, info)`` and ``positions(state)`` (:mod:`.base`), built by ``from_config(config, backend)``;
the driver :func:`mmsold_cli.sampling.sample` owns the loop.  A new sampler is one module and one
entry in :data:`SAMPLERS`.
"""

from .base import StartLaw, StepInfo, Target
from .cfdm import CFDM
from .mmsold import MMSOLD
from .sold import SOLD

__all__ = ["SAMPLERS", "Target", "StepInfo", "StartLaw", "MMSOLD", "SOLD", "CFDM"]

#: Sampler kernels by name.
SAMPLERS = {"mmsold": MMSOLD, "sold": SOLD, "cfdm": CFDM}
