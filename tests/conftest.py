from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_DATA = ROOT / "sample_data"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def aniso_rotated(rng):
    """An anisotropic, rotated 3-D Gaussian-ish training set."""
    A = rng.standard_normal((3, 3))
    Q, _ = np.linalg.qr(A)
    X = rng.standard_normal((400, 3)) * np.array([3.0, 0.5, 1.2])
    return X @ Q.T + np.array([1.0, -2.0, 0.5])


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path
