"""The ``mmsold`` command: parse, call the library, print.

No mathematics lives here.  Every user error arrives as a
:class:`~mmsold_cli.errors.MmsoldError` and leaves as one line on stderr
with exit code 2 (a traceback only with ``--debug``); Ctrl-C exits 130 and
SIGTERM 143, in both cases without partial output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from .errors import MmsoldError, MmsoldWarning

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich formatter costs ~0.3 s of imports on every --help
    help="Generate new samples from a point cloud or latent data set without training a network (MM-SOLD).",
)

_STATE = {"debug": False}


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so cleanup runs as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _fail(msg: str, code: int = 2):
    sys.stderr.write(f"mmsold: error: {msg}\n")
    raise typer.Exit(code)


def _silence_stdout():
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _flush_stdout():
    """Flush stdout now, so a full disk (``> /dev/full``) is reported, not lost at exit."""
    with _stdout_errors():
        sys.stdout.flush()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(f"mmsold: warning: {message}\n")


def _cli_exceptions() -> tuple:
    """Typer's and click's own exit/abort/usage exceptions, which must pass through.

    Recent typer vendors click (``typer._click``) and no longer installs it, so
    click is only looked at when it happens to be importable.
    """
    kinds = [typer.Exit, typer.Abort]
    if hasattr(typer, "TyperException"):
        kinds.append(typer.TyperException)
    try:
        import click

        kinds += [click.exceptions.Exit, click.exceptions.Abort, click.ClickException]
    except ImportError:
        pass
    return tuple(kinds)


def _run(fn):
    """Run a command body, mapping errors and signals to messages and exit codes.

    * :class:`MmsoldError` (bad input) → ``mmsold: error: ...`` on stderr, exit 2
      (re-raised with ``--debug`` for the traceback);
    * Ctrl-C (SIGINT) → exit 130, SIGTERM → exit 143; both unwind like an
      exception, so atomic writers delete their temporary files;
    * ``MemoryError`` → exit 1; a closed stdout pipe (``... --json | head``) → exit 141;
    * any other exception is a bug: one line naming it, exit 1 (traceback with ``--debug``).

    Warnings print as ``mmsold: warning: ...`` lines.
    """
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        old_term = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MmsoldWarning)
            warnings.showwarning = _show_warning
            result = fn()
            _flush_stdout()
            return result
    except MmsoldError as exc:
        if _STATE["debug"]:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("mmsold: interrupted; no partial output left\n")
        raise typer.Exit(130) from None
    except _Terminated:
        sys.stderr.write("mmsold: terminated; no partial output left\n")
        raise typer.Exit(143) from None
    except MemoryError:
        _fail("out of memory; lower --batch-size or the number of samples", 1)
    except BrokenPipeError:  # stdout's reader has gone (`mmsold ... --json | head`)
        _silence_stdout()
        raise typer.Exit(141) from None
    except _cli_exceptions():
        raise
    except Exception as exc:
        if _STATE["debug"]:
            raise
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" {exc.filename}" if exc.filename else ""  # e.g. numba's cache: outputs map their own
            _fail(f"cannot write{where}: disk full ({exc.strerror}); no partial output left")
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"internal error {type(exc).__name__}: {text} (a bug in mmsold; rerun with --debug and report it)", 1)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def _stdout_errors():
    """Turn a failed write to stdout (``> /dev/full``) into one clear error."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        _silence_stdout()
        why = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write error"
        raise MmsoldError(f"cannot write to standard output: {why} ({exc.strerror or exc})") from exc


def _emit(payload: dict, as_json: bool, table_title: str | None = None):
    if as_json:
        with _stdout_errors():
            sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")
            sys.stdout.flush()
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=table_title, show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for k, v in payload.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, (list, dict)):
            continue
        table.add_row(k, str(v))
    with _stdout_errors():
        Console().print(table)
        sys.stdout.flush()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
):
    """Training-free sampling by moment-matched score-smoothed Langevin dynamics."""
    _STATE["debug"] = debug
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.command("fit-moments")
def fit_moments_cmd(
    data: str = typer.Argument(..., help="Training set: .npy .npz[:key] .h5[:/dataset] .csv .txt .xyz .ply .obj"),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.h5)."),
    index: str = typer.Option("auto", "--index", help="Neighbour index: auto, kdtree, brute, nndescent."),
    pca: Optional[int] = typer.Option(None, "--pca", metavar="K",
                                      help="DATA is images (N×H×W): fit a K-component PCA basis, store it in the "
                                           "model and fit the codes; sample then decodes to images."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Read a training set, compute its moments and neighbour index, save one HDF5 model file."""

    def body():
        import time

        from .io.arrays import check_output_path, read_points
        from .model import fit_moments

        check_output_path(output, overwrite=overwrite)
        extras = {}
        if pca is not None:
            from .io.arrays import read_array
            from .workflows import latent

            images = latent.images_from_array(read_array(data), name=str(data))
            t0 = time.perf_counter()
            basis = latent.fit_pca(images, pca)
            X = latent.encode(images, basis)
            extras = latent.to_extras(basis)
        else:
            X = read_points(data)
            t0 = time.perf_counter()
        model = fit_moments(X, index=index, name=str(data))
        model.extras_ = extras
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
        _emit(summary, as_json, "fit-moments")

    _run(body)


def _progress_bar(enabled: bool):
    """A rich progress bar on a terminal; a no-op otherwise."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   transient=True, console=Console(stderr=True))
    ens = bar.add_task("ensembles", total=None)
    stp = bar.add_task("steps", total=None)

    def update(done, total, step, steps):
        bar.update(ens, completed=done, total=total)
        bar.update(stp, completed=step, total=steps)

    return bar, update


def _check_outputs(output: Path, plot: Optional[Path], overwrite: bool) -> Path:
    """Refuse unusable outputs before any work: the samples, their diagnostics file and the picture."""
    from .io.arrays import check_output_path

    diag_path = output.with_name(output.stem + ".diagnostics.json")
    check_output_path(output, overwrite=overwrite)
    check_output_path(diag_path, overwrite=overwrite)
    if plot is not None:
        from .plots import require_matplotlib

        require_matplotlib()
        check_output_path(plot, overwrite=overwrite)
    return diag_path


@app.command("sample")
def sample_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Model file from fit-moments."),
    n: int = typer.Option(..., "-n", "--n-samples", help="Number of samples."),
    output: Path = typer.Option(..., "-o", "--output", help="Samples file: .npy .h5 .csv .txt .xyz .ply"),
    sampler: str = typer.Option("mmsold", "--sampler",
                                help="mmsold, sold (no moment constraint) or cfdm (smoothed closed-form diffusion)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps [100; cfdm: (1 − T)/(0.1 × spacing)]."),
    eta: Optional[float] = typer.Option(None, "--eta", help="Step factor η in h = η(t²+σ²)/λmax [0.3]."),
    t: Optional[float] = typer.Option(None, "--t", help="Noise level t [2 × training spacing if d ≤ 3, else 0.25 ℓ; see mmsold_cli.defaults]; not for cfdm."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Smoothing σ [t/2 if d ≤ 3, else 0.75 ℓ; cfdm: 0.75 ℓ]."),
    draws: Optional[int] = typer.Option(None, "-M", "--draws", help="Draws per score evaluation [4; cfdm: 10]."),
    neighbours: Optional[int] = typer.Option(None, "-K", "--neighbours", help="Nearest neighbours per barycentre [16]."),
    remainder: int = typer.Option(0, "-L", "--remainder", help="Random remainder points per barycentre [0]."),
    ensemble: Optional[int] = typer.Option(None, "-P", "--ensemble", help="Particles per ensemble [min(n, 1000)]."),
    integrator: Optional[str] = typer.Option(
        None, "--integrator",
        help="lm (Leimkuhler–Matthews), em (Euler–Maruyama), ams (adaptive momentum), ams-tc (temperature-corrected "
             "AMS) [lm]; cfdm: Euler only."),
    init: str = typer.Option("data", "--init",
                             help="data (exact draws of the noised data), gaussian, moments (moment-matched Gaussian) "
                                  "or gmm (32-component mixture fitted to the noised data)."),
    start_time: Optional[float] = typer.Option(None, "--start-time",
                                               help="cfdm start time T in (0, 1) [1/(1 + 2 ℓ)]."),
    target_cov: str = typer.Option("data", "--target-cov", help="data (Σ) or blurred (Σ + t² I)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Particles stepped at once [65536]."),
    search: str = typer.Option(
        "auto", "--search",
        help="Barycentre candidates: auto, grid (cell block ⊇ K nearest, d ≤ 3), grid-knn, index (K nearest + L), "
             "pool (4K tracked neighbours of the particle), all [auto: grid for d ≤ 3, else pool; index for cfdm]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (bit-identical results)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the result (.png/.pdf/.svg; needs mmsold[plot])."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Run a sampler on CPU; write the samples and a diagnostics JSON beside them.

    With a model fitted by ``fit-moments --pca K`` the samples are codes, and
    the decoded images are written beside them as OUT.images.npy and a grid
    of the first 100 as OUT.png.
    """

    def body():
        from .io.arrays import atomic_paths, check_output_path, save_points
        from .model import Model
        from .sampling import resolve_settings, sample

        diag_path = _check_outputs(output, plot, overwrite)
        model = Model.load(model_path)
        from .workflows import latent

        basis = latent.from_extras(model.extras_) if latent.has_basis(model) else None
        extra_paths = []
        if basis is not None:
            extra_paths = [output.with_name(output.stem + ".images.npy"), output.with_name(output.stem + ".png")]
            for p in extra_paths:
                check_output_path(p, overwrite=overwrite)
        opts = dict(sampler=sampler, steps=steps, eta=eta, t=t, sigma=sigma, M=draws, K=neighbours, L=remainder,
                    P=ensemble, integrator=integrator, init=init, target_cov=target_cov, batch_size=batch_size,
                    start_time=start_time, search=search)
        resolve_settings(model, n, **opts)  # fail on bad options before any work
        from .io.arrays import STREAM_EXTENSIONS, WRITE_EXTENSIONS, PointWriter

        if output.suffix.lower() not in WRITE_EXTENSIONS:
            raise MmsoldError(f"{output}: unknown output extension {output.suffix!r}; expected one of {', '.join(WRITE_EXTENSIONS)}")
        bar, update = _progress_bar(sys.stderr.isatty())

        def run(out=None):
            if bar is not None:
                bar.start()
            try:
                return sample(model, n, random_state=seed, progress=update, out=out, **opts)
            finally:
                if bar is not None:
                    bar.stop()

        # streamed to the file batch by batch unless something below needs them all in memory
        stream = basis is None and plot is None and output.suffix.lower() in STREAM_EXTENSIONS
        # samples and diagnostics appear together or not at all
        with atomic_paths(output, diag_path, *extra_paths, overwrite=overwrite) as (tmp_out, tmp_diag, *tmp_extra):
            if stream:
                with PointWriter(tmp_out, n, model.d_, fmt=output.suffix) as out:
                    res = run(out)
            else:
                res = run()
                save_points(tmp_out, res.samples, fmt=output.suffix)
            settings = {k: v for k, v in res.settings.items()}
            settings["model"] = str(model_path)
            tmp_diag.write_text(json.dumps({"settings": settings, **res.diagnostics}, indent=1))
            if basis is not None:
                import numpy as np

                from .plots import png_bytes, tile_images

                with open(tmp_extra[0], "wb") as fh:
                    np.save(fh, latent.decode(res.samples, basis, as_input=True), allow_pickle=False)
                tmp_extra[1].write_bytes(png_bytes(tile_images(latent.decode(res.samples[:100], basis), ncol=10)))
        if plot is not None:
            from .plots import plot_result

            plot_result(plot, res.samples, model.X_[: max(res.samples.shape[0], 2000)], basis=basis,
                        title=f"{settings['sampler']}: {res.samples.shape[0]} samples",
                        reference_label="training")
        d = res.diagnostics
        _emit(
            {
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
            },
            as_json,
            "sample",
        )

    _run(body)


@app.command("evaluate")
def evaluate_cmd(
    samples: str = typer.Argument(..., help="Generated samples."),
    reference: str = typer.Argument(..., help="Reference (held-out) points."),
    train: Optional[str] = typer.Option(None, "--train", help="Training data or model file, for memorisation."),
    mesh: Optional[Path] = typer.Option(None, "--mesh", help="Surface mesh (.obj/.ply) for 3-D clouds: exact "
                                        "point-to-surface distance and coverage (radius: half the --train spacing)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw samples over the reference (.png/.pdf/.svg; "
                                        "replaced if it exists; needs mmsold[plot])."),
    seed: int = typer.Option(0, "--seed", help="Seed for projections and subsampling."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Metrics of samples against a reference: moments, W2, sliced W2, MMD², precision/recall, memorisation.

    3-D clouds also get Chamfer and Hausdorff distances on the reference's unit
    sphere, and with --mesh the exact distance to the surface and coverage.
    """

    def body():
        from .io.arrays import read_points
        from .metrics.points import evaluate

        A = read_points(samples)
        B = read_points(reference)
        if B.shape[1] != A.shape[1]:
            raise MmsoldError(f"{reference}: dimension {B.shape[1]} differs from the samples' {A.shape[1]}")
        model = train_X = None
        if train is not None:
            if _is_model_file(train):
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
        res = evaluate(A, B, train=train_X, model=model, random_state=seed)
        dist = None
        if A.shape[1] == 3:
            from .metrics.surface import evaluate_cloud, mean_spacing

            spacing = model.spacing_ if model is not None else mean_spacing(train_X) if train_X is not None else None
            surf = None
            if mesh is not None:
                from .io.mesh import read_mesh

                surf = read_mesh(mesh)
            res.update(evaluate_cloud(A, B, mesh=surf, spacing=spacing, random_state=seed))
            if surf is not None and plot is not None:
                from .metrics.surface import point_to_mesh

                dist = point_to_mesh(A, *surf) / res["spacing"]
        if plot is not None:
            from .plots import plot_result
            from .workflows import latent

            basis = latent.from_extras(model.extras_) if model is not None and latent.has_basis(model) else None
            plot_result(plot, A, B, basis=basis, distances=dist,
                        value_label="distance to surface / spacing" if dist is not None else "")
            res["plot"] = str(plot)
        _emit(res, as_json, "evaluate")

    _run(body)


@app.command("densify")
def densify_cmd(
    sparse: str = typer.Argument(..., help="Sparse surface points: .ply .obj .xyz .csv .txt .npy .npz[:key] .h5[:/name]"),
    output: Path = typer.Option(..., "-o", "--output", help="Dense cloud to write: .ply .xyz .csv .txt .npy .h5"),
    factor: float = typer.Option(20.0, "--factor", help="Output points per input point (when -n is not given)."),
    n: Optional[int] = typer.Option(None, "-n", "--n-points", help="Number of output points."),
    denoise: str = typer.Option("mls", "--denoise", help="mls (surface projection), tweedie, anneal or none."),
    t: Optional[float] = typer.Option(None, "--t", help="Sampler noise t [1.5 × input spacing]."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Smoothing σ [0]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Langevin steps [50]."),
    sampler: str = typer.Option("mmsold", "--sampler", help="mmsold, sold or cfdm."),
    reject: Optional[float] = typer.Option(None, "--reject", help="Share of MLS points with the worst local fit "
                                           "dropped (drawn in excess) [0.08]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the dense cloud (.png/.pdf/.svg)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Densify a sparse surface point cloud: fit, sample and project back on the surface in one step.

    Defaults scale with the input's point spacing (mean nearest-neighbour distance).
    """

    def body():
        from .io.arrays import atomic_paths, save_points
        from .io.mesh import read_point_cloud
        from .workflows.densify import REJECT, densify

        diag_path = _check_outputs(output, plot, overwrite)
        from .io.arrays import WRITE_EXTENSIONS

        if output.suffix.lower() not in WRITE_EXTENSIONS:
            raise MmsoldError(f"{output}: unknown output extension {output.suffix!r}; expected one of {', '.join(WRITE_EXTENSIONS)}")
        X = read_point_cloud(sparse)
        bar, update = _progress_bar(sys.stderr.isatty())
        if bar is not None:
            bar.start()
        try:
            res = densify(X, n, factor=factor, denoise=denoise, t=t, sigma=sigma, steps=steps, sampler=sampler,
                          reject=REJECT if reject is None else reject, random_state=seed, progress=update)
        finally:
            if bar is not None:
                bar.stop()
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
        _emit(
            {
                "output": str(output),
                "input_points": int(X.shape[0]),
                "output_points": int(res.points.shape[0]),
                "spacing": res.settings["spacing"],
                "denoise": denoise,
                "t": res.settings["t"],
                "sample_seconds": res.diagnostics["sample_time"],
                "denoise_seconds": res.diagnostics["denoise_time"],
                "mean_move_spacings": res.diagnostics["mean_move"],
            },
            as_json,
            "densify",
        )

    _run(body)


def _is_model_file(spec: str) -> bool:
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


def run():
    """Console-script entry point.

    After a signal (exit 130 or 143) the command has already unwound and
    removed its temporary files; we then leave with :func:`os._exit`, because
    a normal interpreter shutdown can crash (SIGSEGV) under native threads a
    signal interrupted, such as scipy's ``cKDTree.query(workers=-1)`` pool.
    """
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    signal.signal(signal.SIGTERM, _on_sigterm)  # from the start: SIGTERM while parsing also exits 143
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        sys.stderr.write("mmsold: interrupted\n")
        code = 130
    except _Terminated:
        sys.stderr.write("mmsold: terminated\n")
        code = 143
    if code in (130, 143):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


@app.command("warm-up")
def warm_up_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON summary.")):
    """Compile every numba kernel into the on-disk cache (NUMBA_CACHE_DIR), e.g. while building a container image."""

    def body():
        from .warmup import warm_up

        _emit(warm_up(), as_json, "warm-up")

    _run(body)


if __name__ == "__main__":
    run()
