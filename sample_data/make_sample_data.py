"""Remake the bundled sample data (run from the repository root).

    python sample_data/make_sample_data.py

Writes, for each 2-D toy law, 2,000 training and 1,000 held-out test points
(``NAME_train.npy``, ``NAME_test.npy``), and for the bumpy torus its mesh
(``torus.obj``), a sparse surface cloud of 2,000 points (``torus_sparse.ply``)
and a dense reference of 15,000 (``torus_dense.npy``).  Seeds are fixed, so
the files are identical on every run.
"""

from pathlib import Path

import numpy as np

from mmsold_cli.datasets import TOY_2D, bumpy_torus, surface_samples
from mmsold_cli.io.mesh import write_ply

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE):
    """Write the files into ``out`` (this folder by default)."""
    for k, (name, gen) in enumerate(TOY_2D.items()):
        np.save(out / f"{name}_train.npy", gen(2000, random_state=100 + k))
        np.save(out / f"{name}_test.npy", gen(1000, random_state=200 + k))
    v, f = bumpy_torus()
    with open(out / "torus.obj", "w") as fh:
        fh.write("# bumpy torus, made by sample_data/make_sample_data.py\n")
        np.savetxt(fh, v, fmt="v %.6f %.6f %.6f")
        np.savetxt(fh, f + 1, fmt="f %d %d %d")
    write_ply(out / "torus_sparse.ply", surface_samples(v, f, 2000, random_state=300))
    np.save(out / "torus_dense.npy", surface_samples(v, f, 15000, random_state=301).astype(np.float32))


if __name__ == "__main__":
    main()
