r"""Standard normal draws from a counter-based generator, filled on all threads.

The samplers draw several normals per particle and step (the smoothing draws
and the Langevin noise); NumPy's generator makes them on one thread.  Here
normal number :math:`j` of a call is a pure function of the call's key and
:math:`j`, so any range of the output can be filled by any thread and the
result does not depend on how the work is split.

Bits: Philox4x64-10 [1]_, the counter-based generator NumPy ships as
``numpy.random.Philox``; block :math:`c` is

.. math::

    (w_0, w_1, w_2, w_3) = \mathrm{Philox}_{k}(c, 0, 0, 0)

and normal :math:`j` starts from word :math:`w_{j \bmod 4}` of block
:math:`\lfloor j/4\rfloor`.  The rare draws that need more bits take them
from the blocks :math:`(b, j, 1, 0)`, :math:`b = 0, 1, \dots` (counter words low first).

Normals: the ziggurat [2]_ with :math:`N = 256` layers of equal area
:math:`v` under :math:`f(x) = e^{-x^2/2}`, edges

.. math::

    x_1 = r, \qquad x_{i+1} = f^{-1}\big(f(x_i) + v / x_i\big), \qquad
    x_0 = v / f(r), \qquad v = r f(r) + \int_r^\infty f(x)\,dx

where
    * :math:`r` solves :math:`x_N = 0` (3.6541528853610088 for N = 256),
    * layer 0 is the base strip :math:`[0, r]\times[0, f(r)]` and the tail
      :math:`x > r`, which is sampled as :math:`r + a` with
      :math:`a = -\ln(u_1)/r`, accepted when :math:`-2\ln u_2 > a^2`.

One 64-bit word gives the layer (8 bits), the sign (1 bit) and a 53-bit
uniform :math:`u`; :math:`x = u\,x_i` is returned at once when
:math:`x < x_{i+1}` (98.8 % of draws).

:func:`standard_normal_reference` computes the same numbers from NumPy's own
Philox bit generator; the tests hold the kernel to it bit for bit.

References
----------
.. [1] J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random
   numbers: as easy as 1, 2, 3", SC '11, 2011.
.. [2] G. Marsaglia, W. W. Tsang, "The Ziggurat Method for Generating Random
   Variables", Journal of Statistical Software 5(8), 2000.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["standard_normal", "from_key", "words_from_key", "mean_of_two", "standard_normal_reference", "new_key", "ZIGGURAT_R"]

#: Right edge of the ziggurat's base strip for 256 layers.
ZIGGURAT_R = 3.6541528853610088
_N = 256
_MANT = 2.0**53


def _tables(r=ZIGGURAT_R, n=_N):
    """Layer widths ``w`` (x_i / 2^53), fast-accept bounds ``k`` and heights ``f`` (f(x_i), f(x_n) = 1)."""
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = [v / f(r), r]
    for _ in range(2, n):
        x.append(math.sqrt(-2.0 * math.log(f(x[-1]) + v / x[-1])))
    x.append(0.0)
    top = x[n - 1] * (1.0 - f(x[n - 1]))  # the top layer's area: v when r is right
    if abs(top / v - 1.0) > 1e-6:
        raise RuntimeError(f"ziggurat tables: top layer area {top} differs from v = {v}")
    w = np.array([xi / _MANT for xi in x[:n]])
    k = np.array([int(x[i + 1] / x[i] * _MANT) for i in range(n)], dtype=np.int64)
    fy = np.array([f(xi) for xi in x[:n]] + [1.0])
    return w, k, fy


_W, _K, _F = _tables()


def new_key(rng) -> np.ndarray:
    """A Philox key: the next two 64-bit words of a ``numpy.random.Generator``'s bit generator.

    ``rng.bit_generator.random_raw`` (1 µs) rather than ``rng.integers`` (7 µs): a sampler asks for a key
    several times a step."""
    return rng.bit_generator.random_raw(2)


def _split(u):
    """Layer, sign and 53-bit uniform integer of a word (Python ints)."""
    return u & 255, (u >> 8) & 1, u >> 11


def _philox_from(key, block):
    """NumPy's Philox bit generator whose next block is ``block`` (four counter words, low word first)."""
    c = sum(int(w) << (64 * i) for i, w in enumerate(block)) - 1  # NumPy advances the counter before each block
    c %= 2**256
    return np.random.Philox(key=np.asarray(key, dtype=np.uint64),
                            counter=np.array([(c >> (64 * i)) & (2**64 - 1) for i in range(4)], dtype=np.uint64))


def _extra_words(key, j):
    """The extra words of normal j: blocks (b, j, 1, 0) for b = 0, 1, … from NumPy's Philox."""
    bg = _philox_from(key, (0, j, 1, 0))
    while True:
        for w in bg.random_raw(4):
            yield int(w)


def _slow_reference(key, j, u):
    """Normal j whose first word ``u`` missed the fast path (Python, same consumption as the kernel)."""
    extra = _extra_words(key, j)
    while True:
        i, s, m = _split(u)
        x = m * float(_W[i])
        if m < int(_K[i]):
            break
        if i == 0:
            while True:
                a = -math.log(1.0 - (next(extra) >> 11) / _MANT) / ZIGGURAT_R
                b = -math.log(1.0 - (next(extra) >> 11) / _MANT)
                if 2.0 * b > a * a:
                    break
            x = ZIGGURAT_R + a
            break
        y = float(_F[i]) + ((next(extra) >> 11) / _MANT) * (float(_F[i + 1]) - float(_F[i]))
        if y < math.exp(-0.5 * x * x):
            break
        u = next(extra)
    return -x if s else x


def standard_normal_reference(key, n: int, start: int = 0) -> np.ndarray:
    """Normals ``start … start + n − 1`` of ``key`` from NumPy's Philox (vectorised fast path, the rare slow
    draws in Python): the kernel's oracle, and the NumPy backend's normals (no numba needed)."""
    key = np.asarray(key, dtype=np.uint64)
    u = words_from_key(key, (int(n),), start)
    i = (u & np.uint64(255)).astype(np.intp)
    m = (u >> np.uint64(11)).astype(np.int64)
    x = m.astype(np.float64) * _W[i]
    x = np.where((u >> np.uint64(8)) & np.uint64(1), -x, x)
    for j in np.flatnonzero(m >= _K[i]):
        x[j] = _slow_reference(key, int(start) + int(j), int(u[j]))
    return x


def words_from_key(key, shape, start=0) -> np.ndarray:
    """Raw 64-bit words ``start, start + 1, …`` of ``key`` (word j: word j mod 4 of block ⌊j/4⌋), uint64.

    The words the normals start from, for draws that need integers (the remainder points);
    NumPy's own Philox makes them, so any range is as cheap as its length.
    """
    n = int(np.prod(shape, dtype=np.int64))
    first = int(start) // 4
    skip = int(start) - 4 * first
    words = _philox_from(key, (first, 0, 0, 0)).random_raw(skip + n)[skip:]
    return words.reshape(shape)


def from_key(key, shape, start=0, out=None, *, kernel: bool = True) -> np.ndarray:
    """Normals ``start, start + 1, …`` of ``key`` in an array of the given shape (C order).

    Parameters
    ----------
    key : array of shape (2,), uint64
    shape : tuple of int
    start : int
        Index of the first normal: a range of rows of a larger draw gets the numbers the whole draw
        would give it.
    out : float64 C-contiguous array of that shape, optional
    kernel : bool
        Fill by the numba kernel on all threads (True) or by NumPy's Philox (False: the same numbers,
        no compilation — the NumPy backend's choice).
    """
    out = np.empty(shape) if out is None else out
    if not kernel:
        out.reshape(-1)[:] = standard_normal_reference(key, out.size, start)
        return out
    from .normals_numba import fill

    fill(key, out.reshape(-1), start)
    return out


def mean_of_two(key_a, key_b, shape, start=0, out=None, *, kernel: bool = True) -> np.ndarray:
    """``(a + b) / 2`` for the normals a of ``key_a`` and b of ``key_b`` (numbers ``start, start + 1, …``).

    Same numbers as ``(from_key(key_a, ...) + from_key(key_b, ...)) * 0.5`` without the second array:
    the Leimkuhler–Matthews noise when the state is the previous step's key.  ``kernel`` as for
    :func:`from_key`.
    """
    out = np.empty(shape) if out is None else out
    if not kernel:
        n = out.size
        out.reshape(-1)[:] = (standard_normal_reference(key_a, n, start) + standard_normal_reference(key_b, n, start)) * 0.5
        return out
    from .normals_numba import fill_mean

    fill_mean(key_a, key_b, out.reshape(-1), start)
    return out


def standard_normal(rng, shape, out=None) -> np.ndarray:
    """Standard normals of the given shape, one key drawn from ``rng`` per call (:func:`new_key`).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
    out : float64 C-contiguous array of that shape, optional

    Returns
    -------
    array of shape ``shape``
    """
    return from_key(new_key(rng), shape, out=out)
