#!/usr/bin/env python3
"""Draw docs/images/architecture.png: the modules of the add-on and the backend, and the numbered path of one
Complete click. Needs matplotlib (the backend venv has it):

    python scripts/render_architecture.py [--out docs/images/architecture.png]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
W, H = 2.6, 0.62  # box size

# name -> (x, y, note); x/y are box centres
ADDON = {
    "panel.py": (1.6, 9.0, "N-panel: parts, frames, seed"),
    "operators.py": (1.6, 7.8, "DPOSER_OT_complete -> jobs.py"),
    "keyframes.py": (1.6, 6.6, "read / write F-curve keys"),
    "rig_math.py": (1.6, 5.4, "re-exports the three below"),
    "smplx_skeleton.py": (0.2, 4.2, "SMPL-X tables, FK, pose dicts"),
    "rotations.py": (1.6, 3.2, "Blender rotation conventions"),
    "retarget.py": (3.0, 4.2, "rig <-> SMPL-X, calibration"),
    "bone_maps.py / rig_profile.py": (4.6, 6.2, "which bone is which joint"),
    "backend_client.py": (4.6, 7.8, "subprocess / embedded backend"),
    "protocol.py (copy)": (4.6, 9.0, "ops, limits, version"),
}
BACKEND = {
    "protocol.py": (8.6, 9.0, "the op table, written once"),
    "server.py": (8.6, 7.8, "JSON lines, validation, worker"),
    "tasks.py": (8.6, 6.6, "complete (+temporal) / clean (+cleaning)"),
    "solver.py": (8.6, 5.4, "score-guided optimisation"),
    "prior.py": (8.6, 4.2, "Prior: eps / denoise / denoiser"),
    "model.py / official.py": (7.0, 3.0, "score networks"),
    "checkpoint.py": (10.2, 3.0, "safetensors format, Normalizer"),
    "results.py": (11.4, 6.6, "TaskResult: the typed answer"),
    "layout.py": (11.4, 7.8, "256-D vector: slices, dict <-> vector"),
    "denoiser.py": (11.4, 5.4, "Denoiser: D(x_t, t) protocol"),
    "skeleton.py / sde.py": (11.4, 4.2, "FK, noise schedule"),
    "data.py / sampling.py": (11.4, 9.0, "pose sets, samplers"),
}
FLOW = [  # (from, to, label, curvature, label offset (dx, dy)): one Complete click
    ("panel.py", "operators.py", "1 click", 0.0, (0.0, 0.0)),
    ("operators.py", "keyframes.py", "2 read keys", 0.0, (-0.75, 0.0)),
    ("operators.py", "backend_client.py", "3 submit('complete')", 0.0, (0.0, 0.1)),
    ("backend_client.py", "server.py", "4 JSON line", 0.0, (0.0, 0.1)),
    ("server.py", "tasks.py", "5 validate, run", 0.0, (0.0, 0.0)),
    ("tasks.py", "solver.py", "6 solve", 0.0, (0.0, 0.0)),
    ("solver.py", "prior.py", "7 denoiser(x_t, t)", 0.0, (0.0, 0.0)),
    ("server.py", "backend_client.py", "8 result", 0.3, (0.0, 0.55)),
    ("operators.py", "keyframes.py", "9 write keys", -0.6, (0.95, 0.0)),
]
USES = [("keyframes.py", "rig_math.py"), ("rig_math.py", "smplx_skeleton.py"), ("rig_math.py", "rotations.py"),
        ("rig_math.py", "retarget.py"), ("backend_client.py", "protocol.py (copy)"), ("server.py", "protocol.py"),
        ("prior.py", "model.py / official.py"), ("prior.py", "checkpoint.py"), ("tasks.py", "layout.py"),
        ("tasks.py", "results.py"),
        ("solver.py", "denoiser.py"),
        ("solver.py", "skeleton.py / sde.py"), ("operators.py", "bone_maps.py / rig_profile.py")]


def box(ax, name, x, y, note, colour):
    ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.04", fc=colour, ec="#333",
                                lw=1.0, zorder=2))
    ax.text(x, y + 0.1, name, ha="center", va="center", fontsize=9, weight="bold", family="monospace", zorder=3)
    ax.text(x, y - 0.16, note, ha="center", va="center", fontsize=7, color="#333", zorder=3)


def edge(a, b, pad=0.08):
    """Where the line from box centre a towards b leaves box a."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = min((W / 2 + pad) / abs(dx) if dx else float("inf"), (H / 2 + pad) / abs(dy) if dy else float("inf"))
    return a[0] + t * dx, a[1] + t * dy


def arrow(ax, a, b, colour, label=None, rad=0.0, offset=(0.0, 0.0), style="-|>", lw=1.0):
    (xa, ya), (xb, yb) = a, b
    ax.add_patch(FancyArrowPatch(edge(a, b), edge(b, a), arrowstyle=style, mutation_scale=11, color=colour, lw=lw,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, zorder=1))
    if label:
        ax.text((xa + xb) / 2 + offset[0], (ya + yb) / 2 + offset[1], label, fontsize=7.5, color=colour,
                ha="center", va="center", weight="bold", zorder=4,
                bbox=dict(fc="white", ec="none", pad=0.5, alpha=0.85))


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(13, 8.2))
    ax.set_xlim(-1.4, 13.0)
    ax.set_ylim(1.2, 10.2)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((-1.25, 1.45), 7.3, 8.35, boxstyle="round,pad=0.05", fc="#eef4fb", ec="#7a9cc6"))
    ax.add_patch(FancyBboxPatch((5.55, 1.45), 7.3, 8.35, boxstyle="round,pad=0.05", fc="#f6f1e7", ec="#c6a87a"))
    ax.text(-1.1, 9.95, "Blender process: blender_dposer (bpy, NumPy; never torch)", fontsize=10, weight="bold")
    ax.text(5.7, 9.95, "backend process: dposer (PyTorch)", fontsize=10, weight="bold")
    pos = {}
    for table, colour in ((ADDON, "#ffffff"), (BACKEND, "#ffffff")):
        for name, (x, y, note) in table.items():
            box(ax, name, x, y, note, colour)
            pos[name] = (x, y)
    for a, b in USES:
        arrow(ax, pos[a], pos[b], "#999999", style="-|>", lw=0.8)
    for a, b, label, rad, offset in FLOW:
        back = label.startswith(("8", "9"))
        arrow(ax, pos[a], pos[b], "#1e8449" if back else "#c0392b", label, rad, offset, lw=1.6)
    ax.text(-1.1, 1.6, "red: request path of one Complete click (1-7); green: the answer back (8-9); grey: imports",
            fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "architecture.png")
    draw(p.parse_args().out)
