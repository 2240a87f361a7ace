r"""scikit-learn estimators: the sampler and its moment-matched density, and the minimum-ECM classifier.

* :class:`MMSOLD` — ``fit(X)``, ``sample(n_samples, random_state)``, ``score_samples(X)`` (log p*,
  :class:`mmsold_cli.density.TiltedDensity`) and ``score(X)`` (mean log-likelihood), so that
  ``GridSearchCV`` can tune t and σ on held-out likelihood.
* :class:`MMSOLDClassifier` — one density per class; class c's logit is
  :math:`-E^*_c(x) + b_c`, the biases :math:`b_c` (which absorb :math:`-\log\mathcal Z_c` and the
  class priors) fitted on a validation split by cross-entropy, as the MM-SOLD authors do [1]_;
  ``predict`` takes the class of minimum expected cost of misclassification,

  .. math:: \hat y(x) = \arg\min_k \sum_c C_{kc}\, p(c \mid x),

  with C the cost matrix (default :math:`1 - I`: the most probable class).

Needs scikit-learn (``pip install 'mmsold[sklearn]'``); importing this module without it raises
:class:`~mmsold_cli.errors.MmsoldError` with that instruction.  Persistence is outside the
estimators (``mmsold fit-moments --labels`` writes one model file holding every class).

References
----------
.. [1] Z. Yao, D. Paulin, "Training-Free Generative Sampling via Moment-Matched Score
   Smoothing", arXiv:2605.14276, 2026 (Table 1: the minimum-ECM classifier).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .errors import MmsoldError

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, DensityMixin
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
except ImportError:  # pragma: no cover - exercised by the test that hides scikit-learn
    raise MmsoldError("the scikit-learn estimators need scikit-learn: pip install 'mmsold[sklearn]'") from None

__all__ = ["MMSOLD", "MMSOLDClassifier"]

_SAMPLER_CONSTRAINTS = {
    "sampler": [StrOptions({"mmsold", "sold", "cfdm"})],
    "t": [Interval(Real, 0, None, closed="neither"), None],
    "sigma": [Interval(Real, 0, None, closed="left"), None],
    "steps": [Interval(Integral, 1, None, closed="left"), None],
    "density_draws": [Interval(Integral, 1, None, closed="left")],
    "plug_in_points": [Interval(Integral, 2, None, closed="left")],
    "random_state": ["random_state"],
}


def _seed(random_state) -> int:
    """An int seed from None, an int or a RandomState (scikit-learn's conventions)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _fit_density(X, t, sigma, draws, plug_in_points, seed, normalise=True):
    from .density import TiltedDensity

    return TiltedDensity(t, sigma, draws=draws, plug_in_points=plug_in_points, random_state=seed,
                         normalise=normalise).fit(X)


def _plain(label):
    """A class label as the user wrote it (NumPy scalars print as np.float64(0.0))."""
    return label.item() if isinstance(label, np.generic) else label


class MMSOLD(DensityMixin, BaseEstimator):
    """MM-SOLD as a scikit-learn density estimator.

    Parameters
    ----------
    sampler : {"mmsold", "sold", "cfdm"}
    t, sigma : float or None
        Noise level and smoothing of the density and of MM-SOLD's and SOLD's sampling (None: the data-scaled
        defaults of :mod:`mmsold_cli.defaults`); σ-CFDM samples at its own defaults unless ``sigma`` is given.
    steps : int or None
    density_draws : int
        Fixed smoothing draws of the density's potential.
    plug_in_points : int
        Training points the tilt's plug-in averages run over (a seeded subsample above it).
    random_state : int, RandomState or None
        Seeds the density's draws, and :meth:`sample` when it is given no ``random_state`` of its own: with an
        int every call then returns the same samples (as ``GaussianMixture.sample``).

    Attributes
    ----------
    model_ : mmsold_cli.model.Model
    t_, sigma_ : float
    sampler_, steps_ : the sampler and step count :meth:`sample` uses (the parameters' values at the fit)
    density_ : mmsold_cli.density.TiltedDensity
    n_features_in_ : int
    """

    _parameter_constraints = dict(_SAMPLER_CONSTRAINTS)

    def __init__(self, *, sampler="mmsold", t=None, sigma=None, steps=None, density_draws=16, plug_in_points=2000,
                 random_state=None):
        self.sampler = sampler
        self.t = t
        self.sigma = sigma
        self.steps = steps
        self.density_draws = density_draws
        self.plug_in_points = plug_in_points
        self.random_state = random_state

    def fit(self, X, y=None):
        from . import defaults
        from .model import fit_moments

        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        self.model_ = fit_moments(X)
        self.t_ = float(self.t) if self.t is not None else defaults.noise_level(self.model_)
        self.sigma_ = float(self.sigma) if self.sigma is not None else defaults.smoothing(self.model_, self.t_)
        self.sampler_, self.steps_ = self.sampler, self.steps
        self.density_ = _fit_density(X, self.t_, self.sigma_, self.density_draws, self.plug_in_points,
                                     _seed(self.random_state))
        return self

    def sample(self, n_samples=1, random_state=None):
        """Draw samples: array of shape (n_samples, n_features).

        MM-SOLD holds ensembles of more than d particles at the moments; fewer samples are the first
        rows of such an ensemble.  ``random_state`` None: the estimator's own.
        """
        from . import defaults
        from .sampling import sample

        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        n = defaults.draw_count(n_samples, self.n_features_in_, self.sampler_)
        opts = {"sampler": self.sampler_, "steps": self.steps_}
        if self.sampler_ != "cfdm":
            opts.update(t=self.t_, sigma=self.sigma_)
        elif self.sigma is not None:  # σ-CFDM's own default σ is not MM-SOLD's
            opts["sigma"] = self.sigma_
        res = sample(self.model_, n, random_state=_seed(self.random_state if random_state is None else random_state),
                     **opts)
        return res.samples[:n_samples]

    def score_samples(self, X):
        """log p*(x) at the rows of X: array of shape (n,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.density_.log_prob(X)

    def score(self, X, y=None):
        """Mean log-likelihood of X under p*."""
        return float(np.mean(self.score_samples(X)))


class MMSOLDClassifier(ClassifierMixin, BaseEstimator):
    """One MM-SOLD density per class; prediction by minimum expected cost of misclassification.

    Parameters
    ----------
    t, sigma : float or None
        Per class, the data-scaled defaults of that class's model when None.
    density_draws, plug_in_points : int
        As for :class:`MMSOLD`.
    validation_fraction : float in (0, 1)
        Share of each class held out to fit the scale s and the biases b_c by cross-entropy.
    cost : array of shape (n_classes, n_classes) or None
        C[k, c]: the cost of predicting k when the class is c (None: 1 − I).
    random_state : int, RandomState or None

    Attributes
    ----------
    classes_ : array of the class labels
    densities_ : list of TiltedDensity, one per class
    scale_ : float, the calibrated s (a temperature 1 / s)
    bias_ : array (n_classes,), the calibrated b_c
    """

    _parameter_constraints = {
        "t": [Interval(Real, 0, None, closed="neither"), None],
        "sigma": [Interval(Real, 0, None, closed="left"), None],
        "density_draws": [Interval(Integral, 1, None, closed="left")],
        "plug_in_points": [Interval(Integral, 2, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "cost": ["array-like", None],
        "random_state": ["random_state"],
    }

    def __init__(self, *, t=None, sigma=None, density_draws=16, plug_in_points=2000, validation_fraction=0.2,
                 cost=None, random_state=None):
        self.t = t
        self.sigma = sigma
        self.density_draws = density_draws
        self.plug_in_points = plug_in_points
        self.validation_fraction = validation_fraction
        self.cost = cost
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.utils.multiclass import check_classification_targets

        from . import defaults

        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"MMSOLDClassifier needs samples of at least 2 classes; got 1 class "
                             f"({_plain(self.classes_[0])!r})")
        cost = self._cost_matrix(k)  # before the densities' fits
        rng = check_random_state(self.random_state)
        seed = _seed(rng)
        fit_idx, val_idx = [], []
        for c in range(k):
            idx = rng.permutation(np.flatnonzero(yi == c))
            n_val = int(round(self.validation_fraction * len(idx)))
            if len(idx) < 3:
                raise ValueError(f"class {_plain(self.classes_[c])!r} has {len(idx)} samples; at least 3 are needed "
                                 f"to fit its density and calibrate its bias")
            if len(idx) - n_val < 2 or n_val < 1:
                raise ValueError(f"validation_fraction={self.validation_fraction!r} holds out {n_val} of class "
                                 f"{_plain(self.classes_[c])!r}'s {len(idx)} samples; expected at least 1 held out "
                                 f"and 2 left to fit its density")
            val_idx.append(idx[:n_val])
            fit_idx.append(idx[n_val:])
        self.densities_ = []
        for c in range(k):
            Xc = X[fit_idx[c]]
            scales = defaults.data_scales(Xc)
            t = float(self.t) if self.t is not None else defaults.noise_level(scales)
            sigma = float(self.sigma) if self.sigma is not None else defaults.smoothing(scales, t)
            # no normaliser: the biases absorb −log 𝒵_c (and its importance sampling was most of the fit)
            self.densities_.append(_fit_density(Xc, t, sigma, self.density_draws, self.plug_in_points, seed,
                                                normalise=False))
        vi = np.concatenate(val_idx)
        self.scale_, self.bias_ = self._calibrate(-self._energies(X[vi]), yi[vi])
        self.cost_ = cost
        return self

    def _energies(self, X):
        """E*_c at the rows of X, one column per class: array (n, n_classes)."""
        return np.stack([dens.energy(X) for dens in self.densities_], axis=1)

    @staticmethod
    def _calibrate(logits, y):
        """The scale s > 0 and biases b minimising the cross-entropy of softmax(s · logits + b) on (logits, y).

        Linear in (s, b), so convex: by L-BFGS.  The scale is temperature scaling (Guo et al. 2017): the smoothed
        densities' log-ratios between classes run too wide in 32–64 dimensions, and with b alone the
        probabilities of wrong predictions were near 1 (log-loss 1.99 against QDA's 0.60 on MNIST PCA-32).
        """
        from scipy.optimize import minimize
        from scipy.special import logsumexp, softmax

        k = logits.shape[1]
        onehot = np.eye(k)[y]
        L = logits - logits.max(axis=1, keepdims=True)

        def f(theta):
            s, b = theta[0], theta[1:]
            z = s * L + b
            p = softmax(z, axis=1)
            g = p - onehot
            return (float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y])),
                    np.concatenate([[np.mean(np.sum(g * L, axis=1))], g.mean(axis=0)]))

        b0 = -np.log(np.maximum(softmax(L, axis=1).mean(axis=0), 1e-300))
        res = minimize(f, np.concatenate([[1.0], b0 - b0.mean()]), jac=True, method="L-BFGS-B",
                       bounds=[(1e-6, None)] + [(None, None)] * k)
        s, b = float(res.x[0]), res.x[1:]
        return s, b - b.mean()  # softmax is invariant to a common shift

    def _cost_matrix(self, k):
        if self.cost is None:
            return 1.0 - np.eye(k)
        C = np.asarray(self.cost, dtype=np.float64)
        if C.shape != (k, k):
            raise ValueError(f"cost must be a ({k}, {k}) matrix, one row and column per class, got shape {C.shape}")
        if not np.all(np.isfinite(C)):
            raise ValueError(f"cost must hold finite numbers, got {int(np.sum(~np.isfinite(C)))} NaN or infinite "
                             f"of {C.size}")
        return C

    def predict_proba(self, X):
        """p(c | x) = softmax_c(−s E*_c(x) + b_c): array (n, n_classes)."""
        from scipy.special import softmax

        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return softmax(-self.scale_ * self._energies(X) + self.bias_, axis=1)

    def predict(self, X):
        """The class of minimum expected cost, argmin_k Σ_c C[k, c] p(c | x)."""
        P = self.predict_proba(X)
        return self.classes_[np.argmin(P @ self.cost_.T, axis=1)]
