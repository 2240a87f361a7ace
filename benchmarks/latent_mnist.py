"""Generating MNIST digits in a 64-D PCA latent space: MM-SOLD against its rivals.

    python benchmarks/latent_mnist.py [--k 64] [--n 10000] [--steps N] [--methods mmsold,sold,cfdm,gaussian,kde]
                                      [--cache DIR] [--figure docs/latent_mnist.png] [--json out.json]

Data: ``../shared/data/mnist.npz`` (70,000 images).  The file is sorted by
label, so "the first 60,000 images" would be a training set without nines
and a test set of eights and nines only; we split each class in file order
with the official MNIST per-class training counts (5,923 zeros, 6,742 ones,
…), which gives 60,000 training and 10,000 test images with every class
in both (the official split, if the file was sorted stably).

Pipeline: a K = 64 PCA basis on the training images (:mod:`mmsold_cli.workflows.latent`),
the codes of the training images as the model's training set; each method
draws 10,000 codes, decoded to images.  Against the 10,000 test codes:

* KID — unbiased polynomial-kernel MMD² (x·y/d + 1)³ on the codes, mean ± std
  over 100 subsets of 1,000 (:func:`mmsold_cli.metrics.points.kid`);
* precision / recall on the codes (k = 3, Kynkäänniemi et al. 2019);
* a classifier trained on the training images (scikit-learn MLP, 256 hidden
  units; its weights are cached as plain arrays, no pickle): its accuracy on
  the test images; on the samples the share it labels with confidence ≥ 0.9
  (fidelity) and the total-variation distance of its class histogram from the
  training labels' (diversity: 0 = the right mix of digits);
* memorisation: the share of samples closer to a training code than a third
  of that code's nearest-neighbour distance.

Rows: ``train`` (10,000 training images through the PCA, what a perfect
generator could match), ``gaussian`` (a Gaussian fitted to the codes),
``kde`` (scipy's gaussian_kde on the codes, Scott's bandwidth), and the
samplers ``sold``, ``mmsold`` and ``cfdm`` at the library defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from latent_data import split

from mmsold_cli._numba import source_digest
from mmsold_cli.metrics.points import kid, memorisation_fraction, precision_recall
from mmsold_cli.model import Model, fit_moments
from mmsold_cli.workflows import latent

CONFIDENT = 0.9

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


def _relu(x):
    return np.maximum(x, 0.0)


def classifier(images, labels, cache: Path):
    """(weights, biases) of a one-hidden-layer MLP on pixels/255, trained once and cached as .npz."""
    path = cache / "mnist_mlp.npz"
    if path.exists():
        z = np.load(path)
        return [z["W0"], z["W1"]], [z["b0"], z["b1"]]
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=20, random_state=0, batch_size=256)
    clf.fit(images.reshape(len(images), -1) / 255.0, labels)
    np.savez(path, W0=clf.coefs_[0], W1=clf.coefs_[1], b0=clf.intercepts_[0], b1=clf.intercepts_[1])
    return list(clf.coefs_), list(clf.intercepts_)


def predict_proba(net, images):
    """Class probabilities of images (N, 28, 28) in [0, 255]."""
    W, b = net
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    logits = _relu(x @ W[0] + b[0]) @ W[1] + b[1]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def draw(method, model, codes_train, n, seed, steps, draws, t_factor=None, sigma_ratio=None):
    rng = np.random.default_rng(seed)
    if method == "train":
        return codes_train[rng.choice(len(codes_train), n, replace=False)]
    if method == "gaussian":
        return rng.multivariate_normal(model.mean_, model.covariance_, size=n)
    if method == "kde":
        from scipy.stats import gaussian_kde

        return gaussian_kde(codes_train.T).resample(n, seed=seed).T
    from mmsold_cli.sampling import sample

    opts = {k: v for k, v in (("steps", steps), ("M", draws)) if v is not None}
    if t_factor is not None and method != "cfdm":
        opts["t"] = t_factor * model.spacing_
        if sigma_ratio is not None:
            opts["sigma"] = sigma_ratio * opts["t"]
    return sample(model, n, random_state=seed, sampler=method, **opts).samples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps [library defaults]")
    ap.add_argument("--draws", type=int, default=None, help="draws M per score evaluation [library defaults]")
    ap.add_argument("--t-factor", type=float, default=None,
                    help="noise t = this × the codes' spacing for sold/mmsold [library default]")
    ap.add_argument("--sigma-ratio", type=float, default=None, help="σ = this × t (with --t-factor) [library default]")
    ap.add_argument("--methods", default="train,gaussian,kde,sold,mmsold,cfdm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index", default="auto", help="neighbour index of the model (auto, brute, nndescent)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "mmsold-latent-cache"))
    ap.add_argument("--figure", default=None, help="image grids of every method (PNG)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    z = np.load(DATA)
    images, labels = z["images"], z["labels"]
    tr, te = split(labels)
    t0 = time.perf_counter()
    basis = latent.fit_pca(images[tr], args.k)
    codes_tr, codes_te = latent.encode(images[tr], basis), latent.encode(images[te], basis)
    print(f"PCA K={args.k}: {time.perf_counter() - t0:.1f} s, explained variance "
          f"{basis.explained_variance.sum() / np.var(images[tr].reshape(len(tr), -1) / 255.0, axis=0).sum():.3f}",
          flush=True)
    t0 = time.perf_counter()
    net = classifier(images[tr], labels[tr], cache)
    acc = float((predict_proba(net, images[te]).argmax(1) == labels[te]).mean())
    acc_pca = float((predict_proba(net, latent.decode(codes_te, basis, as_input=True)).argmax(1) == labels[te]).mean())
    print(f"classifier: test accuracy {acc:.4f} (on PCA-reconstructed test images {acc_pca:.4f}), "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    label_freq = np.bincount(labels[tr], minlength=10) / len(tr)
    t0 = time.perf_counter()
    mfile = cache / f"model_k{args.k}_{args.index}.h5"
    model = Model.load(mfile) if mfile.exists() else None
    if model is None or model.X_.shape != codes_tr.shape or not np.array_equal(model.X_, codes_tr):
        # no cache, or one fitted on other codes (another split or PCA): refit
        model = fit_moments(codes_tr, index=args.index, name="mnist codes")
        model.extras_ = latent.to_extras(basis)
        model.save(mfile, overwrite=True)
    print(f"model: {model.n_} codes, index {model.index_kind_}, spacing {model.spacing_:.3f}, "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rows, grids = {}, {}
    for method in args.methods.split(","):
        tkey = (args.t_factor, args.sigma_ratio) if method in ("sold", "mmsold") else (None, None)
        # keyed on the package's source state too: samples cached by other code (other defaults) are not reused
        f = cache / (f"samples_{method}_k{args.k}_n{args.n}_s{args.seed}_steps{args.steps}_M{args.draws}"
                     f"_t{tkey[0]}_r{tkey[1]}_{args.index}_{source_digest()}.npy")
        t0 = time.perf_counter()
        if f.exists():
            S = np.load(f)
            seconds = float("nan")
        else:
            S = draw(method, model, codes_tr, args.n, args.seed, args.steps, args.draws, args.t_factor,
                     args.sigma_ratio)
            seconds = time.perf_counter() - t0
            np.save(f, S)
        imgs = latent.decode(S, basis, as_input=True)
        p = predict_proba(net, imgs)
        hist = np.bincount(p.argmax(1), minlength=10) / len(p)
        k_mean, k_std = kid(S, codes_te, random_state=args.seed)
        prec, rec = precision_recall(S, codes_te, random_state=args.seed)
        rows[method] = dict(
            kid=k_mean, kid_std=k_std, precision=prec, recall=rec,
            confident=float((p.max(1) >= CONFIDENT).mean()), mean_confidence=float(p.max(1).mean()),
            class_tv=float(0.5 * np.abs(hist - label_freq).sum()), class_hist=hist.tolist(),
            memorisation=memorisation_fraction(S, model.X_, model.nn_dist_, model.index_),
            seconds=seconds,
        )
        grids[method] = latent.decode(S[:100], basis)
        r = rows[method]
        print(f"  {method:9s} KID {r['kid']:.4f}±{r['kid_std']:.4f}  P {prec:.3f} R {rec:.3f}  "
              f"conf≥{CONFIDENT} {r['confident']:.3f}  class TV {r['class_tv']:.3f}  mem {r['memorisation']:.3f}  "
              f"({seconds:.0f} s)", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    print(f"\nclassifier test accuracy {acc:.4f}; label frequencies {np.round(label_freq, 3).tolist()}\n")
    print("| method | KID (codes) | precision | recall | confident (≥ 0.9) | mean confidence | class TV | memorisation | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {r['kid']:.4f} ± {r['kid_std']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['confident']:.3f} | {r['mean_confidence']:.3f} | {r['class_tv']:.3f} | {r['memorisation']:.4f} | "
              f"{r['seconds']:.0f} |")
    if args.figure:
        from mmsold_cli.plots import image_panels

        image_panels(args.figure, grids, ncol=8, max_images=64, dpi=80)
        print(f"\nfigure: {args.figure}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(test_accuracy=acc, test_accuracy_pca=acc_pca, rows=rows), indent=1))


if __name__ == "__main__":
    main()
