#!/usr/bin/env bash
# Remake the pictures under docs/ with the command line (needs the plot extra and ../shared/data).
#   bash docs/make_figures.sh            (about 5 minutes on 2 cores)
# docs/latent_mnist.png comes from: python benchmarks/latent_mnist.py --figure docs/latent_mnist.png
set -euo pipefail
cd "$(dirname "$0")/.."
MESH=../shared/data/meshes/stanford-bunny.obj
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# a sparse scan of the bunny: 2,000 area-weighted surface points, and 40,000 more as the reference
python - "$MESH" "$W" <<'EOF'
import sys
from mmsold_cli.datasets import surface_samples
from mmsold_cli.io.arrays import write_points
from mmsold_cli.io.mesh import read_mesh
V, F = read_mesh(sys.argv[1])
write_points(f"{sys.argv[2]}/bunny_sparse.ply", surface_samples(V, F, 2000, random_state=0))
write_points(f"{sys.argv[2]}/bunny_ref.npy", surface_samples(V, F, 40000, random_state=1))
EOF

# densify ×20 with and without the denoising stage; colour by the exact distance to the mesh
mmsold densify "$W/bunny_sparse.ply" -o "$W/bunny_raw.ply" --factor 20 --denoise none --seed 0
mmsold densify "$W/bunny_sparse.ply" -o "$W/bunny_dense.ply" --factor 20 --seed 0
mmsold evaluate "$W/bunny_raw.ply" "$W/bunny_ref.npy" --train "$W/bunny_sparse.ply" --mesh "$MESH" \
    --plot docs/densify_bunny_raw.png
mmsold evaluate "$W/bunny_dense.ply" "$W/bunny_ref.npy" --train "$W/bunny_sparse.ply" --mesh "$MESH" \
    --plot docs/densify_bunny.png

# 2-D: MM-SOLD samples over the training points
mmsold fit-moments sample_data/moons_train.npy -o "$W/moons.h5"
rm -f docs/moons_sample.png
mmsold sample "$W/moons.h5" -n 1000 -o "$W/moons_samples.npy" --seed 0 --plot docs/moons_sample.png
