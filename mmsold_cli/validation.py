"""Validation of user arrays and options, in one place.

The library calls these once at its entry points; the CLI only turns the
:class:`~mmsold_cli.errors.MmsoldError` they raise into a message.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import MmsoldError

__all__ = ["check_points", "check_spread", "check_positive", "check_int", "check_seed", "check_random_state", "MAX_ABS"]

#: Largest coordinate magnitude accepted.  Covariance entries are squares of
#: coordinates and their norms square them again, so coordinates must stay far
#: below float64's 1.8e308 ** (1/4) ≈ 1e77.
MAX_ABS = 1e50
#: Smallest spread accepted, relative to the largest coordinate magnitude: below
#: it the points differ only in their last few float64 digits.
MIN_REL_SPREAD = 1e-12
#: Smallest absolute spread (standard deviation along the widest direction),
#: the mirror image of :data:`MAX_ABS` (squares of squares must not underflow).
MIN_SPREAD = 1e-50


def _dtype_problem(dtype: np.dtype) -> str | None:
    kind = dtype.kind
    if kind in "biuf":
        return None
    if kind == "c":
        return f"expected real numbers, got complex numbers (dtype {dtype})"
    if kind == "V" and dtype.names:
        return (f"expected a plain numeric array, got a structured array with fields {', '.join(dtype.names)}; "
                "stack the coordinate fields into an (n, d) array")
    if kind in "US":
        return f"expected numbers, got text (dtype {dtype})"
    if kind == "O":
        return "expected numbers, got Python objects (dtype object)"
    return f"expected numbers, got dtype {dtype}"


def check_points(arr, *, name: str = "data", min_points: int = 1, dim: int | None = None) -> np.ndarray:
    """Return ``arr`` as a finite float64 array of shape (n, d) or raise.

    Refused, each with a message naming ``name`` and the problem: non-numeric
    dtypes (text, objects, complex, structured), arrays that are not 2-D,
    empty arrays, fewer than ``min_points`` rows, a wrong number of columns,
    rows with NaN or infinity (counted), and coordinates beyond
    :data:`MAX_ABS` in magnitude.

    Parameters
    ----------
    arr : array-like
    name : str
        Used in messages (usually the file name).
    min_points : int
        Fewest rows accepted.
    dim : int, optional
        Required number of columns.

    Returns
    -------
    X : ndarray of shape (n, d), float64, C-contiguous
    """
    a = np.asarray(arr)
    problem = _dtype_problem(a.dtype)
    if problem:
        raise MmsoldError(f"{name}: {problem}")
    if a.ndim != 2:
        if a.ndim == 1:
            raise MmsoldError(
                f"{name}: expected a 2-D array of shape (n, d), got a 1-D array of length {a.shape[0]}; "
                "reshape it to (n, 1) for 1-D data"
            )
        raise MmsoldError(f"{name}: expected a 2-D array of shape (n, d), got shape {a.shape}")
    n, d = a.shape
    if n == 0 or d == 0:
        raise MmsoldError(f"{name}: is empty (shape {a.shape})")
    if n < min_points:
        raise MmsoldError(f"{name}: expected at least {min_points} points, got {n}")
    if dim is not None and d != dim:
        raise MmsoldError(f"{name}: expected dimension {dim}, got {d}")
    a = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        bad = int((~finite).sum())
        first = int(np.flatnonzero(~finite)[0])
        raise MmsoldError(f"{name}: {bad} of {n} rows contain NaN or infinity (first at row {first})")
    big = float(np.abs(a).max())
    if big > MAX_ABS:
        raise MmsoldError(
            f"{name}: coordinates up to {big:.3g} in magnitude; moments (sums of squares of squares) would overflow "
            f"float64 (limit {MAX_ABS:.0e}); rescale the data"
        )
    return np.ascontiguousarray(a)


def check_spread(X: np.ndarray, lam_max: float, *, name: str = "data") -> None:
    """Refuse points whose spread float64 cannot resolve.

    Parameters
    ----------
    X : array of shape (n, d)
        Checked points (see :func:`check_points`).
    lam_max : float
        Largest eigenvalue of their covariance.
    name : str
        Used in messages.
    """
    if not np.ptp(X, axis=0).any():
        raise MmsoldError(f"{name}: all {X.shape[0]} points are identical (zero covariance); nothing to sample")
    spread = float(np.sqrt(max(lam_max, 0.0)))
    big = float(np.abs(X).max())
    if spread < MIN_SPREAD or spread < MIN_REL_SPREAD * big:
        raise MmsoldError(
            f"{name}: the points spread by {spread:.3g} around coordinates of magnitude {big:.3g}; "
            "float64 cannot resolve differences that small; centre and rescale the data"
        )


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite positive float (or non-negative with ``allow_zero``); a bool or a string is not a number here."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise MmsoldError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise MmsoldError(f"{name} must be a finite number {'≥ 0' if allow_zero else '> 0'}, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise MmsoldError(f"{name} must be {'≥ 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MmsoldError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise MmsoldError(f"{name} must be ≥ {low}, got {v}")
    if high is not None and v > high:
        raise MmsoldError(f"{name} must be ≤ {high}, got {v}")
    return v


def check_seed(seed, name: str = "random_state") -> int | None:
    """A seed: None or a non-negative integer (numpy's seed sequences take no negative entropy)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise MmsoldError(f"{name} must be an int or None, got {seed!r}")
    if seed < 0:
        raise MmsoldError(f"{name} must be a non-negative integer, got {int(seed)}")
    return int(seed)


def check_random_state(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None, a non-negative int, or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(check_seed(seed))
    raise MmsoldError(f"random_state must be None, an int or a numpy Generator, got {seed!r}")
