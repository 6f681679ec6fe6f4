"""Experiment (issue 13): align the converted Bandai corpus to AMASS joint by joint before training on it.

    python scripts/align_corpus.py [--out ~/.cache/dposer-aligned]
    OMP_NUM_THREADS=2 dposer train --config ~/.cache/dposer-aligned/v2_aligned.json \
        --init backend/dposer/weights/default.safetensors --out ~/.cache/dposer/runs/v2c --seed 0

The converter's joints sit differently from SMPL-X's (docs/training.md), so converted poses carry per-joint offsets.
This fits, for each of the 21 body joints, the rotation D_j that takes the chordal mean of dataset-2's local
rotations (every 4th frame) to the mean of the AMASS training split's, and writes both Bandai caches with every
local rotation replaced by D_j R_j (dataset-1 gets dataset-2's D: it is never looked at), plus a copy of
configs/v2.json that trains on the aligned dataset-2. Result (docs/model_card.md): the AMASS validation body loss
gets worse (0.2318 against v2's 0.2284 and v1's 0.2198), so the alignment is not part of the corpus.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dposer.train import corpus
from dposer.formats import data
from dposer.spec import layout


def _mats(body: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(body.reshape(-1, 3)).as_matrix().reshape(len(body), 21, 3, 3)


def _mean(m: np.ndarray) -> np.ndarray:
    """Chordal mean of rotation matrices (N, 3, 3)."""
    u, _, vt = np.linalg.svd(m.mean(0))
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    return u @ d @ vt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(corpus.cache_dir().with_name(corpus.cache_dir().name + "-aligned")))
    out = Path(os.path.expanduser(ap.parse_args().out))
    out.mkdir(parents=True, exist_ok=True)
    bandai = _mats(np.load(corpus.default_path(2))["body_pose"][::4])
    amass = _mats(data.load_part_set("body", "train").vectors[:, layout.PART_SLICES["body"]])
    D = np.stack([_mean(amass[:, j]) @ _mean(bandai[:, j]).T for j in range(21)])
    print("offsets (deg):", np.degrees(np.linalg.norm(Rotation.from_matrix(D).as_rotvec(), axis=1)).round(1))
    for k in (1, 2):
        d = dict(np.load(corpus.default_path(k)))
        m = D[None] @ _mats(d["body_pose"])
        d["body_pose"] = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_rotvec().reshape(len(m), 63).astype(np.float32)
        np.savez(out / f"bandai{k}.npz", **d)
    cfg = json.loads((Path(__file__).resolve().parents[1] / "backend/dposer/configs/v2.json").read_text())
    cfg["bvh_body"] = str(out / "bandai2.npz")
    (out / "v2_aligned.json").write_text(json.dumps(cfg, indent=1))
    print(f"wrote {out}/bandai1.npz, bandai2.npz, v2_aligned.json")


if __name__ == "__main__":
    main()
