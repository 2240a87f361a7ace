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

__all__ = ["fit_moments_job", "sample_job", "evaluate_job", "densify_job", "is_model_file"]


def is_model_file(spec: str) -> bool:
    """Whether ``spec`` names an mmsold model file (HDF5 with a ``format`` attribute)."""
    from .io.arrays import split_path_key

    path, key = split_path_key(spec)
    if key is not None or path.suffix.lower() not in (".h5", ".hdf5") or not path.exists():
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "format" in f.attrs
    except OSError:
        return False


def check_outputs(output: Path, plot, overwrite: bool) -> Path:
    """Refuse unusable outputs before any work: the results, their diagnostics file and the picture."""
    from .io.arrays import check_output_path

    output = Path(output)
    diag_path = output.with_name(output.stem + ".diagnostics.json")
    check_output_path(output, overwrite=overwrite)
    check_output_path(diag_path, overwrite=overwrite)
    if plot is not None:
        from .plots import require_matplotlib

        require_matplotlib()
        check_output_path(plot, overwrite=overwrite)
    return diag_path



def fit_moments_job(data, output, *, index: str = "auto", pca: int | None = None, overwrite: bool = False) -> dict:
    """Read a training set (or images, with ``pca``), fit a model and save it; the summary."""
    import time

    from .io.arrays import check_output_path, read_array, read_points
    from .io.room import check_not_inputs
    from .model import fit_moments

    check_not_inputs([output], [data])
    check_output_path(output, overwrite=overwrite)
    t0 = time.perf_counter()
    if pca is not None:
        from .workflows import latent

        array = read_array(data)
        t0 = time.perf_counter()
        model, basis = latent.fit_latent(array, pca, index=index, name=str(data))
    else:
        X = read_points(data)
        t0 = time.perf_counter()
        model = fit_moments(X, index=index, name=str(data))
    model.save(output, overwrite=overwrite, settings={"source": str(data), "index": index, "pca": pca})
    summary = {
        "model": str(output),
        "points": model.n_,
        "dim": model.d_,
        "index": model.index_kind_,
        "spacing": model.spacing_,
        "jitter": model.jitter_,
        "fit_seconds": time.perf_counter() - t0,
    }
    if pca is not None:
        summary["pca_components"] = basis.k
        summary["pca_image_shape"] = "×".join(map(str, basis.shape))
    return summary


def sample_job(model_path, output, n: int, *, seed=None, plot=None, overwrite: bool = False, progress=None,
               **options) -> dict:
    """Sample a model file to ``output`` (streamed for .npy and text) with a diagnostics JSON beside it.

    A model with a PCA basis also gets its decoded images (``OUT.images.npy``) and a grid (``OUT.png``).
    ``options`` as for :func:`mmsold_cli.sampling.sample`.
    """
    from .io.arrays import (
        STREAM_EXTENSIONS,
        WRITE_EXTENSIONS,
        PointWriter,
        atomic_paths,
        check_output_path,
        save_points,
    )
    from .io.room import check_not_inputs, check_room
    from .model import Model
    from .sampling import resolve_settings, sample
    from .workflows import latent

    output = Path(output)
    diag_path = check_outputs(output, plot, overwrite)
    check_not_inputs([output, diag_path, plot], [model_path])
    if output.suffix.lower() not in WRITE_EXTENSIONS:
        raise MmsoldError(f"{output}: unknown output extension {output.suffix!r}; expected one of "
                          f"{', '.join(WRITE_EXTENSIONS)}")
    model = Model.load(model_path)
    basis = latent.from_extras(model.extras_) if latent.has_basis(model) else None
    extra_paths = []
    if basis is not None:
        extra_paths = [output.with_name(output.stem + ".images.npy"), output.with_name(output.stem + ".png")]
        check_not_inputs(extra_paths, [model_path])
        for p in extra_paths:
            check_output_path(p, overwrite=overwrite)
    resolve_settings(model, n, **options)  # fail on bad options before any work
    # streamed to the file batch by batch unless something below needs them all in memory
    stream = basis is None and plot is None and output.suffix.lower() in STREAM_EXTENSIONS
    check_room(output, n, model.d_, in_memory=not stream)
    if basis is not None:  # the decoded images, float32 per pixel
        check_room(extra_paths[0], n, max(1, basis.components.shape[1] // 2), in_memory=True)

    # samples, diagnostics (and images) appear together or not at all
    with atomic_paths(output, diag_path, *extra_paths, overwrite=overwrite) as (tmp_out, tmp_diag, *tmp_extra):
        if stream:
            with PointWriter(tmp_out, n, model.d_, fmt=output.suffix) as out:
                res = sample(model, n, random_state=seed, progress=progress, out=out, **options)
        else:
            res = sample(model, n, random_state=seed, progress=progress, **options)
            save_points(tmp_out, res.samples, fmt=output.suffix)
        settings = dict(res.settings, model=str(model_path))
        tmp_diag.write_text(json.dumps({"settings": settings, **res.diagnostics}, indent=1))
        if basis is not None:
            latent.write_decoded(tmp_extra[0], tmp_extra[1], res.samples, basis)
    if plot is not None:
        from .plots import plot_result

        plot_result(plot, res.samples, model.X_[: max(res.samples.shape[0], 2000)], basis=basis,
                    title=f"{settings['sampler']}: {res.samples.shape[0]} samples", reference_label="training")
    d = res.diagnostics
    return {
        "output": str(output),
        "diagnostics": str(diag_path),
        "samples": int(res.samples.shape[0]),
        "dim": int(res.samples.shape[1]),
        "sampler": settings["sampler"],
        "steps": settings["steps"],
        "t": settings["t"],
        "sigma": settings["sigma"],
        "wall_time_s": d["wall_time"],
        "particle_steps_per_s": d["particle_steps_per_s"],
        "final_mean_error": d["mean_error"][-1],
        "final_cov_error": d["cov_error"][-1],
    }


def evaluate_job(samples, reference, *, train=None, mesh=None, plot=None, seed: int = 0) -> dict:
    """Metrics of a samples file against a reference file (:func:`mmsold_cli.metrics.evaluate_all`)."""
    from .io.arrays import read_points
    from .io.room import check_not_inputs
    from .metrics.evaluate import evaluate_all

    check_not_inputs([plot], [samples, reference, train, mesh])
    A = read_points(samples)
    B = read_points(reference)
    if B.shape[1] != A.shape[1]:
        raise MmsoldError(f"{reference}: dimension {B.shape[1]} differs from the samples' {A.shape[1]}")
    model = train_X = None
    if train is not None:
        if is_model_file(train):
            from .model import Model

            model = Model.load(train)
            if model.d_ != A.shape[1]:
                raise MmsoldError(f"{train}: model dimension {model.d_} differs from the samples' {A.shape[1]}")
        else:
            train_X = read_points(train)
    if plot is not None:
        from .plots import require_matplotlib

        require_matplotlib()
    if mesh is not None and A.shape[1] != 3:
        raise MmsoldError(f"--mesh needs 3-D points; the samples are {A.shape[1]}-D")
    surf = None
    if mesh is not None:
        from .io.mesh import read_mesh

        surf = read_mesh(mesh)
    res, dist = evaluate_all(A, B, train=train_X, model=model, mesh=surf, distances=plot is not None,
                             random_state=seed)
    if plot is not None:
        from .plots import plot_result
        from .workflows import latent

        basis = latent.from_extras(model.extras_) if model is not None and latent.has_basis(model) else None
        plot_result(plot, A, B, basis=basis, distances=dist,
                    value_label="distance to surface / spacing" if dist is not None else "")
        res["plot"] = str(plot)
    return res


def densify_job(sparse, output, *, n=None, factor: float = 20.0, denoise: str = "mls", seed=None, plot=None,
                overwrite: bool = False, progress=None, **options) -> dict:
    """Densify a sparse cloud file to ``output`` with a diagnostics JSON beside it (:func:`densify`)."""
    from .io.arrays import WRITE_EXTENSIONS, atomic_paths, save_points
    from .io.mesh import read_point_cloud
    from .io.room import check_not_inputs, check_room
    from .workflows.densify import densify

    output = Path(output)
    diag_path = check_outputs(output, plot, overwrite)
    check_not_inputs([output, diag_path, plot], [sparse])
    if output.suffix.lower() not in WRITE_EXTENSIONS:
        raise MmsoldError(f"{output}: unknown output extension {output.suffix!r}; expected one of "
                          f"{', '.join(WRITE_EXTENSIONS)}")
    X = read_point_cloud(sparse)
    check_room(output, int(n if n is not None else round(factor * X.shape[0])), X.shape[1], in_memory=True)
    res = densify(X, n, factor=factor, denoise=denoise, random_state=seed, progress=progress, **options)
    settings = dict(res.settings, source=str(sparse), random_state=seed)
    with atomic_paths(output, diag_path, overwrite=overwrite) as (tmp_out, tmp_diag):
        save_points(tmp_out, res.points, fmt=output.suffix)
        tmp_diag.write_text(json.dumps({"settings": settings, **res.diagnostics}, indent=1, default=float))
    if plot is not None:
        from .metrics.surface import nn_distance
        from .plots import cloud_views

        cloud_views(plot, res.points, nn_distance(res.points, X) / res.settings["spacing"],
                    value_label="distance to nearest input point / spacing",
                    title=f"{res.points.shape[0]} points from {X.shape[0]}")
    return {
        "output": str(output),
        "input_points": int(X.shape[0]),
        "output_points": int(res.points.shape[0]),
        "spacing": res.settings["spacing"],
        "denoise": denoise,
        "t": res.settings["t"],
        "sample_seconds": res.diagnostics["sample_time"],
        "denoise_seconds": res.diagnostics["denoise_time"],
        "mean_move_spacings": res.diagnostics["mean_move"],
    }
