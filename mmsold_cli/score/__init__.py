"""The closed-form score of the blurred training set and its smoothed Monte Carlo estimate."""

from .smoothed import *  # noqa: F401,F403
from .smoothed import __all__ as __all__
