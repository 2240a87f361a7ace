"""Pictures of samples: 2-D scatter plots, 3-D clouds from three directions, image grids.

Figures need matplotlib, the optional extra ``pip install "mmsold[plot]"``;
without it every plotting function raises :class:`~mmsold_cli.errors.MmsoldError`
saying so.  Image grids are also written without matplotlib (:func:`save_image_grid`
has its own small PNG encoder, zlib only), so ``sample`` on a model with a
PCA basis always writes its PNG.

Three-dimensional clouds are drawn as three orthographic views, along the
cloud's principal axes (largest spread first), each point coloured by a value
such as its distance to the surface; only points near the front of their
pixel cell are drawn (a coarse depth buffer), far to near, so the visible
surface is what one sees.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import MmsoldError

__all__ = [
    "cloud_views",
    "image_panels",
    "plot_result",
    "png_bytes",
    "require_matplotlib",
    "check_plot_path",
    "save_image_grid",
    "scatter_2d",
    "tile_images",
    "write_png",
]

#: Points drawn per view at most (a random subset beyond that).
MAX_POINTS = 30_000


def require_matplotlib():
    """Import matplotlib with a file-only backend, or explain how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MmsoldError(
            "plots need matplotlib, which is not installed; install the extra: pip install \"mmsold[plot]\""
        ) from exc
    return plt


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path, image) -> Path:
    """Write an 8-bit grey (H, W), RGB (H, W, 3) or RGBA array as a PNG file (atomically).

    Float arrays are taken to lie in [0, 1].
    """
    from .io.arrays import atomic_path

    data = png_bytes(image)
    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def png_bytes(image) -> bytes:
    """The PNG encoding (8 bits, no interlace, zlib level 9) of an image array; see :func:`write_png`."""
    a = np.asarray(image)
    if a.dtype.kind == "f":
        a = np.clip(np.rint(a * 255), 0, 255)
    a = a.astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise MmsoldError(f"PNG image must have shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else {3: 2, 4: 6}[a.shape[2]]  # PNG colour types: grey, RGB, RGBA
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def tile_images(images, ncol: int | None = None, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tile N images of shape (H, W) or (H, W, C) into one grid array.

    Parameters
    ----------
    images : array of shape (N, H, W) or (N, H, W, C), floats in [0, 1]
    ncol : int, optional
        Columns; default ⌈√N⌉.
    pad : int
        Pixels between images.
    fill : float
        Value of the padding.

    Returns
    -------
    grid : array of shape (rows·(H+pad)+pad, ncol·(W+pad)+pad[, C])
    """
    a = np.asarray(images, dtype=np.float32)
    if a.ndim not in (3, 4):
        raise MmsoldError(f"images must have shape (N, H, W) or (N, H, W, C), got {a.shape}")
    N, H, W = a.shape[:3]
    ncol = int(ncol or np.ceil(np.sqrt(N)))
    nrow = int(np.ceil(N / ncol))
    shape = (nrow * (H + pad) + pad, ncol * (W + pad) + pad) + a.shape[3:]
    grid = np.full(shape, fill, dtype=np.float32)
    for i in range(N):
        r, c = divmod(i, ncol)
        grid[pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = a[i]
    return grid


def save_image_grid(path, images, *, ncol: int = 10, max_images: int = 100, invert: bool = False) -> Path:
    """Write the first ``max_images`` images as one PNG grid (no matplotlib needed).

    Parameters
    ----------
    images : array of shape (N, H, W) or (N, H, W, C), floats in [0, 1]
    invert : bool
        Dark strokes on white (for MNIST-like digits).
    """
    a = np.asarray(images, dtype=np.float32)[:max_images]
    if invert:
        a = 1.0 - a
    return write_png(path, tile_images(a, ncol=min(ncol, len(a)), fill=1.0))


def check_plot_path(path, dim: int | None = None) -> None:
    """A plot's file name must say its format, matplotlib must be there, and points of ``dim`` dimensions (when
    given: points drawn as points, not decoded to images) must be drawable: checked before any work."""
    ext = Path(path).suffix.lower()
    if ext not in (".png", ".pdf", ".svg"):
        raise MmsoldError(f"{path}: plot file must end in .png, .pdf or .svg, got {ext or '(none)'!r}")
    if dim is not None and dim < 2:
        raise MmsoldError(f"{path}: cannot draw {dim}-D points (a plot needs 2 or more dimensions); leave out the plot")
    require_matplotlib()


def _finish(fig, path, dpi: int = 110):
    from .io.arrays import atomic_path

    path = Path(path)
    ext = path.suffix.lower()
    check_plot_path(path)
    plt = require_matplotlib()
    try:
        with atomic_path(path, overwrite=True) as tmp:
            fig.savefig(tmp, format=ext[1:], dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def scatter_2d(path, samples, reference=None, *, title: str | None = None, labels=("samples", "reference")):
    """Samples (blue) over reference points (grey) in the plane."""
    plt = require_matplotlib()
    A = np.asarray(samples, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if reference is not None:
        B = np.asarray(reference, dtype=float)
        ax.scatter(B[:, 0], B[:, 1], s=3, c="0.6", alpha=0.6, lw=0, label=labels[1])
    ax.scatter(A[:, 0], A[:, 1], s=3, c="tab:blue", alpha=0.7, lw=0, label=labels[0])
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def _principal_frame(P):
    c = P.mean(axis=0)
    _, vec = np.linalg.eigh(np.cov((P - c).T))
    return c, vec[:, ::-1]  # columns: largest spread first


def _visible(uv, depth, resolution: int = 220, tolerance: float = 0.02):
    """Points on the near side: within ``tolerance`` × extent of the nearest point of their pixel cell."""
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    cell = max(float((hi - lo).max()) / resolution, np.finfo(float).tiny)
    ij = np.floor((uv - lo) / cell).astype(np.int64)
    key = ij[:, 0] * (resolution + 2) + ij[:, 1]
    nearest = np.full(key.max() + 1, -np.inf)
    np.maximum.at(nearest, key, depth)
    extent = float(np.ptp(depth)) or 1.0
    return depth >= nearest[key] - tolerance * extent


def cloud_views(path, points, values=None, *, value_label: str = "", title: str | None = None,
                vmax: float | None = None, random_state=0):
    """A 3-D cloud from three orthogonal directions, coloured by ``values``.

    Parameters
    ----------
    points : array of shape (m, 3)
    values : array of shape (m,), optional
        E.g. distance to the surface; one shared colour scale for the views.
    value_label : str
        Colour-bar label.
    vmax : float, optional
        Top of the colour scale (default: the 99th percentile of values).
    """
    plt = require_matplotlib()
    P = np.asarray(points, dtype=float)
    if P.ndim != 2 or P.shape[1] != 3:
        raise MmsoldError(f"cloud_views needs 3-D points, got shape {P.shape}")
    rng = np.random.default_rng(random_state)
    sel = np.arange(len(P)) if len(P) <= MAX_POINTS else rng.choice(len(P), MAX_POINTS, replace=False)
    P = P[sel]
    vals = None if values is None else np.asarray(values, dtype=float)[sel]
    c, E = _principal_frame(P)
    Q = (P - c) @ E  # coordinates along the principal axes
    views = [((0, 1), 2, "front"), ((0, 2), 1, "top"), ((1, 2), 0, "side")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    vmax = vmax if vmax is not None else (float(np.percentile(vals, 99)) if vals is not None and len(vals) else None)
    sc = None
    for ax, ((i, j), k, name) in zip(axes, views):
        vis = np.flatnonzero(_visible(Q[:, [i, j]], Q[:, k]))
        order = vis[np.argsort(Q[vis, k])]  # far to near, hidden points left out
        if vals is None:
            ax.scatter(Q[order, i], Q[order, j], s=1.2, c=Q[order, k], cmap="Greys_r", lw=0)
        else:
            sc = ax.scatter(Q[order, i], Q[order, j], s=1.2, c=vals[order], cmap="viridis", vmin=0, vmax=vmax, lw=0)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(name, fontsize=9)
    if sc is not None:
        cb = fig.colorbar(sc, ax=list(axes), shrink=0.8, pad=0.01)
        cb.set_label(value_label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def image_panels(path, panels: dict, *, ncol: int = 10, max_images: int = 100, invert: bool = False,
                 per_row: int = 3, dpi: int = 110):
    """Several labelled image grids, ``per_row`` to a row, e.g. ``{"MM-SOLD": imgs, "test": imgs}``."""
    plt = require_matplotlib()
    cols = min(per_row, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, (name, imgs) in zip(axes.ravel(), panels.items()):
        a = np.asarray(imgs, dtype=np.float32)[:max_images]
        g = tile_images(1.0 - a if invert else a, ncol=min(ncol, len(a)))
        ax.imshow(g, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    return _finish(fig, path, dpi=dpi)


def plot_result(path, samples, reference=None, *, basis=None, distances=None, value_label="",
                title: str | None = None, reference_label: str = "reference"):
    """Draw whatever suits the data: images (with a PCA basis), 2-D scatter, or 3-D views.

    Parameters
    ----------
    samples : array of shape (m, d)
    reference : array of shape (r, d), optional
        Drawn beside (images) or under (2-D) the samples.
    basis : PCABasis, optional
        Decode codes to images.
    distances : array of shape (m,), optional
        Colours of 3-D points (default: distance to the nearest reference point).
    reference_label : str
        What the reference is, for legends and titles.
    """
    A = np.asarray(samples, dtype=float)
    if basis is not None:
        from .workflows.latent import decode

        panels = {"samples": decode(A[:100], basis)}
        if reference is not None:
            panels[reference_label] = decode(np.asarray(reference, dtype=float)[:100], basis)
        return image_panels(path, panels)
    d = A.shape[1]
    check_plot_path(path, dim=d)
    if d == 2:
        return scatter_2d(path, A, reference, title=title, labels=("samples", reference_label))
    if d == 3:
        if distances is None and reference is not None:
            from .metrics.surface import nn_distance

            distances = nn_distance(A, np.asarray(reference, dtype=float))
            value_label = value_label or f"distance to nearest {reference_label} point"
        return cloud_views(path, A, distances, value_label=value_label, title=title)
    if reference is not None and reference.shape[1] == d:
        # any other dimension: the first two principal directions of the reference
        B = np.asarray(reference, dtype=float)
        c, E = np.mean(B, axis=0), np.linalg.svd(B - B.mean(axis=0), full_matrices=False)[2][:2].T
        return scatter_2d(path, (A - c) @ E, (B - c) @ E, title=title or "first two principal directions",
                          labels=("samples", reference_label))
    raise MmsoldError(f"cannot draw {d}-D samples without a reference set or a PCA basis")

