"""MNIST classification from a small labelled set: MMSOLDClassifier against classical generative/nonparametric classifiers.

    python benchmarks/labelled_classifier.py [--quick] [--per-class 100,1000] [--dim 32] [--seed 0]

Data: ``mnist.npz`` read as in ``latent_data.py`` ($MMSOLD_DATA, /work/shared/data or
../shared/data beside the checkout); the script prints a message and exits 0 when it is absent.
The official split: 60,000 training images, 10,000 test images.

For each n per class: n training images of each digit drawn without replacement from the
official training split with ``default_rng(seed)``; pixels / 255; an sklearn-free PCA
(``mmsold_cli.workflows.latent.fit_pca``, exact 784 × 784 covariance) fitted on those
10 n images only, keeping ``--dim`` components (default 32); the test set is the 10,000
official test images encoded by that basis.  Classifiers, all fitted on the same codes:

* ``MMSOLDClassifier`` — per-class defaults, scale and biases calibrated on 20 % of each class;
* ``QDA``       — ``QuadraticDiscriminantAnalysis``, reg_param by 5-fold CV over
  {0, 0.01, 0.03, 0.1, 0.3, 0.6, 1};
* ``GaussianNB``;
* ``KDE-Bayes`` — one Gaussian ``KernelDensity`` per class, its bandwidth by 5-fold
  likelihood CV on that class (log grid), class prior = class frequency, predict argmax
  log p(x|c) + log π_c (written here, :class:`KDEBayes`);
* ``kNN``       — ``KNeighborsClassifier``, k by 5-fold CV over {1, 3, 5, 7, 9, 15, 25}.

Prints test accuracy, macro-F1, log-loss of the predicted probabilities, fit time (including any CV) and
predict time on the 10,000 test codes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

sys.path.insert(0, str(Path(__file__).resolve().parent))


class KDEBayes(ClassifierMixin, BaseEstimator):
    """Bayes classifier with one Gaussian KDE per class (bandwidth by likelihood CV per class) and the class prior."""

    def __init__(self, bandwidths=None, cv=5):
        self.bandwidths = bandwidths
        self.cv = cv

    def fit(self, X, y):
        from sklearn.model_selection import GridSearchCV
        from sklearn.neighbors import KernelDensity

        self.classes_ = np.unique(y)
        self.kdes_, self.log_prior_ = [], []
        for c in self.classes_:
            Xc = X[y == c]
            s = float(np.sqrt(np.mean(Xc.var(axis=0))))
            grid = self.bandwidths if self.bandwidths is not None else s * np.logspace(-1.5, 0.3, 16)
            search = GridSearchCV(KernelDensity(), {"bandwidth": grid}, cv=self.cv).fit(Xc)
            self.kdes_.append(search.best_estimator_)
            self.log_prior_.append(np.log(len(Xc) / len(X)))
        return self

    def predict_log_joint(self, X):
        return np.stack([k.score_samples(X) + lp for k, lp in zip(self.kdes_, self.log_prior_)], axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_log_joint(X), axis=1)]

    def predict_proba(self, X):
        from scipy.special import softmax

        return softmax(self.predict_log_joint(X), axis=1)


def load_mnist():
    """(train images (60000, 28, 28) uint8, train labels, test images, test labels), or None without the data."""
    try:
        from latent_data import data_dir
        from latent_mnist import split

        path = data_dir() / "mnist.npz"
    except FileNotFoundError:
        return None
    with np.load(path) as z:
        images, labels = z["images"], z["labels"].astype(np.int64)
    itr, ite = split(labels)
    return images[itr], labels[itr], images[ite], labels[ite]


def subset(labels, per_class, seed):
    """Indices of per_class images of each class, drawn without replacement with default_rng(seed)."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                                   for c in np.unique(labels)]))


def codes(train_images, test_images, dim):
    from mmsold_cli.workflows.latent import encode, fit_pca

    basis = fit_pca(train_images, dim)
    return encode(train_images, basis), encode(test_images, basis), basis


def methods(seed):
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
    from sklearn.model_selection import GridSearchCV
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier

    from mmsold_cli.estimators import MMSOLDClassifier

    return {
        "MMSOLDClassifier": lambda: MMSOLDClassifier(random_state=seed),
        "QDA": lambda: GridSearchCV(QuadraticDiscriminantAnalysis(),
                                    {"reg_param": [0.0, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0]}, cv=5),
        "GaussianNB": lambda: GaussianNB(),
        "KDE-Bayes": lambda: KDEBayes(),
        "kNN": lambda: GridSearchCV(KNeighborsClassifier(), {"n_neighbors": [1, 3, 5, 7, 9, 15, 25]}, cv=5),
    }


def _param(est):
    if hasattr(est, "best_params_"):
        return ", ".join(f"{k}={v}" for k, v in est.best_params_.items())
    if isinstance(est, KDEBayes):
        h = [k.bandwidth for k in est.kdes_]
        return f"h={min(h):.2f}..{max(h):.2f}"
    if hasattr(est, "densities_"):
        return (f"t={np.mean([d.t for d in est.densities_]):.2f}, σ={np.mean([d.sigma for d in est.densities_]):.2f} "
                f"(mean), s={est.scale_:.3f}")
    return ""


def main(argv=None):
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 50 per class, 2,000 test images")
    ap.add_argument("--per-class", default="100,1000")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    a = ap.parse_args(argv)
    data = load_mnist()
    if data is None:
        print("mnist.npz not found (set MMSOLD_DATA or provide /work/shared/data): skipping")
        return 0
    Itr, ytr, Ite, yte = data
    sizes = [int(s) for s in a.per_class.split(",")]
    if a.quick:
        sizes, keep = [50], np.random.default_rng(1).choice(len(yte), 2000, replace=False)
        Ite, yte = Ite[keep], yte[keep]
    table = []
    for n in sizes:
        idx = subset(ytr, n, a.seed)
        Ztr, Zte, basis = codes(Itr[idx], Ite, a.dim)
        y = ytr[idx]
        for name, make in methods(a.seed).items():
            if a.methods and name not in a.methods.split(","):
                continue
            est = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                est.fit(Ztr, y)
                tf = time.perf_counter() - t0
                t0 = time.perf_counter()
                pred = est.predict(Zte)
                tp = time.perf_counter() - t0
                # how far the probabilities can be trusted (a minimum-ECM rule weighs them by costs)
                nll = log_loss(yte, est.predict_proba(Zte), labels=est.classes_)
            acc, f1 = accuracy_score(yte, pred), f1_score(yte, pred, average="macro")
            table.append((n, name, acc, f1, nll, tf, tp, _param(est)))
            print(f"  [{n}/class] {name}: acc {acc:.4f} F1 {f1:.4f} log-loss {nll:.3f} fit {tf:.1f} s "
                  f"predict {tp:.1f} s ({table[-1][-1]})", flush=True)
    print(f"\n### MNIST, PCA-{a.dim} fitted on the training images used; test = {len(yte)} official test images; "
          f"subset seed {a.seed}\n")
    print("| per class | method | accuracy | macro-F1 | log-loss | fit (s) | predict (s) | chosen |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for n, name, acc, f1, nll, tf, tp, p in table:
        print(f"| {n} | {name} | {acc:.4f} | {f1:.4f} | {nll:.3f} | {tf:.1f} | {tp:.1f} | {p} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
