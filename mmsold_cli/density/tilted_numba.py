"""The numba kernel of :func:`mmsold_cli.density.tilted.log_blurred`: each row's log-sum-exp, in two passes.

The Gaussian logits :math:`-\\|q - x_j\\|^2 / 2t^2 = (q\\cdot x_j - \\|x_j\\|^2/2 - \\|q\\|^2/2)/t^2` come from the
inner products G = Q Xᵀ (BLAS); the kernel reads each row of G twice (its largest logit, then the sum of the
exponentials below it) without the temporaries of the NumPy reference
(:func:`~mmsold_cli.density.tilted.logsumexp_logits`), which made the densities' energies 20–60× slower than
the products they start from.  Serial ``nogil``; :func:`~mmsold_cli._threads.run_rows` spreads the rows.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._fastexp import exp_nonpos  # noqa: E402
from .._threads import run_rows  # noqa: E402

__all__ = ["logsumexp_logits"]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp", "afn"})
def _lse(G, half_xn, half_qn, inv_t2, out, r0, r1):
    n = G.shape[1]
    for i in range(r0, r1):
        g = G[i]
        m = -np.inf
        for j in range(n):
            v = g[j] - half_xn[j]
            if v > m:
                m = v
        s = 0.0
        for j in range(n):
            s += exp_nonpos((g[j] - half_xn[j] - m) * inv_t2)
        out[i] = (m - half_qn[i]) * inv_t2 + np.log(s)


def logsumexp_logits(G, half_xn, half_qn, t, out=None):
    r""":math:`\log\sum_j \exp\big((G_{ij} - h^x_j - h^q_i)/t^2\big)` for each row i: array (m,).

    G : array (m, n), C-contiguous float64 (the products Q Xᵀ); half_xn (n,), half_qn (m,): half squared norms.
    """
    m = G.shape[0]
    out = np.empty(m) if out is None else out
    run_rows(_lse, m, G, np.ascontiguousarray(half_xn, dtype=np.float64),
             np.ascontiguousarray(half_qn, dtype=np.float64), 1.0 / (t * t), out, min_rows=16)
    return out
