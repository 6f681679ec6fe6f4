"""Claims the docs make, checked against the code: build_addon.py --validate, the user guide's frame limits, the pose
grid's legend."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_build_addon_validate_says_what_it_needs_before_building(tmp_path):
    """In a Python without the bpy wheel (-S: no site-packages, so also under a bpy venv) and no $BLENDER_EXT."""
    env = {k: v for k, v in os.environ.items() if k != "BLENDER_EXT"}
    proc = subprocess.run([sys.executable, "-S", str(REPO / "build_addon.py"), "--validate", "--out",
                           str(tmp_path / "d")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "bpy wheel" in proc.stderr, proc.stderr
    assert not (tmp_path / "d").exists()  # nothing was built first


def test_the_user_guide_states_the_frame_limits_of_the_protocol():
    from dposer.spec.protocol import MAX_FRAMES, MAX_POSES

    guide = (REPO / "docs" / "user_guide.md").read_text()
    assert f"*... frames: at most {MAX_POSES} per run* (Refine) / *at most {MAX_FRAMES}* (Complete, Clean)" in guide


def test_pose_grid_has_a_side_legend(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dposer.eval.render import pose_grid

    opened = []
    orig = plt.close
    plt.close = lambda fig=None: opened.append(fig)  # keep the figure to inspect it
    try:
        pose_grid(np.zeros((2, 256), np.float32), tmp_path / "g.png")
    finally:
        plt.close = orig
    fig = opened[-1]
    labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert labels == ["left side of the body", "right side of the body"]
    assert (tmp_path / "g.png").stat().st_size > 0
    orig(fig)
