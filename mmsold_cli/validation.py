"""Validation of user arrays and options, in one place.

The library calls these once at its entry points; the CLI only turns the
:class:`~mmsold_cli.errors.MmsoldError` they raise into a message.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import MmsoldError

__all__ = ["check_points", "check_positive", "check_int", "check_random_state"]


def check_points(arr, *, name: str = "data", min_points: int = 1, dim: int | None = None) -> np.ndarray:
    """Return ``arr`` as a finite float64 array of shape (n, d) or raise.

    Parameters
    ----------
    arr : array-like
    name : str
        Used in messages (usually the file name).
    min_points : int
        Fewest rows accepted.
    dim : int, optional
        Required number of columns.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise MmsoldError(f"{name}: expected numbers, got dtype {a.dtype}")
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
    return np.ascontiguousarray(a)


def check_positive(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite positive float (or non-negative with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MmsoldError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
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


def check_random_state(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None, an int, or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(seed)
    raise MmsoldError(f"random_state must be None, an int or a numpy Generator, got {seed!r}")
