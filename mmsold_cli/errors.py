"""The one user-facing error type.

Every problem caused by the user's input (files, data, options) is raised as
:class:`MmsoldError`.  The CLI turns it into a single line on stderr and exit
code 2; library users catch it like any ``ValueError``.
"""

__all__ = ["MmsoldError", "MmsoldWarning"]


class MmsoldError(ValueError):
    """Bad input: a file, an array or an option that cannot be used.

    The message names what was expected and what was received.
    """


class MmsoldWarning(UserWarning):
    """Input that is usable but suspicious (e.g. a singular covariance)."""
