r"""Random streams of a run, derived from (seed, ensemble index) and (seed, step, row).

A run of N samples is cut into ensembles (:func:`mmsold_cli.sampling.ensemble_layout`);
ensemble :math:`e` holds rows :math:`r_e \dots r_{e+1}-1` of the output.  Every random
number the run draws is a pure function of the seed and of where it is used:

* an ensemble's start comes from a NumPy generator seeded by
  ``SeedSequence(entropy, spawn_key=(START, e))``;
* the draws of step :math:`i` (score perturbations, Langevin noise, remainder points)
  come from one Philox key per (purpose, step),
  ``SeedSequence(entropy, spawn_key=(purpose, i + 1)).generate_state(2)``, at the
  counter of the row: row :math:`r` takes normals :math:`r\,m \dots (r+1)\,m-1` of the
  key when each row needs :math:`m` of them (:func:`mmsold_cli.rng.normals.from_key`).

So a batch of ensembles, a shard on another machine or a single ensemble on its own
draws exactly the numbers the whole run gives those rows, whatever the batch size,
the thread count or the split; and the key of step :math:`i-1` is known at step
:math:`i` without being stored (the Leimkuhler–Matthews integrator reuses it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunStream", "StepStream", "as_step_stream", "SCORE", "NOISE", "START", "REMAINDER", "MIXTURE", "new_entropy"]

#: Purposes: the first word of every spawn key, so no two uses share numbers.
START, SCORE, NOISE, REMAINDER, MIXTURE = 1, 2, 3, 4, 5


def new_entropy() -> int:
    """Fresh entropy for a run without a seed (then held for the whole run, every shard alike)."""
    return int(np.random.SeedSequence().entropy)


class RunStream:
    """The random numbers of rows ``row0 …`` of a run (a batch or a shard of its ensembles).

    Parameters
    ----------
    entropy : int
        The run's seed (``random_state``) or :func:`new_entropy`.
    row0 : int
        Index, in the whole run, of this stream's first row.
    kernel : bool
        Make normals with the numba kernel (True) or NumPy's Philox (False): the same numbers.
    """

    def __init__(self, entropy: int, row0: int = 0, kernel: bool = True):
        self.entropy = int(entropy)
        self.row0 = int(row0)
        self.kernel = bool(kernel)

    def _seq(self, *spawn_key) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.entropy, spawn_key=tuple(int(k) for k in spawn_key))

    def key(self, purpose: int, step: int) -> np.ndarray:
        """The Philox key of ``purpose`` at ``step`` (step −1 is valid: the start's)."""
        return self._seq(purpose, step + 1).generate_state(2, np.uint64)

    def ensemble_rng(self, e: int, purpose: int = START) -> np.random.Generator:
        """A generator for ensemble ``e`` of the run (its index in the whole run)."""
        return np.random.default_rng(self._seq(purpose, 0, e))

    def run_rng(self, purpose: int) -> np.random.Generator:
        """A generator shared by the whole run (e.g. a start mixture fitted once)."""
        return np.random.default_rng(self._seq(purpose, 1))

    def at(self, step: int) -> "StepStream":
        """The numbers of one step."""
        return StepStream(self, step)


class StepStream:
    """The random numbers of one step for the rows of a :class:`RunStream`.

    ``key(purpose)`` is the step's key, ``key(purpose, lag=1)`` the previous step's;
    ``start(per_row)`` the counter of this stream's first row when each row takes
    ``per_row`` numbers of a key.
    """

    def __init__(self, run: RunStream, step: int):
        self.run = run
        self.step = int(step)

    def key(self, purpose: int, lag: int = 0) -> np.ndarray:
        return self.run.key(purpose, self.step - lag)

    def start(self, per_row: int, row: int = 0) -> int:
        """Counter of row ``row`` of this stream (numbers ``per_row`` a row)."""
        return (self.run.row0 + int(row)) * int(per_row)

    def normals(self, purpose: int, shape, row: int = 0, lag: int = 0, out=None) -> np.ndarray:
        """Normals for rows ``row …`` of this stream: shape (rows, …), each row's numbers consecutive."""
        from .normals import from_key

        per_row = int(np.prod(shape[1:], dtype=np.int64))
        return from_key(self.key(purpose, lag), shape, start=self.start(per_row, row), out=out, kernel=self.run.kernel)

    def words(self, purpose: int, shape, row: int = 0) -> np.ndarray:
        """Uniform 64-bit words for rows ``row …``, laid out as :meth:`normals` (uint64)."""
        from .normals import words_from_key

        per_row = int(np.prod(shape[1:], dtype=np.int64))
        return words_from_key(self.key(purpose), shape, start=self.start(per_row, row))


def as_step_stream(rng) -> StepStream:
    """``rng`` as a :class:`StepStream`: itself, or for a NumPy generator a fresh run drawn from it.

    The library's own loop passes step streams; a generator (or a seed) is accepted where a score or
    an integrator is called on its own, e.g. in a notebook, and then draws new numbers each call.
    """
    if isinstance(rng, StepStream):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(rng)
    return RunStream(int(rng.integers(2**63)), 0).at(0)
