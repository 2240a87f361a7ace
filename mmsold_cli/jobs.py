"""File-to-file jobs: what each command of ``mmsold`` does, as one library function.

The command line parses its options, calls one of these and prints the summary it returns; batch
pipelines can call them directly.  Each checks its inputs and outputs before any work (an output that
is an input, an existing output without ``overwrite``, an output that cannot fit the disk or memory)
and writes atomically: on any error or signal nothing is left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import MmsoldError
from .io.arrays import check_output_dim
from .validation import check_int, check_positive, check_seed

__all__ = ["fit_moments_job", "sample_job", "augment_job", "classify_job", "evaluate_job", "densify_job", "is_model_file"]


def is_model_file(spec: str) -> bool:
    """Whether ``spec`` names an mmsold model file (HDF5 with a ``format`` attribute)."""
    from .io.arrays import split_path_key
    from .io.model_file import MODEL_EXTENSIONS

    path, key = split_path_key(spec)
    if key is not None or path.suffix.lower() not in MODEL_EXTENSIONS or not path.exists():
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "format" in f.attrs
    except OSError:
        return False


def check_extension(output: Path, extensions=None) -> None:
    """An output's extension must be one the writers know (``extensions``; default the point formats)."""
    from .io.arrays import WRITE_EXTENSIONS

    extensions = WRITE_EXTENSIONS if extensions is None else tuple(extensions)
    if Path(output).suffix.lower() not in extensions:
        raise MmsoldError(f"{output}: unknown output extension {Path(output).suffix!r}; expected one of "
                          f"{', '.join(extensions)}")


def check_outputs(output: Path, plot, overwrite: bool, inputs=(), extensions=None) -> Path:
    """Refuse unusable outputs before any work: the results, their diagnostics file and the picture (each new or
    ``overwrite``, none of them one of the ``inputs``, the results in a known format); the diagnostics path."""
    from .io.arrays import check_output_path
    from .io.room import check_not_inputs

    output = Path(output)
    diag_path = output.with_name(output.stem + ".diagnostics.json")
    check_not_inputs([output, diag_path, plot], inputs)
    check_extension(output, extensions)
    check_output_path(output, overwrite=overwrite)
    check_output_path(diag_path, overwrite=overwrite)
    if plot is not None:
        from .plots import check_plot_path

        check_plot_path(plot)
        check_output_path(plot, overwrite=overwrite)
    return diag_path


def fit_moments_job(data, output, *, index: str = "auto", pca: int | None = None, labels=None,
                    whiten: int | None = None, overwrite: bool = False, dask=None) -> dict:
    """Read a training set (or images, with ``pca``), fit a model and save it; the summary.

    ``labels`` (a file of one label per point, or ``col:K`` for column K of the data): one model per
    class in one file.  ``whiten`` K: the partial whitening of :mod:`mmsold_cli.workflows.whiten`
    (top K directions kept) before fitting; samples are mapped back when written.

    A chunked input (a ``.zarr`` store, a glob pattern or a folder of files) or ``dask`` (a cluster
    address): the mean and covariance by map-reduce over the input's blocks
    (:mod:`mmsold_cli.distributed.moments`), on the cluster's workers with ``dask``.
    """
    from .distributed.moments import is_chunked_input

    if dask is not None or is_chunked_input(data):
        return _fit_moments_blocks_job(data, output, index=index, pca=pca, labels=labels, whiten=whiten,
                                       overwrite=overwrite, dask=dask)
    import time

    import numpy as np

    from .io.arrays import check_output_path, read_array, read_points
    from .io.model_file import MODEL_EXTENSIONS, save_class_models
    from .io.room import check_not_inputs
    from .model import fit_moments
    from .workflows import labelled
    from .workflows import whiten as wh

    label_file = labels if labels is not None and not str(labels).startswith("col:") else None
    check_not_inputs([output], [data, label_file])
    check_extension(output, MODEL_EXTENSIONS)
    check_output_path(output, overwrite=overwrite)
    extras, basis = {}, None
    if pca is not None:
        from .workflows import latent

        images = latent.images_from_array(read_array(data), name=str(data))
        t0 = time.perf_counter()
        basis = latent.fit_pca(images, pca)
        X = latent.encode(images, basis)
        extras.update(latent.to_extras(basis))
    else:
        X = read_points(data)
        t0 = time.perf_counter()
    y = None
    if labels is not None:
        if label_file is None:
            if pca is not None:
                raise MmsoldError(f"labels {labels!r} name a column, but --pca data are images; give a labels file")
            X, y = labelled.split_label_column(X, str(labels))
        else:
            y = labelled.read_labels(label_file, X.shape[0])
    if whiten is not None:
        w = wh.fit_whitening(X, whiten)
        X = wh.whiten(X, w)
        extras.update(wh.to_extras(w))
    settings = {"source": str(data), "index": index, "pca": pca, "labels": None if labels is None else str(labels),
                "whiten": whiten}
    if y is None:
        model = fit_moments(X, index=index, name=str(data))
        model.extras_ = extras
        model.save(output, overwrite=overwrite, settings=settings)
        models = {None: model}
    else:
        models = labelled.fit_class_models(X, y, index=index, name=str(data))
        for m in models.values():
            m.extras_ = extras
        save_class_models(models, output, overwrite=overwrite, settings=settings)
    first = next(iter(models.values()))
    summary = {
        "model": str(output),
        "points": int(sum(m.n_ for m in models.values())),
        "dim": first.d_,
        "index": first.index_kind_,
        "spacing": float(np.mean([m.spacing_ for m in models.values()])),
        "jitter": max(m.jitter_ for m in models.values()),
        "fit_seconds": time.perf_counter() - t0,
    }
    if y is not None:
        summary["classes"] = len(models)
    if basis is not None:
        summary["pca_components"] = basis.k
        summary["pca_image_shape"] = "×".join(map(str, basis.shape))
    return summary


def _fit_moments_blocks_job(data, output, *, index, pca, labels, whiten, overwrite, dask) -> dict:
    """``fit_moments_job`` with the moments by map-reduce (see :func:`fit_moments_job`)."""
    import contextlib
    import time

    from .distributed.moments import distributed_moments, read_all
    from .io.arrays import check_output_path
    from .io.model_file import MODEL_EXTENSIONS
    from .io.room import check_not_inputs
    from .model import Model

    if dask is not None:
        from .distributed.client import parse_address, require_dask

        parse_address(dask)
        require_dask()
    if str(data).lower().rstrip("/").split(":")[0].endswith(".zarr"):
        from .distributed.zarr_store import _require_zarr

        _require_zarr()
    for name, value in (("--pca", pca), ("--labels", labels), ("--whiten", whiten)):
        if value is not None:
            raise MmsoldError(f"{name} is not available for a chunked input or with --dask")
    if not any(c in str(data) for c in "*?["):
        check_not_inputs([output], [data])
    check_extension(output, MODEL_EXTENSIONS)
    check_output_path(output, overwrite=overwrite)
    t0 = time.perf_counter()
    if dask is not None:
        from .distributed.client import connect

        ctx = connect(dask)
    else:
        ctx = contextlib.nullcontext(None)
    with ctx as client:
        mom = distributed_moments(data, client=client)
    X = read_all(data)  # the model holds the points (its index and score need them)
    if X.shape[0] != mom["n"]:
        raise MmsoldError(f"{data}: the input changed while it was read ({mom['n']} then {X.shape[0]} rows)")
    model = Model(index=index).fit(X, name=str(data), moments=(mom["mean"], mom["covariance"]))
    model.extras_ = {}
    model.save(output, overwrite=overwrite, settings={"source": str(data), "index": index, "pca": None,
                                                      "labels": None, "whiten": None, "moments": "map-reduce"})
    return {"model": str(output), "points": model.n_, "dim": model.d_, "index": model.index_kind_,
            "spacing": model.spacing_, "jitter": model.jitter_, "fit_seconds": time.perf_counter() - t0,
            "moment_blocks": mom["blocks"], "cluster": dask is not None}


class _Mapped:
    """An ``out`` for :func:`mmsold_cli.sampling.sample` that maps each batch before storing it."""

    def __init__(self, out, fn, shape):
        self.out, self.fn, self.shape = out, fn, shape

    def __setitem__(self, key, X):
        self.out[key] = self.fn(X)


def sample_job(model_path, output, n: int | None = None, *, seed=None, label=None, per_class: int | None = None,
               plot=None, overwrite: bool = False, progress=None, dask=None, **options) -> dict:
    """Sample a model file to ``output`` (streamed for .npy and text) with a diagnostics JSON beside it.

    A model with a PCA basis also gets its decoded images (``OUT.images.npy``) and a grid (``OUT.png``);
    a whitened model's samples are mapped back.  A per-class file: ``label`` samples one class,
    ``per_class`` samples every class that many times; the labels go to ``OUT.labels.npy``.
    ``options`` as for :func:`mmsold_cli.sampling.sample`.

    ``dask``: a cluster address (:mod:`mmsold_cli.distributed.client`): shards of the run are tasks there,
    with the bytes of the one-machine run.  A ``.zarr`` output (also without ``dask``) is a Zarr v3 store
    filled shard by shard (:mod:`mmsold_cli.distributed.zarr_store`).  ``progress`` then counts shards:
    ``progress(done, total, 0, 0)``.
    """
    import numpy as np

    seed = check_seed(seed, "seed")
    if dask is not None or Path(output).suffix.lower() == ".zarr":
        return _sample_sharded_job(model_path, output, n, seed=seed, label=label, per_class=per_class, plot=plot,
                                   overwrite=overwrite, progress=progress, dask=dask, options=options)

    from .defaults import draw_count
    from .io.arrays import (
        STREAM_EXTENSIONS,
        PointWriter,
        atomic_paths,
        check_output_path,
        save_points,
    )
    from .io.model_file import load_class_models, load_model
    from .io.room import check_distinct_outputs, check_not_inputs, check_room
    from .sampling import resolve_settings, sample
    from .workflows import labelled, latent
    from .workflows import whiten as wh

    output = Path(output)
    diag_path = check_outputs(output, plot, overwrite, [model_path])
    if (n is None) == (per_class is None):
        raise MmsoldError("give either a number of samples (-n, n=) or a number per class (--per-class, per_class=), "
                          f"got {'both' if n is not None else 'neither'}")
    if per_class is not None and label is not None:
        raise MmsoldError(f"sample one class or every class, got class {label!r} and per class {per_class!r}")
    if per_class is not None:
        models = load_class_models(model_path)
        n = per_class * len(models)
    else:
        models = {label: load_model(model_path, label=label)}
    model = next(iter(models.values()))
    check_output_dim(output, model.d_)
    labelled_out = per_class is not None or label is not None
    basis = latent.from_extras(model.extras_) if latent.has_basis(model) else None
    white = wh.from_extras(model.extras_) if wh.has_whitening(model) else None
    if plot is not None and basis is None:
        from .plots import check_plot_path

        check_plot_path(plot, dim=model.d_)
    extra_paths = []
    if basis is not None:
        extra_paths += [output.with_name(output.stem + ".images.npy"), output.with_name(output.stem + ".png")]
    if labelled_out:
        extra_paths.append(output.with_name(output.stem + ".labels.npy"))
    check_not_inputs(extra_paths, [model_path])
    check_distinct_outputs([output, diag_path, plot, *extra_paths],
                           hint=" (a model with a PCA basis also writes its samples' image grid to OUTPUT.png)"
                           if basis is not None else "")
    for p in extra_paths:
        check_output_path(p, overwrite=overwrite)
    # d or fewer samples cannot hold the moments: the first n of one ensemble (draw_count; per class, the
    # warning comes from sample_classes, one per class)
    count = check_int(n if per_class is None else per_class, "number of samples n" if per_class is None
                      else "samples per class", low=1)
    draw = draw_count(count, model.d_, options.get("sampler"), what=None if per_class is not None else "samples")

    def drawn(k):  # the settings say what was kept and what was drawn
        return {"n": k, "drawn": draw} if draw != k else {}
    for m in models.values():
        resolve_settings(m, draw, **options)  # bad options: before any work
    # streamed to the file batch by batch unless something below needs them all in memory
    stream = (basis is None and plot is None and not labelled_out and output.suffix.lower() in STREAM_EXTENSIONS
              and draw == n)
    check_room(output, n, model.d_, in_memory=not stream)
    if basis is not None:  # the decoded images, float32 per pixel
        check_room(extra_paths[0], n, max(1, basis.components.shape[1] // 2), in_memory=True)
    back = (lambda Z: Z) if white is None else (lambda Z: wh.unwhiten(Z, white))

    # samples, diagnostics (images, labels) appear together or not at all
    with atomic_paths(output, diag_path, *extra_paths, overwrite=overwrite) as (tmp_out, tmp_diag, *tmp_extra):
        if per_class is not None:
            Z, y, results = labelled.sample_classes(models, {c: per_class for c in models}, seed=seed, **options)
            res = next(iter(results.values()))
            # each class's model sets its own t, σ, search …: the settings per class, the run's options above them
            given = {k: v for k, v in options.items() if v is not None}
            diag = {"settings": {"model": str(model_path), "per_class": per_class, "random_state": seed, **given},
                    "classes": {str(c): {"settings": dict(r.settings, **drawn(per_class)), **r.diagnostics}
                                for c, r in results.items()}}
            Z = back(Z)
        else:
            if stream:
                with PointWriter(tmp_out, n, model.d_, fmt=output.suffix) as writer:
                    res = sample(model, n, random_state=seed, progress=progress,
                                 out=_Mapped(writer, back, (n, model.d_)), **options)
            else:
                res = sample(model, draw, random_state=seed, progress=progress, **options)
            Z = None if stream else back(res.samples[:n])
            y = None if label is None else np.full(n, label)
            diag = {"settings": dict(res.settings, model=str(model_path), label=label, **drawn(n)), **res.diagnostics}
        if Z is not None:
            save_points(tmp_out, Z, fmt=output.suffix)
        tmp_diag.write_text(json.dumps(diag, indent=1, default=str))
        if basis is not None:
            latent.write_decoded(tmp_extra[0], tmp_extra[1], Z, basis)
        if labelled_out:
            with open(tmp_extra[-1], "wb") as fh:
                np.save(fh, np.asarray(y), allow_pickle=False)
    if plot is not None:
        from .plots import plot_result

        plot_result(plot, Z, back(model.X_[: max(Z.shape[0], 2000)]), basis=basis,
                    title=f"{res.settings['sampler']}: {Z.shape[0]} samples", reference_label="training")
    summary = _sample_summary(res, output, diag_path, n, model.d_)
    if per_class is not None:  # the whole run's time and speed, each class's t and σ, the worst moment errors
        runs = list(results.values())
        wall = sum(r.diagnostics["wall_time"] for r in runs)
        summary.update(
            wall_time_s=wall,
            particle_steps_per_s=sum(r.samples.shape[0] * r.settings["steps"] for r in runs) / wall,
            steps={str(c): r.settings["steps"] for c, r in results.items()},
            t={str(c): r.settings["t"] for c, r in results.items()},
            sigma={str(c): r.settings["sigma"] for c, r in results.items()},
            final_mean_error=max(r.diagnostics["mean_error"][-1] for r in runs),
            final_cov_error=max(r.diagnostics["cov_error"][-1] for r in runs))
    if labelled_out:
        summary["classes"] = len(models)
        summary["labels"] = str(extra_paths[-1])
    return summary


def _sample_summary(res, output, diag_path, n, d) -> dict:
    """What ``sample`` prints of a run: its files, size, settings, speed and final moment errors."""
    dg = res.diagnostics
    return {
        "output": str(output),
        "diagnostics": str(diag_path),
        "samples": int(n),
        "dim": int(d),
        "sampler": res.settings["sampler"],
        "steps": res.settings["steps"],
        "t": res.settings["t"],
        "sigma": res.settings["sigma"],
        "wall_time_s": dg["wall_time"],
        "particle_steps_per_s": dg["particle_steps_per_s"],
        "final_mean_error": dg["mean_error"][-1],
        "final_cov_error": dg["cov_error"][-1],
    }


class _Rows:
    """An ``out`` writing consecutive row blocks into a Zarr store's samples (one process)."""

    def __init__(self, store, shape):
        import zarr

        from .distributed.zarr_store import ZARR_ARRAY

        self.arr = zarr.open_array(store=str(store.tmp), path=ZARR_ARRAY, mode="r+")
        self.shape = shape

    def __setitem__(self, key, X):
        self.arr[key] = X


def _sample_sharded_job(model_path, output, n, *, seed, label, per_class, plot, overwrite, progress, dask,
                        options) -> dict:
    """``sample_job`` on a Dask cluster, or to a ``.zarr`` store (see :func:`sample_job`)."""
    import contextlib

    import numpy as np

    from .distributed.client import parse_address, require_dask
    from .io.arrays import STREAM_EXTENSIONS, PointWriter, atomic_paths, check_output_path, save_points
    from .io.model_file import load_model
    from .io.room import check_not_inputs, check_room
    from .sampling import resolve_settings, sample
    from .workflows import latent
    from .workflows import whiten as wh

    output = Path(output)
    zarr_out = output.suffix.lower() == ".zarr"
    if dask is not None:
        parse_address(dask)  # a bad address before any work
        require_dask()
    if zarr_out:
        from .distributed.zarr_store import _require_zarr, check_zarr_target

        _require_zarr()
    how = "--dask" if dask is not None else "a .zarr output"
    if per_class is not None:
        raise MmsoldError(f"--per-class is not available with {how}; sample each class with --class")
    if n is None:
        raise MmsoldError("give a number of samples (-n)")
    if plot is not None:
        raise MmsoldError(f"--plot is not available with {how}; draw the output with `mmsold evaluate --plot`")
    diag_path = output.with_name(output.stem + ".diagnostics.json")
    # one class of a per-class file: its labels beside the samples, as sample_job writes them
    extra = [output.with_name(output.stem + ".labels.npy")] if label is not None else []
    check_not_inputs([output, diag_path, *extra], [model_path])
    if zarr_out:
        check_zarr_target(output, overwrite=overwrite)
    else:
        check_extension(output)
        check_output_path(output, overwrite=overwrite)
    for p in (diag_path, *extra):
        check_output_path(p, overwrite=overwrite)
    model = load_model(model_path, label=label)
    if not zarr_out:
        check_output_dim(output, model.d_)
    if latent.has_basis(model):
        raise MmsoldError(f"{model_path}: a model with a PCA basis (decoded images) cannot be sampled with {how}")
    settings = resolve_settings(model, n, **options)  # bad options: before any work
    d = model.d_
    stream = output.suffix.lower() in STREAM_EXTENSIONS
    check_room(output, n, d, in_memory=not (stream or zarr_out))
    white = wh.from_extras(model.extras_) if wh.has_whitening(model) else None
    back = (lambda Z: Z) if white is None else (lambda Z: wh.unwhiten(Z, white))
    shard_progress = None if progress is None else (lambda done, total: progress(done, total, 0, 0))

    def write_labels(tmps):
        for tmp in tmps:
            with open(tmp, "wb") as fh:
                np.save(fh, np.full(n, label), allow_pickle=False)
    if dask is not None:
        from .distributed.client import connect

        ctx = connect(dask)
    else:
        ctx = contextlib.nullcontext(None)
    with ctx as client:
        if client is not None:
            from .distributed.client import measure_overhead
            from .distributed.sample import sample_distributed, shard_rows

            workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
            overhead = measure_overhead(client)
            rows = shard_rows(n, settings["P"], settings["steps"], workers=workers, overhead=overhead)

            def run(**kw):
                return sample_distributed(model, n, client=client, random_state=seed, rows_per_shard=rows,
                                          overhead=overhead, progress=shard_progress, unwhiten=True,
                                          model_path=model_path, label=label,
                                          **kw, **options)
        else:
            from .distributed.sample import shard_rows

            rows = shard_rows(n, settings["P"], settings["steps"], workers=1, overhead=0.0)

            def run(out):
                return sample(model, n, random_state=seed, progress=progress, out=_Mapped(out, back, (n, d)),
                              **options)

        if zarr_out:
            from .distributed.zarr_store import ZarrOutput

            with atomic_paths(diag_path, *extra, overwrite=overwrite) as (tmp_diag, *tmp_extra):
                write_labels(tmp_extra)
                with ZarrOutput(output, n, d, chunk_rows=rows, overwrite=overwrite,
                                attributes={"mmsold": {"model": str(model_path), "random_state": seed}}) as store:
                    res = run(store=store) if client is not None else run(_Rows(store, (n, d)))
                    diag = {"settings": dict(res.settings, model=str(model_path), label=label), **res.diagnostics}
                    store.set_attributes({"mmsold": {"model": str(model_path),
                                                     "random_state": res.settings["random_state"]}})
                    tmp_diag.write_text(json.dumps(diag, indent=1, default=str))
                    store.commit()
        else:
            with atomic_paths(output, diag_path, *extra, overwrite=overwrite) as (tmp_out, tmp_diag, *tmp_extra):
                write_labels(tmp_extra)
                if stream:
                    with PointWriter(tmp_out, n, d, fmt=output.suffix) as writer:
                        res = run(out=writer)
                else:
                    res = run(out=np.empty((n, d)))
                    save_points(tmp_out, res.samples, fmt=output.suffix)
                diag = {"settings": dict(res.settings, model=str(model_path), label=label), **res.diagnostics}
                tmp_diag.write_text(json.dumps(diag, indent=1, default=str))
    dg = res.diagnostics
    summary = _sample_summary(res, output, diag_path, n, d)
    if extra:
        summary.update(classes=1, labels=str(extra[0]))
    if client is not None:
        summary.update(workers=dg["workers"], shards=dg["shards"], rows_per_shard=dg["rows_per_shard"],
                       model_sent=dg["model_sent"])
    return summary


def augment_job(data, labels, output, *, factor: float, seed=None, index: str = "auto", overwrite: bool = False,
                **options) -> dict:
    """Original points plus ``factor`` × n_c generated ones per class to ``output``, labels to ``OUT.labels.npy``."""
    import numpy as np

    from .io.arrays import atomic_paths, check_output_path, read_points, save_points
    from .io.room import check_not_inputs, check_room
    from .workflows import labelled

    seed = check_seed(seed, "seed")
    output = Path(output)
    label_path = output.with_name(output.stem + ".labels.npy")
    label_file = None if str(labels).startswith("col:") else labels
    check_not_inputs([output, label_path], [data, label_file])
    check_extension(output)
    for p in (output, label_path):
        check_output_path(p, overwrite=overwrite)
    X = read_points(data)
    if label_file is None:
        X, y = labelled.split_label_column(X, str(labels))
    else:
        y = labelled.read_labels(label_file, X.shape[0])
    check_output_dim(output, X.shape[1])
    factor = check_positive(factor, "factor")
    check_room(output, int(round(X.shape[0] * (1 + factor))), X.shape[1], in_memory=True)
    points, y_all, generated = labelled.augment(X, y, factor, seed=seed, index=index, **options)
    with atomic_paths(output, label_path, overwrite=overwrite) as (tmp_out, tmp_labels):
        save_points(tmp_out, points, fmt=output.suffix)
        with open(tmp_labels, "wb") as fh:
            np.save(fh, y_all, allow_pickle=False)
    return {"output": str(output), "labels": str(label_path), "original": int(X.shape[0]),
            "generated": int(generated.sum()), "classes": int(len(np.unique(y)))}


def classify_job(model_path, data, output, *, labels=None, seed: int = 0, overwrite: bool = False) -> dict:
    """Classify points with a per-class model file: the minimum-ECM rule of
    :class:`mmsold_cli.estimators.MMSOLDClassifier` (its densities and biases fitted on the stored class
    points, seeded); predictions to ``output``; with true ``labels``, accuracy, macro-F1 and the confusion
    matrix (rows: true class, columns: predicted)."""
    import numpy as np

    from .io.arrays import atomic_paths, check_output_path
    from .io.model_file import load_class_models
    from .io.room import check_not_inputs
    from .workflows import labelled, latent
    from .workflows import whiten as wh

    output = Path(output)
    seed = check_seed(seed, "seed")
    check_not_inputs([output], [model_path, data, labels])
    check_extension(output, (".npy",))
    check_output_path(output, overwrite=overwrite)
    from .estimators import MMSOLDClassifier

    models = load_class_models(model_path)
    if len(models) < 2:
        raise MmsoldError(f"{model_path}: holds one class ({', '.join(map(str, models))}); classifying needs two "
                          "or more")
    first = next(iter(models.values()))
    X = latent.read_model_points(data, latent.from_extras(first.extras_) if latent.has_basis(first) else None)
    if wh.has_whitening(first):  # the class models hold whitened points: the points to classify join them there
        X = wh.whiten(X, wh.from_extras(first.extras_))
    d = first.d_
    if X.shape[1] != d:
        raise MmsoldError(f"{data}: dimension {X.shape[1]} differs from the model's {d}")
    y_true = None if labels is None else labelled.read_labels(labels, X.shape[0])
    if y_true is not None:
        unknown = sorted(set(np.unique(y_true).tolist()) - set(np.asarray(list(models)).tolist()))
        if unknown:
            raise MmsoldError(f"{labels}: labels {', '.join(map(str, unknown))} are not classes of the model "
                              f"({', '.join(map(str, models))})")
    train = np.concatenate([m.X_ for m in models.values()])
    ytrain = np.concatenate([np.full(m.n_, c) for c, m in models.items()])
    clf = MMSOLDClassifier(random_state=seed).fit(train, ytrain)
    pred = clf.predict(X)
    with atomic_paths(output, overwrite=overwrite) as (tmp,):
        with open(tmp, "wb") as fh:
            np.save(fh, pred, allow_pickle=False)
    summary = {"output": str(output), "points": int(X.shape[0]), "classes": len(models)}
    if y_true is not None:
        classes = list(clf.classes_)
        idx = {c: i for i, c in enumerate(classes)}
        cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
        np.add.at(cm, ([idx[c] for c in y_true], [idx[c] for c in pred]), 1)
        tp = np.diag(cm).astype(float)
        prec = np.divide(tp, cm.sum(axis=0), out=np.zeros_like(tp), where=cm.sum(axis=0) > 0)
        rec = np.divide(tp, cm.sum(axis=1), out=np.zeros_like(tp), where=cm.sum(axis=1) > 0)
        f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
        summary.update(accuracy=float(tp.sum() / cm.sum()), macro_f1=float(f1.mean()),
                       confusion=cm.tolist(), class_order=[str(c) for c in classes])
    return summary


def evaluate_job(samples, reference, *, train=None, mesh=None, plot=None, seed: int = 0, repeats: int = 1) -> dict:
    """Metrics of a samples file against a reference file (:func:`mmsold_cli.metrics.evaluate_all`).

    ``repeats`` R > 1: the figures that depend on the seed (projections, subsets, surface points) with seeds
    seed … seed + R − 1, each reported as the mean with its standard deviation beside it (``name_sd``); the
    others are computed once."""
    import numpy as np

    from .io.arrays import read_points
    from .io.room import check_not_inputs
    from .metrics.evaluate import evaluate_all
    from .workflows import latent
    from .workflows import whiten as wh

    seed = check_seed(seed, "seed")
    repeats = check_int(repeats, "repeats", low=1)
    check_not_inputs([plot], [samples, reference, train, mesh])
    model = basis = None
    class_points = None
    if train is not None and is_model_file(train):
        from .io.model_file import class_labels, load_class_models, load_model

        if class_labels(train) is None:
            model = load_model(train)
        else:  # one model per class: memorisation against every class's points
            models = load_class_models(train)
            model = next(iter(models.values()))
            class_points = np.concatenate([m.X_ for m in models.values()])
        basis = latent.from_extras(model.extras_) if latent.has_basis(model) else None
    A = latent.read_model_points(samples, basis)
    B = latent.read_model_points(reference, basis)
    if B.shape[1] != A.shape[1]:
        raise MmsoldError(f"{reference}: dimension {B.shape[1]} differs from the samples' {A.shape[1]}")
    train_X = None
    if model is not None:
        if model.d_ != A.shape[1]:
            raise MmsoldError(f"{train}: model dimension {model.d_} differs from the samples' {A.shape[1]}")
        if class_points is not None or wh.has_whitening(model):
            train_X = model.X_ if class_points is None else class_points
            if wh.has_whitening(model):  # samples come out in the data's space: memorisation there, as in the data
                train_X = wh.unwhiten(train_X, wh.from_extras(model.extras_))
            model = None
    elif train is not None:
        train_X = read_points(train)
    if plot is not None:
        from .plots import check_plot_path

        check_plot_path(plot, dim=A.shape[1] if basis is None else None)
    if mesh is not None and A.shape[1] != 3:
        raise MmsoldError(f"--mesh needs 3-D points; the samples are {A.shape[1]}-D")
    surf = None
    if mesh is not None:
        from .io.mesh import read_mesh

        surf = read_mesh(mesh)
    res, dist = evaluate_all(A, B, train=train_X, model=model, mesh=surf, distances=plot is not None,
                             random_state=seed)
    if repeats > 1:
        more = [evaluate_all(A, B, mesh=surf, random_state=seed + r, seeded_only=True, spacing=res.get("spacing"))[0]
                for r in range(1, repeats)]
        for key in more[0]:
            vals = [res[key]] + [m[key] for m in more]
            res[key], res[key + "_sd"] = float(np.mean(vals)), float(np.std(vals))
        res["repeats"] = repeats
    if plot is not None:
        from .plots import plot_result

        plot_result(plot, A, B, basis=basis, distances=dist,
                    value_label="distance to surface / spacing" if dist is not None else "")
        res["plot"] = str(plot)
    return res


#: New points lie within a few spacings of the input's bounding box: the share of its extent a LAS output's
#: integer grid must hold beyond it before densify starts (the writer checks every block it writes anyway).
LAS_GRID_MARGIN = 0.01
#: Extensions densify writes: the point formats, plus LAS/LAZ, PTS (and E57 when its reader is installed).
SCAN_EXTENSIONS = (".las", ".laz", ".e57", ".pts")
_NOISE = {"auto": "auto", "on": True, "off": False, True: True, False: False}


def default_dense_output(sparse) -> Path:
    """``INPUT.dense.EXT`` beside the input, in the input's format (``.ply`` when that cannot be written)."""
    from .io.arrays import WRITE_EXTENSIONS, split_path_key

    path, _ = split_path_key(sparse)
    ext = path.suffix.lower()
    ext = ext if ext in WRITE_EXTENSIONS + SCAN_EXTENSIONS else ".ply"
    return path.with_name(f"{path.stem}.dense{ext}")


def parse_drop(drop) -> tuple | bool:
    """``--drop-attributes``: None → nothing, ``"all"`` → True, ``"a,b"`` → ("a", "b"); an iterable passes."""
    if drop is None or drop is False:
        return ()
    if drop is True:
        return True
    if isinstance(drop, str):
        if drop.strip().lower() == "all":
            return True
        names = tuple(a.strip() for a in drop.split(",") if a.strip())
        if not names:
            raise MmsoldError(f"--drop-attributes expects attribute names separated by commas, or 'all'; got {drop!r}")
        return names
    return tuple(drop)


def _check_scan_output(output: Path) -> None:
    """A LAS/LAZ/E57 output needs its writer installed: refuse before any work."""
    ext = output.suffix.lower()
    if ext in (".las", ".laz"):
        from .io.las import require_laspy

        require_laspy(ext == ".laz")
    elif ext == ".e57":
        from .io.e57 import require_pye57

        require_pye57()


def densify_job(sparse, output=None, *, n=None, factor: float = 20.0, denoise: str = "mls", seed=None, plot=None,
                overwrite: bool = False, progress=None, normals=False, drop_attributes=None,
                keep_input: bool = False, project_input: bool = False, noise="auto", even="auto",
                tile_points: int | None = None, halo: float | None = None, dask=None, **options) -> dict:
    """Densify a cloud file to ``output`` with a diagnostics JSON beside it
    (:func:`mmsold_cli.workflows.densify.densify_cloud`).

    LAS/LAZ, PLY (and E57 with its extra) keep every per-point attribute: the new points take them from the
    input (measurements interpolated, classes from the nearest point); other formats carry positions only.
    ``output`` defaults to ``INPUT.dense.EXT`` in the input's format.  ``noise``: "auto", "on" or "off" (or
    a bool); ``drop_attributes``: names (a list, or "a,b") or "all"; ``project_input`` implies
    ``keep_input``; ``tile_points`` None: tiles when the cloud exceeds
    :func:`mmsold_cli.workflows.tiles.auto_tile_points`, 0: never.

    ``dask``: a cluster address: the cloud is densified in tiles, one task each, with the bytes (and the
    attributes) of the one-machine tiled run (``progress(tiles_done, tiles_total, 0, 0)``); not with
    ``project_input`` (the tiles' surfaces stay on the workers).  A ``.zarr`` output, with or without
    ``dask``, is a Zarr v3 store of the positions only.
    """
    seed = check_seed(seed, "seed")
    if output is not None and Path(output).suffix.lower() == ".zarr":
        if normals or drop_attributes or keep_input or project_input or noise != "auto" or halo is not None:
            raise MmsoldError(".zarr outputs hold positions only: --normals, --drop-attributes, --keep-input, "
                              "--project-input, --noise and --halo are not available with them")
        return _densify_zarr_job(sparse, output, n=n, factor=factor, denoise=denoise, seed=seed, plot=plot,
                                 overwrite=overwrite, progress=progress, dask=dask, tile_points=tile_points,
                                 options=dict(options, even=even))
    import contextlib
    import time
    import warnings

    import numpy as np

    from .io.arrays import WRITE_EXTENSIONS, atomic_paths
    from .io.cloud import CLOUD_FORMATS, CloudWriter, held_attributes, read_cloud
    from .io.room import check_room
    from .workflows.densify import densify_cloud

    t_start = time.perf_counter()
    output = default_dense_output(sparse) if output is None else Path(output)
    ext = output.suffix.lower()
    if noise not in _NOISE:
        raise MmsoldError(f"--noise must be auto, on or off, got {noise!r}")
    if normals is not False and normals is not None:
        from .workflows.normals import orientation

        orientation(normals)  # a bad --normals-toward is refused before anything is read
    if dask is not None:
        from .distributed.client import parse_address, require_dask

        parse_address(dask)
        require_dask()
        if project_input:
            raise MmsoldError("--project-input is not available with --dask: the tiles' surfaces stay on the workers")
    drop = parse_drop(drop_attributes)
    keep_input = bool(keep_input or project_input)
    diag_path = check_outputs(output, plot, overwrite, [sparse], extensions=WRITE_EXTENSIONS + SCAN_EXTENSIONS)
    _check_scan_output(output)
    cloud = read_cloud(sparse)
    if normals and (ext in (".pts", ".e57") or ext not in CLOUD_FORMATS):  # asked for, then lost: refused now
        raise MmsoldError(f"a {ext} file has no place for normals: write .txt, .ply or .las with --normals")
    carried = [] if drop is True else [a for a in cloud.attributes if a not in drop]
    left_out = [a for a in carried if a not in held_attributes(ext, carried)]
    if left_out:  # a conversion to a format that holds less: said once, before the work
        warnings.warn(f"a {ext} file has no place for {', '.join(left_out)}: left out of {output.name}", stacklevel=2)
    if n is not None:
        n = check_int(n, "number of output points n", low=1)
    else:
        factor = check_positive(factor, "factor")
    n_out = int(n if n is not None else round(factor * len(cloud))) + (len(cloud) if keep_input else 0)
    # the output goes to disk part by part (a tile at a time); HDF5 and E57 are written whole at the end
    check_room(output, n_out, 3 + len(cloud.attributes) + 3 * bool(normals),
               in_memory=ext in (".h5", ".hdf5", ".e57"))
    lo, hi = cloud.positions.min(axis=0), cloud.positions.max(axis=0)
    if ext in (".las", ".laz"):  # the input's grid, reused, must hold the new points: refused now, not at the end
        from .io.las import check_las_grid

        pad = LAS_GRID_MARGIN * float((hi - lo).max())
        check_las_grid(cloud.meta.get("las_header"), lo - pad, hi + pad, output,
                       what=f"the input's points, grown by {LAS_GRID_MARGIN:.0%} of their extent,")
    shown: list = []  # every stride-th output point, for the plot
    count = {"points": 0, "attributes": []}

    with atomic_paths(output, diag_path, overwrite=overwrite) as (tmp_out, tmp_diag):
        with contextlib.ExitStack() as stack:
            def sink(n_points):
                writer = stack.enter_context(CloudWriter(tmp_out, n_points, like=cloud,
                                                         bounds=(lo, float((hi - lo).max()))))
                stride = max(1, n_points // 200_000)

                def put(part):
                    writer.write(part)
                    if plot is not None:
                        shown.append(part.positions[(-count["points"]) % stride::stride])
                    count["points"] += len(part)
                    count["attributes"] = list(part.attributes)
                return put

            client = None
            if dask is not None:  # the tiles are tasks there; the parts come back here, to the same writer
                from .distributed.client import connect

                client = stack.enter_context(connect(dask))
            _, diag = densify_cloud(cloud, n, factor=factor, random_state=seed, normals=normals,
                                    drop_attributes=drop, keep_input=keep_input, project_input=project_input,
                                    tile_points=tile_points, halo=halo, progress=progress, denoise=denoise,
                                    noise=_NOISE[noise], even=even, sink=sink, client=client,
                                    tile_progress=None if client is None or progress is None
                                    else (lambda done, total: progress(done, total, 0, 0)), **options)
        tiles = diag.get("tiles") or []
        run_seed = diag.get("seed", seed)
        if tiles:
            core = np.array([t["core_points"] for t in tiles], dtype=float)
            settings = dict(denoise=denoise, tile_points=diag.get("tile_points"), halo=diag.get("halo"))
            spacing = float(np.average([t.get("spacing", np.nan) for t in tiles], weights=np.maximum(core, 1)))
            summary_extra = dict(
                t=None, sample_seconds=float(sum(t.get("sample_time", 0.0) for t in tiles)),
                denoise_seconds=float(sum(t.get("denoise_time", 0.0) for t in tiles)),
                mean_move_spacings=float(np.average([t.get("mean_move", 0.0) for t in tiles], weights=np.maximum(core, 1))),
                noisy_tiles=int(sum(bool(t.get("noisy")) for t in tiles)),
                even=diag.get("even"), even_share=diag.get("even_share"),
                even_added=int(sum(t.get("even_added", 0) for t in tiles)) if diag.get("even") else None,
                repeated_points=int(sum(t.get("repeated", 0) for t in tiles)))
            diagnostics = {}
        else:
            settings = dict(diag["settings"])
            spacing = settings["spacing"]
            diagnostics = diag["diagnostics"]
            summary_extra = dict(t=settings.get("t"), sample_seconds=diagnostics["sample_time"],
                                 denoise_seconds=diagnostics["denoise_time"], mean_move_spacings=diagnostics["mean_move"],
                                 noisy=settings.get("noisy"), noise_estimate=settings.get("noise_estimate"),
                                 even=settings.get("even"), even_share=settings.get("even_share"),
                                 even_added=settings.get("even_added"), repeated_points=settings.get("repeated", 0))
        settings.update(source=str(sparse), random_state=run_seed,
                        normals=normals if isinstance(normals, str) else bool(normals), keep_input=keep_input,
                        project_input=bool(project_input), dropped=list(cloud.attributes) if drop is True else list(drop))
        tmp_diag.write_text(json.dumps({"settings": settings, "tiles": tiles or None, **diagnostics}, indent=1,
                                       default=float))
    if plot is not None:
        from .metrics.surface import nn_distance
        from .plots import cloud_views

        P = np.concatenate(shown)
        cloud_views(plot, P, nn_distance(P, cloud.positions) / spacing,
                    value_label="distance to nearest input point / spacing",
                    title=f"{count['points']} points from {len(cloud)}")
    summary = {
        "output": str(output),
        "input_points": len(cloud),
        "output_points": count["points"],
        "attributes": held_attributes(ext, count["attributes"]),
        "tiles": len(tiles) or 1,
        "seed": run_seed,
        "spacing": spacing,
        "denoise": denoise,
    }
    summary.update({k: v for k, v in summary_extra.items() if v is not None or k == "t"})
    if left_out:
        summary["left_out"] = left_out
    if "workers" in diag:
        summary["workers"] = diag["workers"]
    summary["seconds"] = time.perf_counter() - t_start
    return summary


def _densify_zarr_job(sparse, output, *, n, factor, denoise, seed, plot, overwrite, progress, dask, tile_points,
                      options) -> dict:
    """``densify_job`` to a ``.zarr`` store of the positions: written by the workers with ``dask``, here without."""
    import contextlib

    from .distributed.client import parse_address, require_dask
    from .distributed.zarr_store import _require_zarr, check_zarr_target, write_rows
    from .io.arrays import atomic_paths, check_output_path
    from .io.cloud import PointCloud, read_cloud
    from .io.room import check_not_inputs, check_room

    output = Path(output)
    if dask is not None:
        parse_address(dask)
        require_dask()
    _require_zarr()
    if plot is not None:
        raise MmsoldError("--plot is not available with a .zarr output; draw the output with `mmsold evaluate --plot`")
    diag_path = output.with_name(output.stem + ".diagnostics.json")
    check_not_inputs([output, diag_path], [sparse])
    check_zarr_target(output, overwrite=overwrite)
    check_output_path(diag_path, overwrite=overwrite)
    X = read_cloud(sparse).positions  # a store of positions: the attributes are not carried
    if n is not None:
        factor = check_int(n, "number of output points n", low=1) / X.shape[0]
    factor = check_positive(factor, "factor")
    check_room(output, int(round(factor * X.shape[0])), X.shape[1], in_memory=False)
    options = dict(options, denoise=denoise)
    cloud = PointCloud(X, {}, output.suffix.lower())
    if seed is None:
        seed = int(__import__("numpy").random.SeedSequence().generate_state(1)[0])
    if dask is not None:
        from .distributed.client import connect

        ctx = connect(dask)
    else:
        ctx = contextlib.nullcontext(None)
    tile_progress = None if progress is None else (lambda done, total: progress(done, total, 0, 0))
    with ctx as client:
        if client is not None:
            from .distributed.densify import densify_distributed, layout
            from .workflows import tiles as tl

            # the tasks and their output rows, known before any work (the .zarr store is made that size);
            # --tile-points 0 (never tile) is one task, as densify_cloud does it
            tp = tl.TILE_POINTS if tile_points is None else tile_points or max(X.shape[0], 100)
            work = layout(X, factor, tile_points=tp, halo=tl.HALO, even=options["even"])

            def run(store):
                return densify_distributed(cloud, client=client, factor=factor, seed=seed, tile_points=tp,
                                           progress=tile_progress, store=store, work=work, **options)

            rows = int(work.offsets[-1])
        else:  # here: densify_cloud (tiled above tile_points, as the cluster would)
            from .workflows.densify import densify_cloud

            local, local_diag = densify_cloud(cloud, factor=factor, random_state=seed, tile_points=tile_points,
                                              progress=progress, **options)
            local_diag.pop("seed", None)

            def run(store):
                write_rows(store.tmp, 0, local.positions)
                return local, local_diag

            rows = local.positions.shape[0]
        from .distributed.densify import ZARR_CHUNK_ROWS
        from .distributed.zarr_store import ZarrOutput

        with atomic_paths(diag_path, overwrite=overwrite) as (tmp_diag,):
            with ZarrOutput(output, rows, 3, chunk_rows=ZARR_CHUNK_ROWS, overwrite=overwrite,
                            attributes={"mmsold": {"source": str(sparse), "random_state": seed}}) as store:
                _, diag = run(store)
                diag = {**diag, "settings": dict(diag.get("settings", {}), source=str(sparse), random_state=seed,
                                                 factor=factor, **options)}
                tmp_diag.write_text(json.dumps(diag, indent=1, default=float))
                store.commit()
    summary = {"output": str(output), "input_points": int(X.shape[0]), "output_points": int(rows),
               "denoise": denoise, "random_state": seed}
    summary["repeated_points"] = (int(sum(t.get("repeated", 0) for t in diag["tiles"])) if diag.get("tiles")
                                  else int(diag["settings"].get("repeated", 0)))
    if client is not None:
        summary.update(tiles=len(diag["tiles"]), workers=diag["workers"], wall_time_s=diag["wall_time"])
    return summary
