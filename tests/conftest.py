import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir():
    env = os.environ.get("DPOSER_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if (p / "dposer_x").is_dir() else None


DATA = _data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="shared pose data not found: set DPOSER_DATA to ../shared/data "
                                "(the licensed data is not redistributed with the repo)")


@pytest.fixture
def rng():
    """A seeded NumPy generator (the add-on's rig-math tests)."""
    import numpy as np

    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def data_root():
    if DATA is None:
        pytest.skip("shared pose data not found (set DPOSER_DATA)")
    return DATA


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random-weight prior checkpoint: fast, and independent of the trained default."""
    import torch

    from dposer.core.model import NetConfig, ScoreNet
    from dposer.core.prior import Normalizer, save_prior

    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16))
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_prior(path, net, Normalizer(torch.zeros(256), torch.ones(256)))
    return str(path)
