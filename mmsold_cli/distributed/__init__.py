"""Running ``sample``, ``densify`` and the moments of ``fit-moments`` on a Dask cluster.

Nothing here imports Dask until a function is called: ``import mmsold_cli`` and ``mmsold --help`` stay
instant, and without the ``dask`` extra every entry point fails with one line naming it
(``pip install "mmsold[dask]"``).

* :mod:`.client` — the ``--dask ADDRESS`` forms (``tcp://host:port``, a scheduler file, ``local:N``),
  connecting, and the numba thread count of each worker;
* :mod:`.sample` — sampling in shards of ensembles, one task a shard;
* :mod:`.densify` — tiled densify, one task a tile;
* :mod:`.zarr_store` — the ``.zarr`` output (Zarr v3), written by the workers, renamed into place;
* :mod:`.moments` — mean and covariance of a chunked input by map-reduce.

Every random number derives from the run's seed and an ensemble (or tile) index, so a run gives the
bytes of the one-machine run whatever the number of workers and the shard size.
"""

__all__ = [
    "DASK_ENV",
    "parse_address",
    "connect",
    "require_dask",
    "set_worker_threads",
    "measure_overhead",
    "shard_rows",
    "sample_distributed",
    "densify_distributed",
    "ZarrOutput",
    "read_zarr",
    "chunk_moments",
    "merge_moments",
    "distributed_moments",
]

_LAZY = {
    "DASK_ENV": "client",
    "parse_address": "client",
    "connect": "client",
    "require_dask": "client",
    "set_worker_threads": "client",
    "measure_overhead": "client",
    "shard_rows": "sample",
    "sample_distributed": "sample",
    "densify_distributed": "densify",
    "ZarrOutput": "zarr_store",
    "read_zarr": "zarr_store",
    "chunk_moments": "moments",
    "merge_moments": "moments",
    "distributed_moments": "moments",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
