"""Does a BVH conversion keep the take's joint angles? Anatomical angles from the take's own forward kinematics
against the same angles from the built-in skeleton posed by the conversion. NumPy + SciPy, no torch.

The angles (degrees, per frame), each computed from joint positions alone, so the two skeletons' different rest
poses and joint frames do not enter:

- knee / elbow flexion: the angle between the upper and the lower bone of the limb (0 = straight);
- hip / shoulder angle to the trunk: the angle between the thigh / upper arm and the trunk's downward axis, the
  line from the mid-shoulder point to the mid-hip point (0 = limb hanging along the body).

Run ``python -m dposer.eval.convert_angles PATH [PATH ...]`` (BVH files or folders of them) to print, per take and
per folder given, the mean and max absolute error of each angle and the conversion's per-bone fit error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..formats import bvh as bvh_io
from ..formats import convert
from ..formats.convert_back import world_rotations

ANGLES = ("knee flexion", "elbow flexion", "hip to trunk", "shoulder to trunk")
SIDES = ("left", "right")


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between direction arrays (..., 3)."""
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def anatomical_angles(P: np.ndarray) -> dict[str, np.ndarray]:
    """{'left knee flexion': (F,), ...} in degrees from SMPL-X body joint positions P (F, 22, 3)."""
    J = convert.J
    hips = P[:, [J["left_hip"], J["right_hip"]]].mean(1)
    shoulders = P[:, [J["left_shoulder"], J["right_shoulder"]]].mean(1)
    down = hips - shoulders
    out = {}
    for s in SIDES:
        hip, knee, ankle = (P[:, J[f"{s}_{n}"]] for n in ("hip", "knee", "ankle"))
        sho, elb, wri = (P[:, J[f"{s}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        out[f"{s} knee flexion"] = _angle(knee - hip, ankle - knee)
        out[f"{s} elbow flexion"] = _angle(elb - sho, wri - elb)
        out[f"{s} hip to trunk"] = _angle(knee - hip, down)
        out[f"{s} shoulder to trunk"] = _angle(elb - sho, down)
    return out


def joint_angle_errors(take: bvh_io.Bvh, converted: dict) -> dict[str, np.ndarray]:
    """{angle: (F,) absolute error in degrees} between the take's anatomical angles (its own forward kinematics,
    through the conversion's bone map) and those of the built-in skeleton posed by ``converted`` (a
    :func:`dposer.formats.convert.convert_bvh` result for the take)."""
    bone_map = json.loads(str(converted["bone_map"]))
    mapped, _ = convert.mapped_take(take, bone_map)
    G = world_rotations(converted["global_orient"], converted["body_pose"])
    ref, got = anatomical_angles(mapped.P), anatomical_angles(convert.body_joints(G))
    return {k: np.abs(got[k] - ref[k]) for k in ref}


def summarize(errors: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """{angle kind: (mean, max)} over both sides and all frames."""
    return {a: (float(np.mean([errors[f"{s} {a}"] for s in SIDES])),
                float(np.max([errors[f"{s} {a}"] for s in SIDES]))) for a in ANGLES}


def _takes(path: Path) -> list[Path]:
    return sorted(path.rglob("*.bvh")) if path.is_dir() else [path]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dposer.eval.convert_angles", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="BVH files or folders of them (one source each)")
    ap.add_argument("--quiet", action="store_true", help="print the per-source summary only")
    a = ap.parse_args(argv)
    for src in a.paths:
        per_take, failed = [], []
        for f in _takes(src):
            try:
                take = bvh_io.read(f)
                r = convert.convert_bvh(take)
            except (ValueError, KeyError) as e:
                failed.append(f"{f.name}: {e}")
                continue
            s = summarize(joint_angle_errors(take, r))
            per_take.append(s)
            if not a.quiet:
                print(f"{f.name}: {take.num_frames} frames at {take.fps:.0f} fps, {r['skeleton']}, {r['unit']}; "
                      + "; ".join(f"{k} {m:.2f}/{x:.1f}" for k, (m, x) in s.items())
                      + f"; fit {convert.fit_report(r)}")
        print(f"== {src}: {len(per_take)} read, {len(failed)} failed")
        for msg in failed:
            print(f"   failed {msg}")
        for k in ANGLES if per_take else ():
            means = [s[k][0] for s in per_take]
            print(f"   {k:18s} mean {np.mean(means):.2f} deg, worst take mean {np.max(means):.2f}, "
                  f"max frame {np.max([s[k][1] for s in per_take]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
