r"""Carrying per-point attributes from the input cloud onto new points.

Each attribute is either *continuous* (colour channels, intensity, GPS time,
scan angle, user floats) or *categorical* (classification, return numbers,
flags, integer labels): the name decides for the known LAS/PLY names, the
type for the rest (floats continuous, integers and booleans categorical).

* continuous: inverse-distance weighting over the :math:`k` nearest input
  points [1]_,

  .. math::

      a(z) = \frac{\sum_{j=1}^{k} w_j a_j}{\sum_j w_j}, \qquad
      w_j = \frac{1}{\|z - x_j\|^2 + \epsilon^2},

  with :math:`\epsilon = 10^{-3}\,\delta` (δ the input's spacing) so a point
  on an input point takes its value; integer-typed continuous values
  (8/16-bit colours, intensity) are rounded and clipped to their type;
* categorical: the value of the nearest input point (a class is not
  averaged: the mean of "ground" and "building" is no class at all).

References
----------
.. [1] D. Shepard, "A two-dimensional interpolation function for irregularly-
   spaced data", Proc. ACM National Conference, 1968.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CATEGORICAL", "CONTINUOUS", "is_categorical", "transfer_attributes", "IDW_NEIGHBOURS"]

#: Names always taken from the nearest input point.
CATEGORICAL = frozenset({
    "classification", "raw_classification", "return_number", "number_of_returns", "scan_direction_flag",
    "edge_of_flight_line", "synthetic", "key_point", "withheld", "overlap", "classification_flags",
    "scanner_channel", "user_data", "point_source_id", "label", "labels", "class", "segment", "instance",
})
#: Integer-typed names that are measurements, hence interpolated.
CONTINUOUS = frozenset({"red", "green", "blue", "nir", "alpha", "r", "g", "b", "intensity", "scan_angle",
                        "scan_angle_rank", "gps_time", "reflectance", "amplitude", "colorred", "colorgreen",
                        "colorblue"})
#: Input points in each inverse-distance average.
IDW_NEIGHBOURS = 8
_BLOCK = 262_144


def is_categorical(name: str, values) -> bool:
    """Whether an attribute is copied from the nearest point (True) or interpolated (False)."""
    low = name.lower()
    if low in CATEGORICAL:
        return True
    if low in CONTINUOUS:
        return False
    return np.asarray(values).dtype.kind in "iub"


def transfer_attributes(attributes: dict, X, Z, *, spacing: float, tree=None, neighbours: int = IDW_NEIGHBOURS,
                        drop=()) -> dict:
    """Attributes of new points Z from those of input points X (module docstring).

    Parameters
    ----------
    attributes : dict of str -> array of shape (n,) or (n, c)
        Per input point.
    X : array of shape (n, 3)
    Z : array of shape (m, 3)
    spacing : float
        The input's mean nearest-neighbour distance (sets ε).
    tree : scipy.spatial.cKDTree over X, optional
    neighbours : int
        k of the inverse-distance average.
    drop : iterable of str
        Attribute names left out.

    Returns
    -------
    dict of str -> array of shape (m,) or (m, c), each with its input's dtype.
    """
    from scipy.spatial import cKDTree

    names = [k for k in attributes if k not in set(drop)]
    if not names or len(Z) == 0:
        return {k: np.asarray(attributes[k])[:0].copy() for k in names}
    tree = cKDTree(X) if tree is None else tree
    k = max(1, min(int(neighbours), len(X)))
    cat = {name: is_categorical(name, attributes[name]) for name in names}
    out = {name: np.empty((len(Z),) + np.asarray(attributes[name]).shape[1:], dtype=np.asarray(attributes[name]).dtype)
           for name in names}
    eps2 = (1e-3 * spacing) ** 2
    for s in range(0, len(Z), _BLOCK):  # blocks bound the (block, k) temporaries
        d, idx = tree.query(Z[s : s + _BLOCK], k=k, workers=-1)
        if k == 1:
            d, idx = d[:, None], idx[:, None]
        w = 1.0 / (d * d + eps2)
        w /= w.sum(axis=1, keepdims=True)
        for name in names:
            a = np.asarray(attributes[name])
            if cat[name]:
                out[name][s : s + _BLOCK] = a[idx[:, 0]]
                continue
            v = np.einsum("mk,mk...->m...", w, a[idx].astype(np.float64))
            if a.dtype.kind in "iu":
                info = np.iinfo(a.dtype)
                v = np.clip(np.rint(v), info.min, info.max)
            elif a.dtype.kind == "b":
                v = v >= 0.5
            out[name][s : s + _BLOCK] = v
    return out
