#!/usr/bin/env python3
"""Draw docs/images/architecture.png: the modules of the add-on and the backend, the torch-free layer both stand on
(dposer.spec), and the numbered path of one Complete hands click. Needs matplotlib (the backend venv has it):

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
    "params.py": (4.6, 9.0, "slider defaults and ranges"),
    "operators.py": (1.6, 7.8, "DPOSER_OT_complete -> jobs.py"),
    "backend_client.py": (4.6, 7.8, "session.py holds one; or embedded"),
    "keyframes.py": (1.6, 6.6, "read / write F-curve keys"),
    "rig_profile.py": (4.6, 6.6, "which bone is which joint"),
    "rig_math.py / retarget.py": (1.6, 5.4, "rig <-> SMPL-X, calibration"),
}
BACKEND = {
    "serve/server.py": (8.6, 9.0, "JSON lines, worker thread"),
    "serve/requests.py": (11.4, 9.0, "checks every argument"),
    "tasks/pose_tasks.py": (8.6, 7.8, "complete / clean / vary / refine / fit"),
    "tasks/temporal.py": (11.4, 7.8, "a clip solved as one motion"),
    "core/solver.py": (8.6, 6.6, "score-guided optimisation"),
    "core/results.py": (11.4, 6.6, "TaskResult: the typed answer"),
    "core/prior.py": (8.6, 5.4, "Prior: eps / denoise / denoiser"),
    "core/denoiser.py": (11.4, 5.4, "Denoiser: D(x_t, t) protocol"),
    "core/model.py / official.py": (7.0, 4.2, "score networks"),
    "core/checkpoint.py": (10.2, 4.2, "safetensors format, Normalizer"),
}
SPEC = {
    "spec/operations.py": (-0.1, 2.3, "each op: args, ranges, help"),
    "spec/bone_maps.py": (2.65, 2.3, "rig and BVH bone names"),
    "spec/skeleton.py / rotations.py": (5.4, 2.3, "SMPL-X tables, FK, rotations"),
    "spec/protocol.py / messages.py": (8.15, 2.3, "ops, limits, request lines"),
    "spec/layout.py": (10.9, 2.3, "256-D vector: slices, dict <-> vector"),
}
FLOW = [  # (from, to, label, curvature, label offset (dx, dy)): one Complete hands click
    ("panel.py", "operators.py", "1 click", 0.0, (0.0, 0.0)),
    ("operators.py", "keyframes.py", "2 read keys", 0.0, (-0.75, 0.0)),
    ("operators.py", "backend_client.py", "3 submit('complete')", 0.0, (0.0, 0.3)),
    ("backend_client.py", "serve/server.py", "4 JSON line", 0.0, (0.0, 0.1)),
    ("serve/server.py", "tasks/pose_tasks.py", "5 checked, run", 0.0, (0.0, 0.0)),
    ("tasks/pose_tasks.py", "core/solver.py", "6 solve", 0.0, (0.0, 0.0)),
    ("core/solver.py", "core/prior.py", "7 denoiser(x_t, t)", 0.0, (0.0, 0.0)),
    ("serve/server.py", "backend_client.py", "8 result", 0.3, (0.0, 0.55)),
    ("operators.py", "keyframes.py", "9 write keys", -0.6, (0.95, 0.0)),
]
USES = [("panel.py", "params.py"), ("params.py", "spec/operations.py"), ("operators.py", "rig_profile.py"),
        ("keyframes.py", "rig_math.py / retarget.py"), ("rig_math.py / retarget.py", "spec/skeleton.py / rotations.py"),
        ("rig_profile.py", "spec/bone_maps.py"), ("backend_client.py", "spec/protocol.py / messages.py"),
        ("serve/server.py", "serve/requests.py"), ("serve/requests.py", "spec/operations.py"),
        ("tasks/pose_tasks.py", "tasks/temporal.py"), ("tasks/pose_tasks.py", "core/results.py"),
        ("core/solver.py", "core/denoiser.py"), ("core/prior.py", "core/model.py / official.py"),
        ("core/prior.py", "core/checkpoint.py"), ("core/checkpoint.py", "spec/layout.py"),
        ("serve/requests.py", "spec/layout.py")]


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
    fig, ax = plt.subplots(figsize=(13, 9.0))
    ax.set_xlim(-1.6, 13.0)
    ax.set_ylim(0.6, 10.2)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((-1.45, 3.55), 7.5, 6.25, boxstyle="round,pad=0.05", fc="#eef4fb", ec="#7a9cc6"))
    ax.add_patch(FancyBboxPatch((5.55, 3.55), 7.3, 6.25, boxstyle="round,pad=0.05", fc="#f6f1e7", ec="#c6a87a"))
    ax.add_patch(FancyBboxPatch((-1.45, 1.45), 14.3, 1.7, boxstyle="round,pad=0.05", fc="#eef8ee", ec="#7ac67a"))
    ax.text(-1.3, 9.95, "Blender process: blender_dposer (bpy, NumPy; never torch)", fontsize=10, weight="bold")
    ax.text(5.7, 9.95, "backend process: dposer serve / tasks / core (PyTorch)", fontsize=10, weight="bold")
    ax.text(-1.3, 2.95, "dposer.spec: NumPy only, read by both (the zip carries it in backend/dposer)", fontsize=10,
            weight="bold")
    pos = {}
    for table, colour in ((ADDON, "#ffffff"), (BACKEND, "#ffffff"), (SPEC, "#ffffff")):
        for name, (x, y, note) in table.items():
            box(ax, name, x, y, note, colour)
            pos[name] = (x, y)
    for a, b in USES:
        arrow(ax, pos[a], pos[b], "#999999", style="-|>", lw=0.8)
    for a, b, label, rad, offset in FLOW:
        back = label.startswith(("8", "9"))
        arrow(ax, pos[a], pos[b], "#1e8449" if back else "#c0392b", label, rad, offset, lw=1.6)
    ax.text(-1.3, 1.0, "red: request path of one Complete hands click (1-7); green: the answer back (8-9); grey: imports",
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
