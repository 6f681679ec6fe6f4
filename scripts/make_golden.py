#!/usr/bin/env python3
"""Write the golden outputs that tests/test_golden_outputs.py compares against: every task of the bundled prior
(sample, complete, clip complete, clean, vary, refine, fit) and the BVH converter, on fixed small inputs.

    OMP_NUM_THREADS=1 PYTHONPATH=backend:. python scripts/make_golden.py          # rewrite tests/golden/outputs.npz

Run it only when a task's output is meant to change (and say why in the commit); a refactor must leave the file
untouched, which the test checks.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def take_bvh() -> Path:
    """A 6-frame CMU-named BVH take of known poses (written once, then kept: the converter's fixed input)."""
    path = GOLDEN / "take.bvh"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from bvh_synth import CMU_NAMES, synth_bvh

        rng = np.random.default_rng(3)
        body = rng.normal(0, 0.2, (6, 63))
        orient = rng.normal(0, 0.3, (6, 3))
        trans = rng.normal(0, 0.1, (6, 3)) + [0, 0.9, 0]
        path.write_text(synth_bvh(body, orient, trans, CMU_NAMES))
    return path


def outputs() -> dict[str, np.ndarray]:
    """Every task's arrays, keyed ``<task>/<key>``."""
    import torch

    import dposer

    torch.set_num_threads(1)
    prior = dposer.load_prior()
    out = {}

    def put(task, result):
        for k, v in result.items():
            if isinstance(v, (np.ndarray, np.generic, float, int, str)) and np.asarray(v).dtype != object:
                out[f"{task}/{k}"] = np.asarray(v)

    poses = dposer.sample(prior, 4, seed=1, steps=20)
    put("sample", poses)
    put("complete", dposer.complete(prior, {k: poses[k] for k in ("global_orient", "body_pose", "jaw_pose")},
                                    "right_hand", hypotheses=2, seed=2, combine="best"))
    clip = dposer.sample(prior, 1, seed=3, steps=20)
    frames = {k: np.repeat(v, 8, 0) + np.linspace(0, 0.05, 8, dtype=np.float32)[:, None] for k, v in clip.items()}
    put("clip_complete", dposer.complete(prior, {"body_pose": frames["body_pose"]}, "left_hand,right_hand",
                                         seed=4, clip=True, fps=30.0))
    spiky = {k: np.repeat(v, 40, 0) + np.linspace(0, 0.2, 40, dtype=np.float32)[:, None] for k, v in clip.items()}
    spiky["body_pose"][20, 15:18] += 1.2  # a one-frame spike of spine2
    cleaned = dposer.clean(prior, spiky, strength=0.5, seed=5)
    put("clean", {k: v for k, v in cleaned.items() if k != "repaired"})
    out["clean/repaired"] = np.asarray([f"{r['kind']} {r['joint']} {r['first']} {r['last']}"
                                        for r in cleaned["repaired"]])
    put("vary", dposer.vary(prior, {k: v[:1] for k, v in poses.items()}, 3, strength=0.3, seed=6))
    put("refine", dposer.refine(prior, {k: v[:2] * 1.5 for k, v in poses.items()}, strength=0.3, seed=7))
    put("fit", dposer.fit(prior, {"left_wrist": [0.5, 1.2, 0.1], "head": [0.0, 1.6, 0.05]}, seed=8))
    from dposer.formats.convert import convert_bvh

    put("convert", convert_bvh(take_bvh()))
    return out


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    res = outputs()
    np.savez_compressed(GOLDEN / "outputs.npz", **res)
    print(f"wrote {GOLDEN / 'outputs.npz'}: {len(res)} arrays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
