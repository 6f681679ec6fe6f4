"""The package as `pip install .` installs it (not editable), used from a folder outside the source tree: `dposer
convert` and `dposer batch` on a BVH take. Pipeline users install it this way (README); every other test imports the
source tree. No network: built without build isolation (setuptools from this Python) and installed with --no-deps
into a temporary target; torch and the other dependencies come from this Python."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bvh_synth import CMU_EXTRA, CMU_NAMES, synth_bvh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(dposer script, environment): the package built from a copy of the tracked files and installed into a target
    folder; the environment's PYTHONPATH names only that folder."""
    root = tmp_path_factory.mktemp("install")
    src, target = root / "src", root / "site"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):  # a copy, so the build leaves nothing in the checkout
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.rmtree(src)  # nothing of the source tree is left to import from
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    return target / "bin" / "dposer", env


def _run(installed, args, cwd):
    script, env = installed
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_installed_package_is_what_runs(installed, tmp_path):
    script, env = installed
    out = subprocess.run([sys.executable, "-c", "import dposer; print(dposer.__file__)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120).stdout.strip()
    assert Path(out).is_relative_to(script.parents[1]), out  # the target folder, not the source tree


def test_convert_and_batch_a_bvh_outside_the_source_tree(installed, tmp_path):
    rng = np.random.default_rng(0)
    body = rng.normal(0, 0.2, (FRAMES, 63))
    take = tmp_path / "takes" / "walk.bvh"
    take.parent.mkdir()
    take.write_text(synth_bvh(body, np.zeros((FRAMES, 3)), np.zeros((FRAMES, 3)), CMU_NAMES, extra=CMU_EXTRA))
    proc = _run(installed, ["convert", "--input", str(take), "--output", str(tmp_path / "walk.npz")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    converted = np.load(tmp_path / "walk.npz")
    assert converted["body_pose"].shape == (FRAMES, 63)
    from dposer.formats import convert  # the source tree's converter gives the same poses

    np.testing.assert_allclose(converted["body_pose"], convert.convert_bvh(take)["body_pose"], atol=1e-6)

    proc = _run(installed, ["batch", "clean", "--input", str(take.parent), "--output", str(tmp_path / "out"),
                            "--workers", "1", "--steps", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "walk.bvh").is_file() and (tmp_path / "out" / "walk.smplx.npz").is_file()
    assert np.load(tmp_path / "out" / "walk.smplx.npz")["body_pose"].shape == (FRAMES, 63)
