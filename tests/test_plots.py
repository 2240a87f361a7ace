"""Pictures: the PNG encoder, image tiling, the matplotlib figures and the message without matplotlib."""

import struct
import sys
import zlib

import numpy as np
import pytest
from conftest import SAMPLE_DATA
from typer.testing import CliRunner

from mmsold_cli import plots
from mmsold_cli.cli import app
from mmsold_cli.errors import MmsoldError


def _read_png(data: bytes) -> np.ndarray:
    """A minimal PNG decoder for what write_png produces (8-bit, filter 0 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = chunks.get(tag, b"") + body
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    ch = {0: 1, 2: 3, 6: 4}[colour]
    raw = zlib.decompress(chunks[b"IDAT"])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + w * ch)
    assert depth == 8 and (rows[:, 0] == 0).all()
    img = rows[:, 1:].reshape(h, w, ch)
    return img[:, :, 0] if ch == 1 else img


@pytest.mark.parametrize("shape", [(7, 9), (5, 4, 3), (3, 6, 4)])
def test_png_round_trip(tmp_path, rng, shape):
    a = rng.integers(0, 256, shape).astype(np.uint8)
    plots.write_png(tmp_path / "a.png", a)
    np.testing.assert_array_equal(_read_png((tmp_path / "a.png").read_bytes()), a)


def test_png_from_floats_and_bad_shapes(tmp_path):
    f = np.array([[0.0, 0.5, 1.0, 2.0, -1.0]])
    np.testing.assert_array_equal(_read_png(plots.png_bytes(f)), [[0, 128, 255, 255, 0]])
    with pytest.raises(MmsoldError, match="PNG image must have shape"):
        plots.png_bytes(np.zeros((2, 2, 2)))


def test_tile_images_places_each_image(rng):
    imgs = rng.random((7, 3, 2)).astype(np.float32)
    g = plots.tile_images(imgs, ncol=3, pad=1, fill=-1)
    assert g.shape == (3 * 4 + 1, 3 * 3 + 1)
    for i in range(7):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(g[1 + 4 * r : 4 + 4 * r, 1 + 3 * c : 3 + 3 * c], imgs[i])
    assert (g[0] == -1).all() and (g[-4:, 1 + 3 : 3 + 3] == -1).all()  # padding and the empty slots
    assert plots.tile_images(rng.random((4, 2, 2, 3))).shape == (7, 7, 3)


def test_save_image_grid(tmp_path, rng):
    imgs = rng.random((150, 4, 4))
    plots.save_image_grid(tmp_path / "g.png", imgs, ncol=10)
    assert _read_png((tmp_path / "g.png").read_bytes()).shape == (10 * 5 + 1, 10 * 5 + 1)


def test_figures(tmp_path, rng):
    pytest.importorskip("matplotlib")
    X = rng.standard_normal((500, 2))
    for path in (tmp_path / "s.png", tmp_path / "s.svg"):
        plots.scatter_2d(path, X, X + 1, title="t")
        assert path.stat().st_size > 1000
    P = rng.standard_normal((3000, 3)) * [3, 1, 0.3]
    plots.cloud_views(tmp_path / "c.png", P, np.abs(P[:, 2]), value_label="|z|")
    from matplotlib.image import imread

    img = imread(tmp_path / "c.png")
    assert img.ndim == 3 and img.shape[1] > 2 * img.shape[0]  # three views side by side
    assert img[..., :3].std() > 0.05  # not blank
    plots.image_panels(tmp_path / "i.png", {"a": rng.random((20, 5, 5)), "b": rng.random((30, 5, 5))})
    assert (tmp_path / "i.png").stat().st_size > 1000
    plots.plot_result(tmp_path / "hd.png", rng.standard_normal((200, 6)), rng.standard_normal((200, 6)))
    with pytest.raises(MmsoldError, match="plot file must end in"):
        plots.scatter_2d(tmp_path / "s.jpg", X)
    with pytest.raises(MmsoldError, match="without a reference"):
        plots.plot_result(tmp_path / "x.png", rng.standard_normal((20, 5)))
    assert not (tmp_path / "s.jpg").exists() and not (tmp_path / "x.png").exists()


def test_clear_message_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MmsoldError, match=r'pip install "mmsold\[plot\]"'):
        plots.require_matplotlib()
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", str(SAMPLE_DATA / "moons_test.npy"), str(SAMPLE_DATA / "moons_train.npy"),
                            "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 2 and "mmsold[plot]" in r.output and not (tmp_path / "p.png").exists()
    # image grids need no matplotlib
    plots.save_image_grid(tmp_path / "g.png", np.zeros((4, 3, 3)))
    assert (tmp_path / "g.png").exists()


def test_cli_plots(tmp_path):
    pytest.importorskip("matplotlib")
    runner = CliRunner()
    r = runner.invoke(app, ["fit-moments", str(SAMPLE_DATA / "moons_train.npy"), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sample", str(tmp_path / "m.h5"), "-n", "300", "-o", str(tmp_path / "s.npy"),
                            "--steps", "5", "--plot", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["evaluate", str(tmp_path / "s.npy"), str(SAMPLE_DATA / "moons_test.npy"),
                            "--plot", str(tmp_path / "e.png"), "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e.png").stat().st_size > 1000
    # 3-D: coloured by the exact distance to the mesh
    r = runner.invoke(app, ["evaluate", str(SAMPLE_DATA / "torus_sparse.ply"), str(SAMPLE_DATA / "torus_dense.npy"),
                            "--mesh", str(SAMPLE_DATA / "torus.obj"), "--plot", str(tmp_path / "t.png"), "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t.png").stat().st_size > 1000
