"""Stick-figure pictures of poses on the built-in skeleton (matplotlib), for docs and quick looks."""
from __future__ import annotations

import numpy as np
import torch

from . import layout, skeleton

_BONE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "mid": "#333333"}


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "mid"


def _draw(ax, joints: np.ndarray, view: str):
    """Front view: x right, y up (facing the viewer, so the body's left is on the image's right);
    side view: z (forward) right, y up."""
    xi = 0 if view == "front" else 2
    for j, p in enumerate(layout.PARENTS):
        if p < 0 or j in (23, 24):  # eyes are not drawn
            continue
        name = layout.JOINT_NAMES[j]
        ax.plot([joints[p, xi], joints[j, xi]], [joints[p, 1], joints[j, 1]],
                color=_BONE_COLOURS[_side(name)], lw=0.8 if j >= 25 else 2.0)
    ax.set_aspect("equal")
    ax.axis("off")


def pose_grid(vectors: np.ndarray, path: str, cols: int = 6, title: str | None = None, hands: bool = True) -> None:
    """Save a PNG: each pose as a front and a side view, plus close-ups of both hands (seen from above)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    j = skeleton.joints_from_vector(v).numpy()
    n = len(v)
    rows = (n + cols - 1) // cols
    per = 4 if hands else 2
    fig, axes = plt.subplots(rows, cols * per, figsize=(cols * per * 1.1, rows * 2.3), squeeze=False)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        group = axes[r, c * per : (c + 1) * per]
        if i >= n:
            for ax in group:
                ax.axis("off")
            continue
        _draw(group[0], j[i], "front")
        _draw(group[1], j[i], "side")
        if hands:
            for ax, side in zip(group[2:], ("right", "left")):
                wrist = j[i, layout.JOINT_INDEX[f"{side}_wrist"]]
                hand = j[i] - wrist
                # top view of the hand: x (along the arm) against z (forward)
                for jj, p in enumerate(layout.PARENTS):
                    name = layout.JOINT_NAMES[jj]
                    if jj >= 25 and name.startswith(side):
                        ax.plot([hand[p, 0], hand[jj, 0]], [hand[p, 2], hand[jj, 2]], color=_BONE_COLOURS[side], lw=1.2)
                ax.set_aspect("equal")
                ax.axis("off")
                ax.set_title(f"{side} hand", fontsize=6)
        group[0].set_title(f"#{i} front", fontsize=6)
        group[1].set_title("side", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
