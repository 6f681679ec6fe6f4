"""Stick-figure pictures of poses on the built-in skeleton (matplotlib), for docs and quick looks."""
from __future__ import annotations

import numpy as np
import torch

from ..spec import layout
from ..core import kinematics as skeleton

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


def _draw_hand(ax, vec: torch.Tensor, side: str):
    """One hand alone (arm at rest, wrist at the origin) in an oblique view: x along the fingers, y up plus a
    little of z, so both the curl and the spread of the fingers show. The left hand is flipped to face the same way."""
    only = torch.zeros(1, layout.DIM)
    sl = layout.PART_SLICES[f"{side}_hand"]
    only[0, sl] = vec[sl]
    j = skeleton.joints_from_vector(only)[0].numpy()
    j = j - j[layout.JOINT_INDEX[f"{side}_wrist"]]
    if side == "left":
        j[:, 0] *= -1
    for jj, p in enumerate(layout.PARENTS):
        name = layout.JOINT_NAMES[jj]
        if jj >= 25 and name.startswith(side):
            q = p if p >= 25 else layout.JOINT_INDEX[f"{side}_wrist"]
            ax.plot([-j[q, 0], -j[jj, 0]], [j[q, 1] + 0.4 * j[q, 2], j[jj, 1] + 0.4 * j[jj, 2]],
                    color=_BONE_COLOURS[side], lw=2.0, solid_capstyle="round")
    ax.set_aspect("equal")
    ax.axis("off")


def pose_grid(vectors: np.ndarray, path: str, cols: int = 3, title: str | None = None,
              labels: list[str] | None = None) -> None:
    """Save a PNG: each pose as a front view, a side view and both hands on their own."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("drawing poses needs matplotlib: pip install 'blender-dposer[plot]'") from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    j = skeleton.joints_from_vector(v).numpy()
    n = len(v)
    rows = (n + cols - 1) // cols
    # hands get as much room as the body views: drawn alone and zoomed, their fingers stay readable
    fig, axes = plt.subplots(rows, cols * 4, figsize=(cols * 4 * 1.6, rows * 2.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0, 1.0, 1.0, 1.0] * cols})
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        group = axes[r, c * 4 : (c + 1) * 4]
        if i >= n:
            for ax in group:
                ax.axis("off")
            continue
        _draw(group[0], j[i], "front")
        _draw(group[1], j[i], "side")
        _draw_hand(group[2], v[i], "right")
        _draw_hand(group[3], v[i], "left")
        name = labels[i] if labels else f"#{i}"
        for ax, label in zip(group, (f"{name} front", "side", "right hand", "left hand")):
            ax.set_title(label, fontsize=7)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_BONE_COLOURS[s], lw=2.5, label=f"{s} side of the body") for s in ("left", "right")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    from ..formats.npz import atomic_write

    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
