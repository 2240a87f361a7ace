"""Reading and writing point sets, meshes and model files; atomic output.

Every writer goes through a temporary file beside its target and
``os.replace``, so an interrupted or failed write leaves nothing behind.
"""

from .arrays import *  # noqa: F401,F403
from .arrays import __all__ as _arrays_all
from .mesh import *  # noqa: F401,F403
from .mesh import __all__ as _mesh_all

__all__ = list(_arrays_all) + list(_mesh_all)
