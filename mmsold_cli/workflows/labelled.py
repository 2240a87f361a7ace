"""Labelled data: one model per class, per-class sampling, and augmentation (original + generated points).

The MM-SOLD authors augment a small labelled set by sampling each class in a latent space and
training a classifier on the original and the generated points; :func:`augment` is that step.
Every class's draws come from their own seed, derived from the run's seed and the class's position.
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError
from ..validation import check_seed

__all__ = ["read_labels", "check_labels", "split_label_column", "fit_class_models", "class_seed", "sample_classes",
           "augment"]


def split_label_column(X: np.ndarray, spec: str):
    """``col:K``: column K of X (negative from the end) as the labels, the other columns as the points."""
    try:
        k = int(spec.split(":", 1)[1])
    except (IndexError, ValueError):
        raise MmsoldError(f"labels column must be col:K with K an integer, got {spec!r}") from None
    d = X.shape[1]
    if not -d <= k < d or d < 2:
        raise MmsoldError(f"labels column must be within the data's {d} columns, got {spec!r}")
    k %= d
    labels = X[:, k]
    if not np.all(labels == np.round(labels)):
        raise MmsoldError(f"labels in column {k} must be integers, got e.g. {float(labels[labels != np.round(labels)][0])!r}")
    return np.delete(X, k, axis=1), labels.astype(np.int64)


def read_labels(spec, n: int) -> np.ndarray:
    """Labels of n points from a file (.npy, .txt, .csv: one label a row; integers or strings).

    A text file's labels are numbers when every one reads as a number (so ``3`` there is the class 3 of a
    ``.npy`` file), names otherwise; a text file of n + 1 rows starts with a header, which is skipped.
    """
    from ..io.arrays import read_array

    if not str(spec).lower().endswith((".txt", ".csv")):
        return check_labels(np.asarray(read_array(spec)).reshape(-1), n, name=f"{spec}: labels")
    y = np.char.strip(np.loadtxt(spec, dtype=str, delimiter=",", ndmin=1))
    if y.shape[0] == n + 1:
        y = y[1:]
    for kind in (np.int64, np.float64):
        try:
            y = y.astype(kind)
            break
        except ValueError:
            pass
    return check_labels(y, n, name=f"{spec}: labels")


def check_labels(y, n: int, name: str = "labels") -> np.ndarray:
    """n class labels, one per point: a 1-D array of integers or strings (integral floats become integers)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise MmsoldError(f"{name}: expected {n} labels, one per point (a 1-D array), got shape {y.shape}")
    if y.dtype.kind == "S":  # names as bytes: the same names as text (model files store them as text)
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError as e:
            raise MmsoldError(f"{name}: byte-string labels that are not UTF-8 ({e.reason} at byte {e.start})") from None
    if y.dtype.kind in "fc":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise MmsoldError(f"{name} must be integers or names, got non-integer numbers")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iuUSb" and not all(isinstance(v, str) for v in y):
        raise MmsoldError(f"{name} must be integers or names, got {y.dtype} values such as {y[0]!r}")
    return y


def fit_class_models(X, y, *, index: str = "auto", name: str = "data") -> dict:
    """One fitted model per class, by label (sorted): each class needs more points than dimensions."""
    from ..validation import check_points

    X = check_points(X, name=name)
    return _fit_class_models(X, check_labels(y, X.shape[0]), index=index, name=name)


def _fit_class_models(X, y, *, index: str, name: str) -> dict:
    """:func:`fit_class_models` of checked points and labels."""
    from ..model import fit_moments

    models = {}
    for c in np.unique(y):
        Xc = X[y == c]
        if Xc.shape[0] <= X.shape[1]:
            raise MmsoldError(f"{name}: class {c.item() if isinstance(c, np.generic) else c!r} has {Xc.shape[0]} points; expected more than the dimension "
                              f"{X.shape[1]} to fit its moments")
        models[c.item() if isinstance(c, np.generic) else c] = fit_moments(Xc, index=index, name=f"{name} class {c}")
    return models


def class_seed(seed, i: int):
    """The seed of class i of a run with ``seed`` (None stays None: fresh entropy)."""
    if check_seed(seed, "seed") is None:
        return None
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, np.uint64)[0] >> 1)


def sample_classes(models: dict, counts: dict, *, seed=None, **options):
    """``counts[c]`` samples of each class's model: (points, labels, per-class SampleResult)."""
    from ..defaults import draw_count
    from ..sampling import sample

    points, labels, results = [], [], {}
    for i, (c, model) in enumerate(models.items()):
        k = int(counts[c])
        if k == 0:
            continue
        draw = draw_count(k, model.d_, options.get("sampler"), what=f"samples of class {c!r}")
        res = sample(model, draw, random_state=class_seed(seed, i), **options)
        results[c] = res
        points.append(res.samples[:k])
        labels.append(np.full(k, c))
    if not points:
        raise MmsoldError("no samples asked for: every class count is 0")
    return np.concatenate(points), np.concatenate(labels), results


def augment(X, y, factor: float, *, seed=None, index: str = "auto", **options):
    """The original points followed by round(factor × n_c) generated ones per class: (points, labels, generated)."""
    from ..validation import check_points, check_positive

    factor = check_positive(factor, "factor")
    X = check_points(X)
    y = check_labels(y, X.shape[0])
    models = _fit_class_models(X, y, index=index, name="data")
    counts = {c: int(round(factor * np.sum(y == c))) for c in models}
    G, yg, _ = sample_classes(models, counts, seed=seed, **options)
    points = np.concatenate([X, G])
    labels = np.concatenate([y, yg.astype(y.dtype)])
    generated = np.concatenate([np.zeros(len(X), bool), np.ones(len(G), bool)])
    return points, labels, generated
