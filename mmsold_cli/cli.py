"""The ``mmsold`` command: parse, call the library, print.

No mathematics lives here.  Every user error arrives as a
:class:`~mmsold_cli.errors.MmsoldError` and leaves as one line on stderr
with exit code 2 (a traceback only with ``--debug``); Ctrl-C exits 130 and
SIGTERM 143, in both cases without partial output.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import math
import numbers
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
import typer.core

from .errors import MmsoldError, MmsoldWarning


class _Group(typer.core.TyperGroup):
    """Typer's command group, with click's usage errors (an unknown option, a value that does not parse, a
    missing one) reported as every other bad input is: one ``mmsold: error:`` line on stderr, exit 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        # click's exceptions, wherever this typer keeps click (recent ones vendor it as typer._click)
        click_errors = importlib.import_module(typer.BadParameter.__module__)
        no_args = getattr(click_errors, "NoArgsIsHelpError", ())
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except no_args as exc:  # a bare `mmsold`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.info_name}: " if ctx is not None and ctx.parent is not None else ""
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            sys.stderr.write(f"mmsold: error: {where}{exc.format_message()}{hint}\n")
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("mmsold: aborted\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # not standalone: an exit's code, or a command's None


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich formatter costs ~0.3 s of imports on every --help
    help="Generate new samples from a point cloud or latent data set without training a network (MM-SOLD).",
)

_STATE = {"debug": False}

_DASK_HELP = ("Run on a Dask cluster: tcp://host:port, a scheduler file, or local:N (N worker processes here); "
              "also MMSOLD_DASK.  Needs mmsold[dask].")


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so cleanup runs as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated()


#: Seconds the main thread has to unwind after SIGINT or SIGTERM before :func:`_watch_stops` ends the process.
STOP_GRACE = 1.0
#: The first stop signal received (set by the watcher thread), or None.
_STOP = {"signal": None}


def _stop_message(sig) -> tuple[str, int]:
    if sig == signal.SIGINT:
        return "mmsold: interrupted; no partial output left\n", 130
    return "mmsold: terminated; no partial output left\n", 143


def _watch_stops() -> None:
    """End the process within STOP_GRACE seconds of SIGINT or SIGTERM, whatever the main thread is running.

    Python runs a signal's handler in the main thread between two bytecodes, so a stop used to wait for the
    native call under way: numba compiling a kernel on a first run (LLVM, up to 8 s measured), a sort over the
    32 million edges of a 10⁶-point graph (7 s).  The C-level handler writes the signal's number to the wakeup
    file descriptor at once, though.  A watcher thread reading it leaves the handler STOP_GRACE seconds to
    unwind (the usual path: writers delete their temporary files, :func:`run` exits 130 or 143); after that
    it deletes the pending temporary outputs itself (:func:`mmsold_cli._outputs.remove_partial_outputs`, which
    waits for a commit under way) and leaves with :func:`os._exit`.  A stop's exception raised inside a callback
    is swallowed by Python ("Exception ignored in ..."); such reports are dropped, since the watcher ends the run.
    """
    import threading
    import time

    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        os.close(r)
        os.close(w)
        return
    # imported by the main thread: an import in the watcher could wait on one the main thread has under way
    from ._outputs import remove_partial_outputs

    stops = (signal.SIGINT, signal.SIGTERM)

    def watch():
        while _STOP["signal"] is None:
            for sig in os.read(r, 64):
                if sig in stops and _STOP["signal"] is None:
                    _STOP["signal"] = sig
        time.sleep(STOP_GRACE)
        remove_partial_outputs()
        text, code = _stop_message(_STOP["signal"])
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.write(2, text.encode())
        os._exit(code)

    threading.Thread(target=watch, name="mmsold-stop", daemon=True).start()
    previous = sys.unraisablehook

    def unraisable(info):
        if not isinstance(info.exc_value, (_Terminated, KeyboardInterrupt)):
            previous(info)

    sys.unraisablehook = unraisable


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
        if _STATE["debug"]:  # the traceback, and still bad input's exit code
            import traceback

            traceback.print_exc()
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("mmsold: interrupted; no partial output left\n")
        raise typer.Exit(130) from None
    except _Terminated:
        sys.stderr.write("mmsold: terminated; no partial output left\n")
        raise typer.Exit(143) from None
    except MemoryError:
        if _STATE["debug"]:  # where the allocation failed
            import traceback

            traceback.print_exc()
        _fail("out of memory; lower the number of points (or --batch-size, where the command has it)", 1)
    except BrokenPipeError:  # stdout's reader has gone (`mmsold ... --json | head`)
        _silence_stdout()
        raise typer.Exit(141) from None
    except _cli_exceptions():
        raise
    except Exception as exc:
        if _STOP["signal"] is not None:  # the stop's exception was swallowed in a callback and broke what ran next
            sys.stderr.write(_stop_message(_STOP["signal"])[0])
            raise typer.Exit(_stop_message(_STOP["signal"])[1]) from None
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


def _finite(value):
    """``value`` with every NaN or infinite float replaced by None: JSON has no such numbers."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # numpy's floats too
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _emit(payload: dict, as_json: bool, table_title: str | None = None):
    if as_json:
        with _stdout_errors():
            sys.stdout.write(json.dumps(_finite(payload), indent=2, default=float, allow_nan=False) + "\n")
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

    class _Console(Console):  # defined here: rich is imported only when a table is printed
        def on_broken_pipe(self):  # rich's own exits 1 in silence; _run maps a closed pipe to 141, as for --json
            raise BrokenPipeError

    with _stdout_errors():
        _Console().print(table)
        sys.stdout.flush()


def _print_version(value: bool):
    """``--version``: answered while the options are parsed, before click asks for a command."""
    if value:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
):
    """Training-free sampling by moment-matched score-smoothed Langevin dynamics."""
    _STATE["debug"] = debug


@app.command("fit-moments")
def fit_moments_cmd(
    data: str = typer.Argument(..., help="Training set: .npy .npz[:key] .h5[:/dataset] .csv .txt .xyz .pts .ply .obj "
                                ".las .laz .e57"),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.h5)."),
    index: str = typer.Option("auto", "--index",
                              help="Neighbour index: auto, kdtree, brute, nndescent, grid, ivf (ivf needs mmsold[fast])."),
    pca: Optional[int] = typer.Option(None, "--pca", metavar="K",
                                      help="DATA is images (N×H×W): fit a K-component PCA basis, store it in the "
                                           "model and fit the codes; sample then decodes to images."),
    labels: Optional[str] = typer.Option(None, "--labels", help="One model per class: a labels file (one per point: "
                                         ".npy .txt .csv) or col:K for column K of DATA."),
    whiten: Optional[int] = typer.Option(None, "--whiten", metavar="K",
                                         help="Partial whitening first, as the MM-SOLD authors do: the top K "
                                              "directions kept, the rest scaled to the (K+1)-th eigenvalue."),
    dask: Optional[str] = typer.Option(None, "--dask", metavar="ADDRESS", envvar="MMSOLD_DASK",
                                       help=_DASK_HELP + "  The moments by map-reduce over DATA's blocks (a .zarr "
                                            "store, HDF5 chunks, a glob or folder of files)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Read a training set, compute its moments and neighbour index, save one HDF5 model file."""

    def body():
        from .jobs import fit_moments_job

        _emit(fit_moments_job(data, output, index=index, pca=pca, labels=labels, whiten=whiten, overwrite=overwrite,
                              dask=dask), as_json, "fit-moments")

    _run(body)


@contextlib.contextmanager
def _progress_bar(enabled: bool, unit: str = "ensembles"):
    """A rich progress bar on a terminal, as a ``progress(done, total, step, steps)`` callback; None otherwise.

    ``unit``: what ``done`` counts (ensembles; shards or tiles on a cluster, where steps are not shown)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   transient=True, console=Console(stderr=True))
    ens = bar.add_task(unit, total=None)
    stp = bar.add_task("steps", total=None) if unit == "ensembles" else None

    def update(done, total, step, steps):
        bar.update(ens, completed=done, total=total)
        if stp is not None:
            bar.update(stp, completed=step, total=steps)

    with bar:
        yield update


@app.command("sample")
def sample_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Model file from fit-moments."),
    n: Optional[int] = typer.Option(None, "-n", "--n-samples", help="Number of samples."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="A per-class model: this many samples of every "
                                            "class; labels to OUT.labels.npy."),
    label: Optional[str] = typer.Option(None, "--class", help="A per-class model: sample this class only."),
    output: Path = typer.Option(..., "-o", "--output", help="Samples file: .npy .h5 .csv .txt .xyz .ply"),
    sampler: str = typer.Option("mmsold", "--sampler",
                                help="mmsold, sold (no moment constraint) or cfdm (smoothed closed-form diffusion)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps [100; cfdm: (1 − T)/(0.1 × spacing)]."),
    eta: Optional[float] = typer.Option(None, "--eta", help="Step factor η in h = η(t²+σ²)/λmax, at most t²/λmax for mmsold and sold [0.3]."),
    t: Optional[float] = typer.Option(None, "--t", help="Noise level t [2 × training spacing if d ≤ 3, else 0.3 ℓ; see mmsold_cli.defaults]; not for cfdm."),
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
    backend: str = typer.Option("auto", "--backend", help="auto (NumPy for point-set jobs of ≤ 100,000 particle-steps, "
                                "which compile nothing; else numba), numba or numpy."),
    search: str = typer.Option(
        "auto", "--search",
        help="Barycentre candidates: auto, grid (cell block ⊇ K nearest, d ≤ 3), grid-knn, index (K nearest + L), "
             "walk (last step's neighbours walked along the k-NN graph), pool (4K tracked neighbours of the "
             "particle), all [auto: grid for d ≤ 3, else walk up to 10⁶ training points and pool above; for "
             "cfdm index, or walk where a pilot run finds that a particle's draws share its neighbours]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (bit-identical results)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the result (.png/.pdf/.svg; needs mmsold[plot])."),
    dask: Optional[str] = typer.Option(None, "--dask", metavar="ADDRESS", envvar="MMSOLD_DASK", help=_DASK_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Run a sampler on CPU; write the samples and a diagnostics JSON beside them.

    With a model fitted by ``fit-moments --pca K`` the samples are codes, and
    the decoded images are written beside them as OUT.images.npy and a grid
    of the first 100 as OUT.png.
    """

    def body():
        from .jobs import sample_job

        opts = dict(sampler=sampler, steps=steps, eta=eta, t=t, sigma=sigma, M=draws, K=neighbours, L=remainder,
                    P=ensemble, integrator=integrator, init=init, target_cov=target_cov, batch_size=batch_size,
                    start_time=start_time, search=search, backend=backend)
        sharded = dask is not None or output.suffix.lower() == ".zarr"
        with _progress_bar(sys.stderr.isatty(), "shards" if sharded else "ensembles") as update:
            summary = sample_job(model_path, output, n, seed=seed, label=_label(label), per_class=per_class, plot=plot,
                                 overwrite=overwrite, progress=update, dask=dask, **opts)
        _emit(summary, as_json, "sample")

    _run(body)


def _label(text):
    """A class given on the command line: an integer label if it reads as one."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


@app.command("augment")
def augment_cmd(
    data: str = typer.Argument(..., help="Labelled training points: .npy .npz[:key] .h5[:/dataset] .csv .txt"),
    labels: str = typer.Option(..., "--labels", help="Labels file (one per point) or col:K (column K of DATA)."),
    factor: float = typer.Option(..., "--factor", help="Generated points per original point, in every class."),
    output: Path = typer.Option(..., "-o", "--output", help="Original + generated points; labels to OUT.labels.npy."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Langevin steps [100]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (bit-identical results)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Augment a labelled set: sample every class (its own model) and write original + generated points."""

    def body():
        from .jobs import augment_job

        opts = {} if steps is None else {"steps": steps}
        _emit(augment_job(data, labels, output, factor=factor, seed=seed, overwrite=overwrite, **opts), as_json,
              "augment")

    _run(body)


@app.command("classify")
def classify_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Per-class model file (fit-moments --labels)."),
    data: str = typer.Argument(..., help="Points to classify."),
    output: Path = typer.Option(..., "-o", "--output", help="Predicted labels (.npy)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="True labels: accuracy, macro-F1, confusion matrix."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation split the class biases are fitted on."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Classify points by the minimum expected cost under each class's moment-matched density (needs mmsold[sklearn])."""

    def body():
        from .jobs import classify_job

        _emit(classify_job(model_path, data, output, labels=labels, seed=seed, overwrite=overwrite), as_json,
              "classify")

    _run(body)


@app.command("evaluate")
def evaluate_cmd(
    samples: str = typer.Argument(..., help="Generated samples."),
    reference: str = typer.Argument(..., help="Reference (held-out) points."),
    train: Optional[str] = typer.Option(None, "--train", help="Training data or model file, for memorisation."),
    mesh: Optional[Path] = typer.Option(None, "--mesh", help="Surface mesh (.obj/.ply) for 3-D clouds: exact "
                                        "point-to-surface distance and surface_coverage (radius: half the --train "
                                        "spacing)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw samples over the reference (.png/.pdf/.svg; "
                                        "replaced if it exists; needs mmsold[plot])."),
    seed: int = typer.Option(0, "--seed", help="Seed for projections and subsampling."),
    repeats: int = typer.Option(1, "--repeats", help="The figures that depend on the seed, with seeds seed … seed + R − 1: "
                                "mean and sd."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Metrics of samples against a reference: moments, W2, sliced W2, MMD², precision/recall, memorisation.

    3-D clouds also get Chamfer and Hausdorff distances on the reference's unit
    sphere, PU-GAN's uniformity U(p) for p = 0.4 … 1.2 % (lower is more even; the
    surface area from --mesh, else estimated from the reference), and with --mesh
    the exact distance to the surface and the share of it covered (surface_coverage).
    """

    def body():
        from .jobs import evaluate_job

        _emit(evaluate_job(samples, reference, train=train, mesh=mesh, plot=plot, seed=seed,
                                  repeats=repeats), as_json, "evaluate")

    _run(body)


@app.command("densify")
def densify_cmd(
    sparse: str = typer.Argument(..., help="Sparse surface points: .las .laz .ply .e57 .xyz .txt .csv .pts (every "
                                 "per-point attribute kept) or .obj .npy .npz[:key] .h5[:/name] (positions)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Dense cloud to write: .las .laz .ply .e57 "
                                          ".xyz .txt .csv .pts (with attributes) or .npy .h5 (positions) "
                                          "[INPUT.dense.EXT, the input's format]."),
    factor: float = typer.Option(20.0, "--factor", help="Output points per input point (when -n is not given)."),
    n: Optional[int] = typer.Option(None, "-n", "--n-points", help="Number of new points."),
    denoise: str = typer.Option("mls", "--denoise", help="mls (surface projection), tweedie, anneal or none."),
    t: Optional[float] = typer.Option(None, "--t", help="Sampler noise t [1.5 × input spacing]."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Smoothing σ [0]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Langevin steps [10; anneal: 50]."),
    sampler: str = typer.Option("mmsold", "--sampler", help="mmsold, sold or cfdm."),
    reject: Optional[float] = typer.Option(None, "--reject", help="Share of MLS points with the worst local fit "
                                           "dropped (drawn in excess) [0.08]."),
    noise: str = typer.Option("auto", "--noise", help="Scanner-noise stage: auto (run it when the input's estimated "
                              "noise exceeds 0.2 spacings), on or off."),
    even: Optional[bool] = typer.Option(None, "--even/--no-even", show_default=False,
                                        help="Even-density stage: fill sparsely sampled parts first, so the output "
                                        "is about as dense everywhere [auto: when over 3 % of the points are spaced "
                                        "more than twice the dense parts' spacing]."),
    creases: bool = typer.Option(True, "--creases/--no-creases", help="Crease stage: points near a sharp edge are "
                                 "fitted on their own side of it instead of on one smooth surface that rounds it."),
    normals: bool = typer.Option(False, "--normals", help="Estimate consistently oriented normals nx, ny, nz "
                                 "for the output."),
    normals_toward: Optional[str] = typer.Option(None, "--normals-toward", metavar="out|up|scanner|X,Y,Z",
                                                 help="Which way the normals point (implies --normals): out of a "
                                                 "closed object, up (airborne scans, terrain), towards the scanner "
                                                 "that saw each point (E57 scans' poses) or towards a scanner "
                                                 "position.  [default: out]"),
    drop_attributes: Optional[str] = typer.Option(None, "--drop-attributes", metavar="NAMES",
                                                  help="Attributes left out of the output: comma-separated "
                                                  "names, or 'all'."),
    keep_input: bool = typer.Option(False, "--keep-input", help="Write the input points too, first, as read."),
    project_input: bool = typer.Option(False, "--project-input", help="Write the input points too, first, moved "
                                       "onto the fitted surface (implies --keep-input)."),
    tile_points: Optional[int] = typer.Option(None, "--tile-points", metavar="N", help="Work in spatial tiles of at "
                                              "most N input points when the cloud is larger (0: never) [100000, "
                                              "fewer if a tile would not fit in a quarter of the free memory]."),
    halo: Optional[float] = typer.Option(None, "--halo", help="Tile halo, in input spacings [5]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (a tiled run without one reports the seed "
                                       "it drew)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the dense cloud (.png/.pdf/.svg)."),
    dask: Optional[str] = typer.Option(None, "--dask", metavar="ADDRESS", envvar="MMSOLD_DASK",
                                       help=_DASK_HELP + "  Tiles are the tasks."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Densify a sparse surface point cloud: fit, sample and project back on the surface in one step.

    Defaults scale with the input's point spacing (mean nearest-neighbour distance).  Scan attributes
    (LAS/LAZ dimensions, PLY properties, E57 intensity and colour) are carried onto the new points:
    measurements interpolated from the nearest input points, classes and flags from the nearest one.
    """

    def body():
        from .jobs import densify_job

        opts = {k: v for k, v in dict(t=t, sigma=sigma, steps=steps, sampler=sampler, reject=reject,
                                      creases=None if creases else False).items() if v is not None}
        with _progress_bar(sys.stderr.isatty(), "ensembles" if dask is None else "tiles") as update:
            summary = densify_job(sparse, output, n=n, factor=factor, denoise=denoise, seed=seed, plot=plot,
                                  overwrite=overwrite, progress=update, dask=dask,
                                  normals=normals_toward if normals_toward is not None else normals,
                                  drop_attributes=drop_attributes, keep_input=keep_input, project_input=project_input,
                                  noise=noise, even="auto" if even is None else even, tile_points=tile_points,
                                  halo=halo, **opts)
        _emit(summary, as_json, "densify")

    _run(body)


def run():
    """Console-script entry point.

    After a signal (exit 130 or 143) the command has already unwound and
    removed its temporary files; we then leave with :func:`os._exit`, because
    a normal interpreter shutdown can crash (SIGSEGV) under native threads a
    signal interrupted, such as scipy's ``cKDTree.query(workers=-1)`` pool.
    """
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    signal.signal(signal.SIGTERM, _on_sigterm)  # from the start: SIGTERM while parsing also exits 143
    _watch_stops()
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
