"""Neighbour search over the training set: exact and approximate indexes, the cell grid, tracking.

The numba kernels live in :mod:`~mmsold_cli.neighbors.grid_numba`, :mod:`~mmsold_cli.neighbors.brute_numba` and
:mod:`~mmsold_cli.neighbors.tracking_numba`, imported on first use.
"""

from .indexes import *  # noqa: F401,F403
from .indexes import __all__ as __all__
