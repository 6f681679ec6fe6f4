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


@pytest.fixture(scope="session")
def data_root():
    if DATA is None:
        pytest.skip("shared pose data not found (set DPOSER_DATA)")
    return DATA
