"""``--dask ADDRESS``: which cluster, connecting to it, and the numba threads of its workers.

ADDRESS is one of

* ``tcp://host:port`` (also ``tls://``, ``ucx://``, ``ws://``, ``wss://``) — a running scheduler;
* a path to a scheduler file (``dask scheduler --scheduler-file F``, dask-jobqueue, dask-mpi write one);
* ``local:N`` — a :class:`distributed.LocalCluster` of N worker processes on this machine, started for the
  run and stopped after it.

``MMSOLD_DASK`` in the environment gives the address when the option is not set.

Threads: a worker runs one task (a shard, a tile) at a time, and mmsold's kernels spread each task over
``NUMBA_NUM_THREADS`` threads (:mod:`mmsold_cli._threads`).  Dask's nanny does not set that variable,
so every worker would take one thread per core and W workers on a host would run W × cores threads.
:func:`set_worker_threads` sets it to ``cores // (Dask threads on the host)`` on each worker (also
on workers that join or restart later, through a worker plugin), so workers × threads = cores.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from ..errors import MmsoldError

__all__ = ["DASK_ENV", "INSTALL_HINT", "parse_address", "scheduler_file_address", "connect", "require_dask",
           "set_worker_threads", "measure_overhead", "cluster_errors", "worker_threads"]

#: The environment variable that gives ``--dask``'s address.
DASK_ENV = "MMSOLD_DASK"
INSTALL_HINT = 'pip install "mmsold[dask]"'
#: Seconds to wait for a scheduler before giving up (``MMSOLD_DASK_TIMEOUT`` in the environment changes it).
CONNECT_TIMEOUT = 10.0


def _connect_timeout() -> float:
    try:
        value = float(os.environ.get("MMSOLD_DASK_TIMEOUT", CONNECT_TIMEOUT))
    except ValueError:
        raise MmsoldError(f"MMSOLD_DASK_TIMEOUT={os.environ['MMSOLD_DASK_TIMEOUT']!r}: expected seconds") from None
    if not 0 < value < float("inf"):
        raise MmsoldError(f"MMSOLD_DASK_TIMEOUT={value:g}: expected a positive, finite number of seconds")
    return value


_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def require_dask():
    """Import ``distributed`` or fail with one line naming the extra to install."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise MmsoldError(f"running on a Dask cluster needs Dask and Zarr, which are not installed "
                          f"({exc.name or exc}); install them with: {INSTALL_HINT}") from None
    import distributed

    return distributed


def parse_address(text) -> tuple[str, object]:
    """``("local", N)``, ``("address", "tcp://host:port")`` or ``("file", Path)``; MmsoldError otherwise."""
    s = str(text).strip()
    if not s:
        raise MmsoldError("--dask: empty address; expected tcp://host:port, a scheduler file or local:N")
    m = re.fullmatch(r"local:(.*)", s)
    if m:
        try:
            n = int(m.group(1))
        except ValueError:
            n = 0
        if n < 1:
            raise MmsoldError(f"--dask {s}: expected local:N with N ≥ 1 worker processes")
        return "local", n
    m = re.fullmatch(r"([a-z]+)://(.*)", s)
    if m:
        scheme, rest = m.groups()
        hp = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:/\[\]]+):(\d+)/?", rest)
        if scheme not in _SCHEMES or hp is None or not 0 < int(hp.group(2)) < 65536:
            raise MmsoldError(f"--dask {s}: expected a scheduler address scheme://host:port with scheme one of "
                              f"{', '.join(_SCHEMES)} and a port in 1…65535, a scheduler file or local:N")
        return "address", s
    path = Path(s)
    if not path.is_file():
        if re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d+)", s) and 0 < int(s.rsplit(":", 1)[1]) < 65536:
            return "address", f"tcp://{s}"  # host:port, as Dask itself reads it
        raise MmsoldError(f"--dask {s}: neither a scheduler address (tcp://host:port), an existing scheduler file, "
                          f"nor local:N")
    return "file", path


def scheduler_file_address(path) -> str:
    """The address in a scheduler file (JSON with an ``address``, as ``dask scheduler --scheduler-file`` writes)."""
    import json

    try:
        address = json.loads(Path(path).read_text()).get("address")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise MmsoldError(f"--dask {path}: not a Dask scheduler file ({type(exc).__name__}); expected the JSON "
                          f"that dask scheduler --scheduler-file writes") from None
    if not isinstance(address, str) or "://" not in address:
        raise MmsoldError(f"--dask {path}: not a Dask scheduler file (no scheduler address in it); expected the "
                          f"JSON that dask scheduler --scheduler-file writes")
    return address


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_threads(cores: int, dask_threads: int) -> int:
    """numba threads for each Dask thread on a host: ``max(1, cores // dask_threads)``."""
    return max(1, int(cores) // max(1, int(dask_threads)))


def _set_numba_threads(k: int) -> int:
    """On a worker: mmsold's kernels use k threads from now on (before or after numba is imported)."""
    import sys

    os.environ["NUMBA_NUM_THREADS"] = str(int(k))
    numba = sys.modules.get("numba")
    if numba is not None:  # already imported: its config was read; mmsold reads the value from there
        numba.config.NUMBA_NUM_THREADS = int(k)
        with contextlib.suppress(Exception):
            numba.set_num_threads(min(int(k), numba.config.NUMBA_DEFAULT_NUM_THREADS))
    return int(k)


def _threads_plugin(per_host: dict):
    from distributed.diagnostics.plugin import WorkerPlugin

    class NumbaThreads(WorkerPlugin):
        """Sets NUMBA_NUM_THREADS on every worker, those that (re)start later included."""

        name = "mmsold-numba-threads"

        def __init__(self, per_host):
            self.per_host = dict(per_host)

        def setup(self, worker):
            host = worker.address.rsplit(":", 1)[0]
            k = self.per_host.get(host)
            if k is None:
                k = worker_threads(_cores(), worker.state.nthreads)
            _set_numba_threads(k)

    return NumbaThreads(per_host)


def set_worker_threads(client) -> dict:
    """Set every worker's numba threads so that on each host workers × threads = cores; ``{worker: threads}``."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(_cores)
    hosts: dict = {}
    for addr, w in info.items():
        host = addr.rsplit(":", 1)[0]
        hosts.setdefault(host, [0, cores.get(addr, 1)])
        hosts[host][0] += int(w.get("nthreads", 1))
    per_host = {h: worker_threads(c, t) for h, (t, c) in hosts.items()}
    client.register_plugin(_threads_plugin(per_host))
    return client.run(lambda: int(os.environ.get("NUMBA_NUM_THREADS", "0")))


def _noop(i):
    return i


def measure_overhead(client, tasks: int = 200) -> float:
    """Seconds of scheduler time one task costs: the wall time of ``tasks`` empty tasks over ``tasks``.

    The empty tasks go to every worker at once, so this is what a task costs the run when the cluster's
    work is spread over many tasks (submission, scheduling, result), not the latency of one.
    """
    client.gather(client.map(_noop, range(4), pure=False))  # connections warm
    t0 = time.perf_counter()
    futures = client.map(_noop, range(int(tasks)), pure=False)
    client.gather(futures)
    wall = time.perf_counter() - t0
    del futures
    return wall / int(tasks)


def _first_line(exc) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _lost(where, exc, client=None) -> MmsoldError:
    if client is not None and getattr(client, "status", None) == "running":  # the scheduler is there: not it
        return MmsoldError(f"the Dask cluster {where} dropped the run's tasks ({_first_line(exc)}): were its workers "
                           f"stopped? no output was written")
    return MmsoldError(f"lost the Dask scheduler {where} during the run ({_first_line(exc)}); no output was written")


@contextlib.contextmanager
def cluster_errors(where: str, client=None):
    """Turn a lost scheduler, lost workers, a task that killed its workers or a file a worker could not use into
    one MmsoldError (bad input passes)."""
    import asyncio

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        yield
    except MmsoldError:
        raise
    except KilledWorker as exc:
        raise MmsoldError(f"a task killed every worker it ran on ({exc}); no output was written") from None
    except (CommClosedError, ConnectionError, asyncio.TimeoutError, TimeoutError, asyncio.CancelledError) as exc:
        raise _lost(where, exc, client) from None
    except OSError as exc:  # raised in a task: a file a worker cannot see or write
        raise MmsoldError(f"a task on the Dask cluster {where} failed: {_first_line(exc)}; every worker must see "
                          f"the inputs and the output's folder at the same path; no output was written") from None
    except Exception as exc:
        if type(exc).__name__ in ("FutureCancelledError", "CancelledError"):
            raise _lost(where, exc, client) from None
        raise


class _Quiet:
    """Silence distributed's loggers (each has its own level) until :meth:`restore`."""

    def __init__(self):
        import logging

        names = [n for n in list(logging.root.manager.loggerDict) if n == "distributed" or n.startswith("distributed.")]
        # asyncio's too: a run stopped by Ctrl-C leaves the client's tasks to report "exception never retrieved"
        self.levels = {n: logging.getLogger(n).level for n in names + ["distributed", "asyncio"]}
        for n in self.levels:
            logging.getLogger(n).setLevel(logging.CRITICAL + 1)

    def restore(self):
        import logging

        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


@contextlib.contextmanager
def _tracker_quiet():
    """Processes started here (multiprocessing's resource tracker among them) ignore the tracker's warning of
    leaked semaphores: a run stopped by Ctrl-C ends within a second or two, before a local cluster's workers
    have released theirs, and the tracker cleans them up anyway."""
    rule = "ignore::UserWarning:multiprocessing.resource_tracker"
    old = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = rule if not old else f"{old},{rule}"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = old


def _client_within(Client, target: str, timeout: float, address):
    """``Client(target)``, or a MmsoldError once ``timeout`` (plus 2 s) has passed.  Client's own timeout covers
    connecting, not a server that accepts the connection and never answers (a web server, a scheduler's
    dashboard port): it would wait forever, so the client is made on a daemon thread that is left behind."""
    import threading

    box = {}

    def make():
        try:
            box["client"] = Client(target, timeout=f"{timeout}s")
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    maker = threading.Thread(target=make, daemon=True, name="mmsold-dask-connect")
    maker.start()
    maker.join(timeout + 2.0)
    if "error" in box:
        raise box["error"]
    if "client" not in box:
        raise MmsoldError(f"--dask {address}: no Dask scheduler answered at {target} within {timeout:g} s (is it "
                          f"the scheduler's port, 8786 by default, and not its dashboard's?)")
    return box["client"]


@contextlib.contextmanager
def connect(address, *, timeout: float | None = None, threads: bool = True):
    """A connected :class:`distributed.Client` for ``address`` (see the module); closed (and a ``local:N``
    cluster stopped) on exit.  An unreachable scheduler is a MmsoldError raised within ``timeout`` s."""
    kind, value = parse_address(address)
    timeout = _connect_timeout() if timeout is None else float(timeout)
    require_dask()
    import logging
    import warnings

    import dask
    from distributed import Client, LocalCluster

    cluster = None
    where = str(value)
    # distributed logs every failed reconnect with a traceback; ours is the one line the error becomes
    quiet = _Quiet()
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}):
            if kind == "local":
                k = worker_threads(_cores(), value)
                with warnings.catch_warnings():
                    # no dashboard, but the scheduler's HTTP routes still try port 8787 and warn when another
                    # cluster holds it before taking a free port: nothing the user asked for
                    warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
                    with _tracker_quiet():
                        cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                               dashboard_address=None, scheduler_port=0, silence_logs=logging.ERROR,
                                               env={"NUMBA_NUM_THREADS": str(k)})
                client = Client(cluster, timeout=f"{timeout}s")
                where = f"local:{value} ({cluster.scheduler_address})"
            else:
                target = scheduler_file_address(value) if kind == "file" else value
                client = _client_within(Client, target, timeout, address)
                try:  # a scheduler without workers would take the tasks and never run them
                    client.wait_for_workers(1, timeout=timeout)
                except TimeoutError:
                    with contextlib.suppress(Exception):
                        client.close(timeout=5)
                    raise MmsoldError(f"--dask {address}: the Dask scheduler has no workers (none joined within "
                                      f"{timeout:g} s); start some with: dask worker {target}") from None
    except MmsoldError:
        quiet.restore()
        raise
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        quiet.restore()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmsoldError(f"--dask {address}: cannot reach the Dask scheduler within {timeout:g} s ({text})") from None
    try:
        if threads:
            with cluster_errors(where, client):
                set_worker_threads(client)
        client.mmsold_where = where
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
        quiet.restore()
