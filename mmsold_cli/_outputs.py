"""Outputs being written: the temporary files and folders not yet moved into place, and their commit.

Writers (:func:`mmsold_cli.io.arrays.atomic_paths`, the zarr store of :mod:`mmsold_cli.distributed`) record
their temporary outputs here and move them into place inside :func:`committing`.  A stop that cannot wait for
the writers to unwind (the CLI's watcher, :func:`mmsold_cli.cli._watch_stops`) deletes what is still recorded
with :func:`remove_partial_outputs`.  Standard library only, so the CLI loads it at start for nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

__all__ = ["track_partial", "untrack_partial", "committing", "remove_partial_outputs"]

#: Temporary outputs not yet moved into place: path → is a folder.
_PARTIAL: dict[Path, bool] = {}
#: Held while outputs are moved into place, so a forced stop takes all of a command's outputs or none.
_COMMIT = threading.RLock()


def track_partial(path, folder: bool = False) -> None:
    """Record a temporary output (a file, or a folder such as a zarr store) until :func:`untrack_partial`."""
    _PARTIAL[Path(path)] = folder


def untrack_partial(path) -> None:
    _PARTIAL.pop(Path(path), None)


@contextlib.contextmanager
def committing():
    """The moves of outputs into place: a forced stop waits for them, and SIGINT / SIGTERM are delivered after."""
    with _COMMIT, _signals_held():
        yield


def remove_partial_outputs(wait: float = 10.0) -> None:
    """Delete every temporary output still recorded, once no commit is under way (waiting up to ``wait`` s).

    For a process about to leave with :func:`os._exit` while its main thread is stuck in a native call: the lock
    is kept, so nothing is moved into place afterwards.
    """
    import shutil

    _COMMIT.acquire(timeout=wait)
    for path, folder in list(_PARTIAL.items()):
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if folder else os.unlink(path)
        _PARTIAL.pop(path, None)


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back for the duration; deliver them afterwards.

    Python runs signal handlers between bytecodes of the main thread, so
    swapping the handlers for one that only records the signal makes the
    enclosed renames indivisible.  (Outside the main thread nothing is done.)
    """
    pending: list[int] = []
    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    except ValueError:  # not the main thread: handlers cannot be set, and none run here
        pass
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in pending:
            signal.raise_signal(sig)
