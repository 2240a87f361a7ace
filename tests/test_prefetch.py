"""``prefetch_row`` (mmsold_cli/_prefetch.py): a hint that compiles for any 2-D array and changes no result."""

import numpy as np
import pytest

from mmsold_cli._numba import import_numba
from mmsold_cli._prefetch import prefetch_row

numba = import_numba()


@numba.njit
def _row_sums(X, rows):
    for j in rows:
        prefetch_row(X, j)
    out = np.zeros(rows.size)
    for a in range(rows.size):
        for k in range(X.shape[1]):
            out[a] += X[rows[a], k]
    return out


@pytest.mark.parametrize("dtype, d", [(np.float32, 5), (np.float32, 64), (np.float64, 33), (np.int32, 1)])
def test_prefetched_rows_read_the_same(dtype, d):
    X = (np.arange(40 * d).reshape(40, d) % 97).astype(dtype)
    rows = np.array([39, 0, 17, 17, 3], dtype=np.int64)
    np.testing.assert_array_equal(_row_sums(X, rows), X[rows].astype(np.float64).sum(axis=1))
