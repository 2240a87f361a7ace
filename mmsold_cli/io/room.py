"""Checks made before any work: an output must not be an input, and must fit the disk (and memory).

A command that would overwrite its own input, or fill the disk only to fail at the end, is refused
up front with one line naming both sizes or both paths (exit code 2 from the command line).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import MmsoldError

__all__ = ["same_file", "check_not_inputs", "check_distinct_outputs", "available_memory", "free_disk", "human_bytes",
           "output_bytes", "check_room", "TEXT_BYTES_PER_VALUE"]

#: Bytes a text output takes per coordinate at most: ``%.18e`` is 24 characters for a finite float64
#: (sign, 19 digits, point, ``e±dd``; three-digit exponents make 25), plus one separator.
TEXT_BYTES_PER_VALUE = 26


def human_bytes(n: float) -> str:
    """``1536`` → ``1.5 kB`` (powers of 1000, as ``df -H``)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"


def same_file(a, b) -> bool:
    """Whether two paths name one file: the same inode when both exist (links included), else the same real path."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_not_inputs(outputs, inputs) -> None:
    """Refuse an output path that is one of the inputs (also through a symbolic or hard link).

    ``outputs`` and ``inputs`` are iterables of paths (None entries ignored; an input ``file.npz:key`` is
    its file).
    """
    from .arrays import split_path_key

    ins = [split_path_key(p)[0] for p in inputs if p is not None]
    for out in outputs:
        if out is None:
            continue
        for inp in ins:
            if same_file(out, inp):
                raise MmsoldError(f"{out}: this output is the input {inp} (the same file); expected an output "
                                  f"path that is none of the command's inputs")


def check_distinct_outputs(outputs, hint: str = "") -> None:
    """Refuse two outputs of one run at the same path (None entries ignored): one would replace the other.
    ``hint``: which outputs the run writes, for the message."""
    seen = set()
    for out in outputs:
        if out is None:
            continue
        key = os.path.abspath(out)
        if key in seen:
            raise MmsoldError(f"{out}: two outputs of this run would be written to this one file{hint}; expected a "
                              "different name")
        seen.add(key)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no way to know: do not refuse
        return 1 << 62


def free_disk(path) -> int:
    """Free bytes on the file system that will hold ``path`` (its directory)."""
    parent = Path(path).resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return shutil.disk_usage(parent).free


def output_bytes(n: int, d: int, suffix: str) -> int:
    """An upper bound on the bytes of n points in d dimensions written as ``suffix`` (.npy .h5 .ply or text)."""
    values = int(n) * int(d)
    suffix = suffix.lower()
    if suffix in (".csv", ".txt", ".xyz", ".pts"):
        return values * TEXT_BYTES_PER_VALUE + 4096
    return values * 8 + 64 * 1024  # float64 and a header (HDF5 metadata, PLY header)


def check_room(path, n: int, d: int, *, in_memory: bool) -> None:
    """Refuse, before any work, an output of n × d points that cannot fit the target's disk, or memory.

    ``in_memory``: the samples are held as one (n, d) float64 array before they are written (HDF5, PLY,
    a plot, decoded images), so they must fit the available memory too.
    """
    need = output_bytes(n, d, Path(path).suffix)
    free = free_disk(path)
    if need > free:
        raise MmsoldError(f"{path}: {n:,} samples of dimension {d} need {human_bytes(need)} on disk, but only "
                          f"{human_bytes(free)} is free there; expected at most {free // max(1, need // max(1, n)):,} "
                          f"samples")
    if in_memory:
        mem, avail = 8 * int(n) * int(d), available_memory()
        if mem > avail:
            raise MmsoldError(f"{path}: {n:,} samples of dimension {d} need {human_bytes(mem)} of memory before "
                              f"this format is written, but {human_bytes(avail)} is available; write .npy or text "
                              f"(streamed to disk) or draw fewer samples")
