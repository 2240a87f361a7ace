"""Counter-based random numbers: normals from a Philox key, any range filled by any thread.

The numba kernels live in :mod:`mmsold_cli.rng.normals_numba`, imported on first use.
"""

from .normals import *  # noqa: F401,F403
from .normals import __all__ as __all__
