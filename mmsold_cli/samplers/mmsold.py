"""MM-SOLD: every ensemble held at the target's mean and covariance exactly (see :mod:`.langevin`)."""

from __future__ import annotations

from .langevin import LangevinKernel

__all__ = ["MMSOLD"]


class MMSOLD(LangevinKernel):
    """Moment-matched score-smoothed Langevin dynamics: :math:`Y \\leftarrow R(Y + \\Pi_Y(D))`."""

    constrained = True

    def move(self, y, displacement):
        self.backend.manifold_step(y, displacement)  # the projection is linear: drift and noise together
