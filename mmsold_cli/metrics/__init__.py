"""Sample quality: distribution metrics (any dimension) and surface metrics (3-D clouds)."""

from .evaluate import evaluate_all
from .points import *  # noqa: F401,F403
from .points import __all__ as _points_all
from .surface import *  # noqa: F401,F403
from .surface import __all__ as _surface_all

__all__ = list(_points_all) + list(_surface_all) + ["evaluate_all"]
