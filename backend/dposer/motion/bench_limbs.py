"""A limb missing from a whole take (legs not captured, an arm lost): the motion prior against the free answers and
per-frame DPoser clip completion, on held-out takes.

    python -m dposer.motion.bench_limbs --motion-checkpoint RUN/motion.safetensors [--every 12] [--write docs/benchmarks.md]

Methods for the limb's joints over the whole take: the mirrored other limb (a free answer), the corpus' mean pose
of the limb held still (a free answer), DPoser clip completion (``dposer complete --clip``: the pose prior solved
over the take, low-passed in time), and the motion prior (:meth:`MotionPrior.sample_like` at strength 1 with every
other joint locked: one sample, and the mean of four). Metrics: mean geodesic degrees of the limb's joints, mean
position error (mm) of its joints relative to the pelvis (built-in skeleton), and the limb's speed over the real
limb's (mean angular speed of its joints; 1 = as lively as the take).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial.transform import Rotation

from ..spec import layout
from . import corpus
from .bench import Metrics, held_out_takes, l2p_statistics
from .filling import geodesic_deg
from .masks import part_joints
from .train import _mirror

LIMBS = ("left_leg", "right_arm")
MAX_FRAMES = 300  # each take is cut to its first 10 s at 30 fps (DPoser clip completion is slow on the CPU)


def mirrored(rot: np.ndarray, joints: np.ndarray) -> np.ndarray:
    out = rot.copy()
    out[:, joints] = _mirror(rot.astype(np.float32)).astype(np.float64)[:, joints]
    return out


def mean_pose(joints: np.ndarray) -> np.ndarray:
    """(22, 3): the mean rotation of each joint over the corpus' training takes (every 10th frame)."""
    rot = np.concatenate([r[::10] for _, r in corpus.load("train")]).astype(np.float64)
    return np.stack([Rotation.from_rotvec(rot[:, j]).mean().as_rotvec() for j in range(22)])


def speed(rot: np.ndarray, joints: np.ndarray, fps: float) -> float:
    return float(geodesic_deg(rot[1:, joints], rot[:-1, joints]).mean() * fps)


def dposer_clip(pose_prior, rot: np.ndarray, limb: str, fps: float) -> np.ndarray:
    from ..tasks import pose_tasks

    pose = {"global_orient": rot[:, 0].astype(np.float32),
            "body_pose": rot[:, 1:].reshape(len(rot), 63).astype(np.float32)}
    res = pose_tasks.complete(pose_prior, pose, limb, clip=True, fps=fps, seed=0)
    out = rot.copy()
    out[:, 1:] = np.asarray(res["body_pose"], np.float64).reshape(len(rot), 21, 3)
    return out


def tuning_takes(every: int = 6) -> list[tuple[str, str, np.ndarray, float]]:
    """Takes to choose a method on (never the held-out ones): Bandai dataset 2's validation takes and the cgspeed CMU
    training takes, every ``every``-th, from the motion corpus (30 fps)."""
    val = [("Bandai dataset 2 validation", n, r.astype(np.float64), corpus.RATE) for n, r in corpus.load("val")]
    cg = [("cgspeed training", n, r.astype(np.float64), corpus.RATE) for n, r in corpus.load("train") if "cgspeed" in n]
    return val[::every] + cg[::every]


def run(checkpoint, every: int = 12, write=None, log=print, tuning: bool = False) -> str:
    from ..core.prior import load_prior
    from .prior import load_motion_prior

    mprior = load_motion_prior(checkpoint)
    pose_prior = load_prior(None)
    takes = tuning_takes(every) if tuning else held_out_takes(None, every)
    mu, sd = l2p_statistics()
    means = mean_pose(np.ones(22, bool))
    acc: dict = {}
    t0 = time.time()
    for group, name, rot, fps in takes:
        step = max(1, int(round(fps / corpus.RATE)))  # the take at about 30 fps
        rot = rot[::step][:MAX_FRAMES]
        fps = fps / step
        m = Metrics(rot, mu, sd)
        for limb in LIMBS:
            joints = part_joints(limb).numpy()
            mask = np.zeros(rot.shape[:2], bool)
            mask[:, joints] = True
            est = {"mirrored limb": mirrored(rot, joints)}
            est["mean pose"] = rot.copy()
            est["mean pose"][:, joints] = means[joints]
            est["DPoser clip"] = dposer_clip(pose_prior, rot, limb, fps)
            samples = [mprior.sample_like(rot, fps, strength=1.0, seed=s, lock=~mask) for s in range(4)]
            est["motion prior, 1 sample"] = samples[0]
            q = np.stack([Rotation.from_rotvec(x.reshape(-1, 3)).as_quat() for x in samples])
            q = np.where((q * q[:1]).sum(-1, keepdims=True) < 0, -q, q).mean(0)
            est["motion prior, mean of 4"] = Rotation.from_quat(q / np.linalg.norm(q, axis=-1, keepdims=True)).as_rotvec().reshape(rot.shape)
            real = speed(rot, joints, fps)
            cell = acc.setdefault((group, limb), {})
            for k, e in est.items():
                r = m(e, mask)
                cell.setdefault(k, []).append((r["deg"], r["mm"], speed(e, joints, fps) / max(real, 1e-6)))
        log(f"{name}: {time.time() - t0:.0f} s")
    lines = ["| takes | limb | n | " + " | ".join(f"{k} deg / mm / speed" for k in est) + " |",
             "|---|---|---|" + "---|" * len(est)]
    for (group, limb), cell in sorted(acc.items()):
        vals = {k: np.mean(v, 0) for k, v in cell.items()}
        lines.append(f"| {group} | {limb} | {len(cell['mean pose'])} | " + " | ".join(
            f"{d:.2f} / {mm:.0f} / {s:.2f}" for d, mm, s in vals.values()) + " |")
    which = (f"tuning takes (every {every}th Bandai dataset-2 validation and cgspeed training take)" if tuning else
             f"held-out takes as in the fill bench (every {every}th Bandai dataset-1 take, the other studios')")
    body = (f"Motion prior `{checkpoint}`; {which}, each at about 30 fps, first {MAX_FRAMES} frames; the limb "
            "missing on every frame.\n\n" + "\n".join(lines) + f"\n\n*({time.time() - t0:.0f} s)*")
    print(body)
    if write:
        import shlex
        import sys

        from ..eval.bench import write_section

        write_section(write, "limbs", body, "python -m dposer.motion.bench_limbs "
                      + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    return body


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--motion-checkpoint", required=True)
    p.add_argument("--every", type=int, default=12)
    p.add_argument("--write", default=None)
    p.add_argument("--tuning", action="store_true", help="the tuning takes (Bandai-2 validation, cgspeed training)")
    a = p.parse_args()
    run(a.motion_checkpoint, a.every, a.write, tuning=a.tuning)
