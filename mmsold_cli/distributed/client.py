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

__all__ = ["DASK_ENV", "INSTALL_HINT", "parse_address", "connect", "require_dask", "set_worker_threads",
           "measure_overhead", "cluster_errors", "worker_threads"]

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
    if not value > 0:
        raise MmsoldError(f"MMSOLD_DASK_TIMEOUT={value:g}: expected a positive number of seconds")
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
        raise MmsoldError(f"--dask {s}: neither a scheduler address (tcp://host:port), an existing scheduler file, "
                          f"nor local:N")
    return "file", path


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


def _lost(where, exc) -> MmsoldError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MmsoldError(f"lost the Dask scheduler {where} during the run ({text}); no output was written")


@contextlib.contextmanager
def cluster_errors(where: str):
    """Turn a lost scheduler or a task that killed its workers into one MmsoldError (bad input passes)."""
    import asyncio

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        yield
    except MmsoldError:
        raise
    except KilledWorker as exc:
        raise MmsoldError(f"a task killed every worker it ran on ({exc}); no output was written") from None
    except (CommClosedError, OSError, asyncio.TimeoutError, TimeoutError, asyncio.CancelledError) as exc:
        raise _lost(where, exc) from None
    except Exception as exc:
        if type(exc).__name__ in ("FutureCancelledError", "CancelledError"):
            raise _lost(where, exc) from None
        raise


class _Quiet:
    """Silence distributed's loggers (each has its own level) until :meth:`restore`."""

    def __init__(self):
        import logging

        names = [n for n in list(logging.root.manager.loggerDict) if n == "distributed" or n.startswith("distributed.")]
        self.levels = {n: logging.getLogger(n).level for n in names + ["distributed"]}
        for n in self.levels:
            logging.getLogger(n).setLevel(logging.CRITICAL + 1)

    def restore(self):
        import logging

        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


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
                    cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                           dashboard_address=None, scheduler_port=0, silence_logs=logging.ERROR,
                                           env={"NUMBA_NUM_THREADS": str(k)})
                client = Client(cluster, timeout=f"{timeout}s")
                where = f"local:{value} ({cluster.scheduler_address})"
            elif kind == "file":
                client = Client(scheduler_file=str(value), timeout=f"{timeout}s")
            else:
                client = Client(value, timeout=f"{timeout}s")
    except MmsoldError:
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
            with cluster_errors(where):
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
