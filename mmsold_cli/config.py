"""One frozen configuration per run, resolved once from the model and the options.

:meth:`SampleConfig.resolve` checks every option against :data:`CONSTRAINTS`
(messages name the expected and the received value), fills the data-scaled
defaults of :mod:`mmsold_cli.defaults` and resolves ``search="auto"``
(:func:`mmsold_cli.score.searches.resolve_search`).  Nothing downstream
re-validates or re-derives a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import defaults
from .errors import MmsoldError
from .validation import check_int, check_positive

__all__ = ["SampleConfig", "CONSTRAINTS", "INITS", "TARGET_COVS", "INTEGRATOR_NAMES"]

#: Start laws (:mod:`mmsold_cli.samplers.inits`).
INITS = ("data", "gaussian", "moments", "gmm")
#: Target covariances: the data's, or blurred by t² as the authors' code does.
TARGET_COVS = ("data", "blurred")
#: The least noise level t, relative to the data's scale √(tr Σ / d): far below it t² is lost against the data.
T_MIN = 1e-9
#: The largest, likewise: far above it the particles are noise, and t⁴ overflows for data near MAX_ABS.
T_MAX = 1e9
#: The most steps a run takes: its schedule holds one float per step (80 MB here).
STEPS_MAX = 10_000_000
#: Integrators of the Langevin samplers (σ-CFDM integrates by Euler).
INTEGRATOR_NAMES = ("lm", "em", "ams", "ams-tc", "euler")


class _Options(tuple):
    """One of the listed strings."""

    def check(self, value, name):
        if value not in self:
            raise MmsoldError(f"{name} must be one of {', '.join(self)}, got {value!r}")
        return value


class _Sampler:
    """A name registered in :data:`mmsold_cli.samplers.SAMPLERS`."""

    def check(self, value, name):
        from .samplers import SAMPLERS

        return _Options(SAMPLERS).check(value, name)


class _Int:
    """An integer ≥ low (any integer for low None), ≤ high if given."""

    def __init__(self, low, high=None):
        self.low, self.high = low, high

    def check(self, value, name):
        return check_int(value, name, low=self.low, high=self.high)


class _Real:
    """A finite number > 0 (≥ 0 with ``allow_zero``)."""

    def __init__(self, allow_zero=False):
        self.allow_zero = allow_zero

    def check(self, value, name):
        return check_positive(value, name, allow_zero=self.allow_zero)


class _OpenUnit:
    """A number in (0, 1)."""

    def check(self, value, name):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not 0 < value < 1:
            raise MmsoldError(f"{name} must be a number in (0, 1), got {value!r}")
        return float(value)


#: Every option of :func:`mmsold_cli.sampling.sample`: (name in messages, constraint).  Data-dependent
#: bounds (K ≤ n, L ≤ n − K, P > d) are checked in :meth:`SampleConfig.resolve`.
CONSTRAINTS = {
    "sampler": ("sampler", _Sampler()),
    "steps": ("steps", _Int(1, STEPS_MAX)),
    "eta": ("step factor eta", _Real()),
    "t": ("noise t", _Real()),
    "sigma": ("smoothing sigma", _Real(allow_zero=True)),
    "M": ("draws M", _Int(1)),
    "K": ("neighbours K", _Int(1)),
    "L": ("remainder points L", _Int(0)),
    "P": ("ensemble size P", _Int(None)),  # its bound, d + 1, is the data's
    "integrator": ("integrator", _Options(INTEGRATOR_NAMES)),
    "init": ("init", _Options(INITS)),
    "target_cov": ("target_cov", _Options(TARGET_COVS)),
    "batch_size": ("batch_size", _Int(1)),
    "backend": ("backend", _Options(("auto", "numba", "numpy"))),
    "start_time": ("start_time T", _OpenUnit()),
    "search": ("search", _Options(("auto", "all", "index", "grid", "grid-knn", "pool", "walk"))),
}


@dataclass(frozen=True)
class SampleConfig:
    """Every setting of a run, defaults filled in (see :mod:`mmsold_cli.defaults`).

    ``t`` is None for σ-CFDM (its time runs from ``start_time`` to 1); ``start_time`` is None for the
    Langevin samplers.  ``search`` is resolved (never ``"auto"``).
    """

    sampler: str
    n: int
    steps: int
    eta: float
    t: Optional[float]
    sigma: float
    M: int
    K: int
    L: int
    P: int
    integrator: str
    init: str
    target_cov: str
    batch_size: int
    backend: str
    start_time: Optional[float]
    search: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resolve(cls, model, n, **options) -> "SampleConfig":
        """Check ``options`` and fill the defaults for ``n`` samples from a fitted ``model``."""
        from .score.searches import resolve_search

        unknown = sorted(set(options) - set(CONSTRAINTS))
        if unknown:
            raise MmsoldError(f"unknown option {unknown[0]!r}; options are {', '.join(CONSTRAINTS)}")
        given = {k: v for k, v in options.items() if v is not None}
        o = {k: CONSTRAINTS[k][1].check(v, CONSTRAINTS[k][0]) for k, v in given.items()}
        n = check_int(n, "number of samples n", low=1)
        n_train, d = model.n_, model.d_
        sampler = o.get("sampler", "mmsold")
        cf = sampler == "cfdm"
        scale = float(np.sqrt(np.trace(model.covariance_) / d))
        if o.get("sigma", 0.0) > T_MAX * scale:  # a smoothing length, bounded as t is
            raise MmsoldError(f"smoothing sigma must be ≤ {T_MAX * scale:.3g} ({T_MAX:g} × the data's scale "
                              f"{scale:.3g}), got {o['sigma']!r}")
        if cf:
            if "t" in o:
                raise MmsoldError(f"noise t does not apply to cfdm (it starts at start_time T), got t = {o['t']!r}")
            if o.get("integrator", "euler") != "euler":
                raise MmsoldError(f"cfdm integrates its flow by Euler; integrator must be euler, "
                                  f"got {o['integrator']!r}")
            if o.get("target_cov", "data") != "data":  # Σ + t² I: cfdm has no noise level t
                raise MmsoldError(f"target_cov must be data for cfdm (blurred adds t² I, and cfdm has no t), "
                                  f"got {o['target_cov']!r}")
            T = o.get("start_time", defaults.cfdm_start_time(model))
            t, integrator = None, "euler"
            steps = o.get("steps", defaults.cfdm_steps(model, T))
            sigma = o.get("sigma", defaults.cfdm_sigma(model))
            M = o.get("M", defaults.CFDM_DRAWS)
        else:
            if "start_time" in o:
                raise MmsoldError(f"start_time applies to the cfdm sampler only, got start_time = "
                                  f"{o['start_time']!r} with {sampler}")
            integrator = o.get("integrator", "lm")
            if integrator == "euler":
                raise MmsoldError(f"integrator must be one of lm, em, ams, ams-tc for {sampler}, got 'euler'")
            T = None
            t = o.get("t", defaults.noise_level(model))
            if t < T_MIN * scale:  # t² then underflows against the data, and the score's 1/t² overflows
                raise MmsoldError(f"noise t must be ≥ {T_MIN * scale:.3g} ({T_MIN:g} × the data's scale {scale:.3g}), "
                                  f"got {t!r}")
            if t > T_MAX * scale:
                raise MmsoldError(f"noise t must be ≤ {T_MAX * scale:.3g} ({T_MAX:g} × the data's scale "
                                  f"{scale:.3g}), got {t!r}")
            steps = o.get("steps", defaults.STEPS)
            sigma = o.get("sigma", defaults.smoothing(model, t))
            M = o.get("M", defaults.DRAWS)
        K = o.get("K", min(defaults.NEIGHBOURS, n_train))
        if K > n_train:
            raise MmsoldError(f"neighbours K must be ≤ the {n_train} training points, got {K}")
        L = check_int(o.get("L", 0), "remainder points L", low=0, high=n_train - K)
        P = o.get("P", max(min(n, defaults.ENSEMBLE), d + 1))
        P = check_int(P, f"ensemble size P (more particles than the dimension {d})", low=d + 1)
        if n <= d and sampler == "mmsold":
            raise MmsoldError(f"MM-SOLD needs more samples than dimensions (n > d = {d}), got n = {n}")
        backend = o.get("backend", "auto")
        if backend == "auto":
            backend = defaults.backend_for(d, n * steps)
        search = resolve_search(o.get("search", "auto"), n=n_train, d=d, sampler=sampler, K=K, L=L,
                                backend=backend)
        if cf and search == "index" and o.get("search", "auto") == "auto" and backend == "numba" and L == 0:
            from .samplers.cfdm import auto_search  # measured on the model: do the draws share a beam?

            search = auto_search(model, start_time=T, steps=steps, sigma=sigma, M=M, K=K)
        return cls(sampler=sampler, n=n, steps=steps, eta=o.get("eta", defaults.ETA), t=t, sigma=sigma, M=M, K=K,
                   L=L, P=P, integrator=integrator, init=o.get("init", "data"),
                   target_cov=o.get("target_cov", "data"), batch_size=o.get("batch_size", defaults.BATCH_PARTICLES),
                   backend=backend, start_time=T, search=search)
