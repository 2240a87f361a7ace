"""Naive SOLD: the same preconditioned Langevin dynamics with no moment constraint (see :mod:`.langevin`)."""

from __future__ import annotations

from .langevin import LangevinKernel

__all__ = ["SOLD"]


class SOLD(LangevinKernel):
    """Score-smoothed Langevin dynamics without projection or retraction: :math:`Y \\leftarrow Y + D`."""

    constrained = False

    def move(self, y, displacement):
        y += displacement
