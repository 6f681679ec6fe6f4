"""``dposer bench fill``: gap filling on held-out takes against the free answers and DPoser.

    dposer bench fill --write docs/benchmarks.md

Takes (never trained on): converted Bandai Namco dataset 1 (every ``--every``-th take, sorted by name; 30 fps),
and from other studios at their own rates: the AMASS take ``amass_sample_smplh_500f`` (120 fps), CMU 131_03 hop
(120 fps) and the held-out cgspeed CMU takes that convert. Gaps of 0.25 / 0.5 / 1 / 2 s over the whole body
(root + 21 joints), the left leg and the right arm, at every position where the gap has at least 0.5 s of motion
on each side (positions 1 s apart). Methods: SLERP across the gap, the cubic rotation spline, DPoser per-frame
completion (the bundled pose prior; every 8th Bandai take; the root, which it does not model, by SLERP), the motion
prior's raw answer, the probes' pick of SLERP or the spline without a prior (``dposer fill`` with no checkpoint),
and ``dposer fill`` (the prior where its probes beat the spline, else the spline).

Metrics over the filled cells: mean geodesic degrees; mean joint position error (mm) of the 22 body joints on the
gap's frames (built-in skeleton, root-relative: no translation); LAFAN1-style L2Q (L2 norm of the 22 global
quaternions per frame, signs aligned) and L2P (L2 norm of the 66 global joint coordinates per frame, each z-scored
with the motion corpus' training statistics; root-relative, so not the papers' exact protocol).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..core import kinematics
from ..formats import data
from ..spec import layout
from ..spec.skeleton import REST_OFFSETS
from ..formats.convert_back import world_rotations
from . import corpus, interp, matching
from .filling import fill, geodesic_deg
from .masks import part_joints

GAPS_S = (0.25, 0.5, 1.0, 2.0)
PARTS = ("body", "left_leg", "right_arm")
CONTEXT_S = 0.5
METHODS = ("slerp", "spline", "match_raw", "free_pick", "dposer", "prior_raw", "fill")
DPOSER_EVERY = 8  # DPoser (slow: a solve per gap) on every 8th Bandai take
MAX_POSITIONS = 3  # gap positions per take and condition, spread over the take


def held_out_takes(root=None, every: int = 6) -> list[tuple[str, str, np.ndarray, float]]:
    """[(group, name, (F, 22, 3) float64, fps)] of the bench's takes."""
    from ..formats.convert import convert_bvh

    out = []
    with np.load(corpus.bandai.default_path(1)) as d:
        body, orient, clip, names = d["body_pose"], d["global_orient"], d["clip"], d["names"]
    for i in range(0, len(names), every):
        rows = clip == i
        out.append(("Bandai dataset 1", str(names[i]), corpus.stack(orient[rows], body[rows]).astype(np.float64), 30.0))
    ps = data.load_pose_file(data.data_root(root) / "amass" / "amass_sample_smplh_500f.npz")
    out.append(("other studios", "AMASS amass_sample_smplh_500f",
                corpus.stack(ps.extras["global_orient"], ps.vectors[:, layout.KEY_SLICES["body_pose"]]).astype(np.float64),
                float(ps.extras.get("framerate", 120.0))))
    r = convert_bvh(data.data_root(root) / "bvh" / "other_studios" / "cmu_131_03_hop.bvh")
    out.append(("other studios", "CMU 131_03 hop", corpus.stack(r["global_orient"], r["body_pose"]).astype(np.float64),
                float(r["mocap_framerate"])))
    for name, rot, split in corpus._bvh_takes(data.data_root(root), lambda s: None):
        if split == "test" and "cgspeed" in name:
            out.append(("other studios", f"CMU {name.split('/')[-1]}", rot.astype(np.float64), corpus.RATE))
    return out


def positions(n: int, fps: float, gap: int) -> list[int]:
    """First frames of the gaps placed in a take of n frames (CONTEXT_S on each side, 1 s apart)."""
    ctx = int(round(CONTEXT_S * fps))
    lo, hi = ctx, n - ctx - gap
    if hi < lo:
        return []
    step = max(int(round(fps)), 1)
    pos = list(range(lo + ((hi - lo) % step) // 2, hi + 1, step))
    return [pos[i] for i in np.unique(np.linspace(0, len(pos) - 1, MAX_POSITIONS).round().astype(int))] if pos else []


class Metrics:
    """Position / quaternion metrics against one take's truth."""

    def __init__(self, truth: np.ndarray, l2p_mean, l2p_std):
        self.truth = truth
        self.pos = self._pos(truth)
        self.quat = self._quat(truth)
        self.mu, self.sd = l2p_mean, l2p_std

    @staticmethod
    def _pos(rot):
        full = torch.zeros(len(rot), 55, 3, dtype=torch.float64)
        full[:, :22] = torch.as_tensor(rot)
        return kinematics.forward_kinematics(full, REST_OFFSETS.astype(np.float64)).numpy()[:, :22]

    @staticmethod
    def _quat(rot):
        G = world_rotations(rot[:, 0], rot[:, 1:].reshape(len(rot), 63))
        return Rotation.from_matrix(G.reshape(-1, 3, 3)).as_quat().reshape(len(rot), 22, 4)

    def __call__(self, est: np.ndarray, mask: np.ndarray) -> dict:
        frames = np.flatnonzero(mask.any(1))
        pos = self._pos(est[frames])
        q = self._quat(est[frames])
        qt = self.quat[frames]
        q = np.where((q * qt).sum(-1, keepdims=True) < 0, -q, q)
        pt = self.pos[frames]
        # the pop at the gap's edges: the step into and out of it over the take's own step there (degrees, the
        # largest over the filled joints; 0 = as smooth as the take)
        joints = mask.any(0)
        edges = [e for e in (frames[0] - 1, frames[-1]) if 0 <= e < len(est) - 1]
        pop = max((float((geodesic_deg(est[e + 1, joints], est[e, joints])
                          - geodesic_deg(self.truth[e + 1, joints], self.truth[e, joints])).max()) for e in edges),
                  default=float("nan"))
        return {"deg": float(geodesic_deg(est[mask], self.truth[mask]).mean()), "pop": pop,
                "mm": float(np.linalg.norm(pos - pt, axis=-1).mean() * 1000),
                "l2q": float(np.linalg.norm((q - qt).reshape(len(frames), -1), axis=1).mean()),
                "l2p": float(np.linalg.norm(((pos - pt) / self.sd).reshape(len(frames), -1), axis=1).mean())}


def l2p_statistics() -> tuple[np.ndarray, np.ndarray]:
    """Std of the root-relative global joint positions over the training takes (every 10th frame)."""
    rot = np.concatenate([r[::10] for _, r in corpus.load("train")]).astype(np.float64)
    pos = Metrics._pos(rot)
    return pos.mean(0), np.maximum(pos.std(0), 1e-3)


def dposer_fill(pose_prior, rot: np.ndarray, mask: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame DPoser completion of the gap's body joints (the root by SLERP)."""
    from ..tasks import pose_tasks as tasks

    out = interp.fill(rot, mask, fps, "slerp")
    frames = np.flatnonzero(mask.any(1))
    joints = np.flatnonzero(mask.any(0))
    names = [layout.JOINT_NAMES[j] for j in joints if j > 0]
    if not names:
        return out
    pose = {"global_orient": out[frames, 0].astype(np.float32),
            "body_pose": rot[frames, 1:].reshape(len(frames), 63).astype(np.float32)}
    res = tasks.complete(pose_prior, pose, names, seed=0)
    body = np.asarray(res["body_pose"], np.float64).reshape(len(frames), 21, 3)
    sel = mask[frames][:, 1:]
    block = out[frames]
    block[:, 1:][sel] = body[sel]
    out[frames] = block
    return out


def evaluate(prior, takes, pose_prior=None, log=print) -> dict:
    """{(group, part, gap_s): {method: {metric: mean}}, plus 'n' and 'prior_used'}."""
    mu, sd = l2p_statistics()
    acc: dict = {}
    for ti, (group, name, rot, fps) in enumerate(takes):
        m = Metrics(rot, mu, sd)
        t0 = time.time()
        for gap_s in GAPS_S:
            g = max(1, int(round(gap_s * fps)))
            for a in positions(len(rot), fps, g):
                for part in PARTS:
                    mask = np.zeros(rot.shape[:2], bool)
                    mask[a:a + g] = part_joints(part).numpy()
                    est = {k: interp.fill(rot, mask, fps, k) for k in ("slerp", "spline")}
                    m_raw = matching.fill_gap(rot, mask, a, a + g - 1, fps)
                    if m_raw is not None:
                        est["match_raw"] = rot.copy()
                        est["match_raw"][a:a + g] = m_raw
                    est["free_pick"], rec = fill(rot, mask, fps, None)
                    est["fill"] = est["free_pick"]
                    if prior is not None:
                        est["prior_raw"], _ = fill(rot, mask, fps, prior, check=False)
                        est["fill"], rec = fill(rot, mask, fps, prior)
                    if pose_prior is not None and ti % DPOSER_EVERY == 0 and group != "other studios":
                        est["dposer"] = dposer_fill(pose_prior, rot, mask, fps)
                    cell = acc.setdefault((group, part, gap_s), {"n": 0, "prior_used": 0, "match_used": 0})
                    cell["n"] += 1
                    cell["prior_used"] += rec[0]["method"] == "prior"
                    cell["match_used"] += rec[0]["method"].startswith("match")
                    for k, e in est.items():
                        for mk, v in m(e, mask).items():
                            cell.setdefault(k, {}).setdefault(mk, []).append(v)
        log(f"{ti + 1}/{len(takes)} {name}: {time.time() - t0:.1f} s")
    return acc


def speed(prior, takes) -> str:
    """Seconds to fill a 1 s whole-body gap in the middle of a 1000-frame take (the longest held-out one)."""
    group, name, rot, fps = max(takes, key=lambda t: len(t[2]))
    rot = rot[:1000]
    g = int(round(fps))
    mask = np.zeros(rot.shape[:2], bool)
    a = len(rot) // 2 - g // 2
    mask[a:a + g] = True
    fill(rot, mask, fps, prior)  # warm up
    t = time.perf_counter()
    fill(rot, mask, fps, prior)
    secs = time.perf_counter() - t
    mask3 = np.zeros_like(mask)
    for c in (200, 500, 800):
        mask3[c:c + g] = True
    t = time.perf_counter()
    fill(rot, mask3, fps, prior)
    secs3 = time.perf_counter() - t
    return (f"1000-frame take ({name}, {fps:g} fps): one 1 s whole-body gap filled in {secs:.2f} s, three in "
            f"{secs3:.2f} s (torch {torch.get_num_threads()} thread(s), probes included)")


def table(acc: dict) -> str:
    def mean(cell, k, mk):
        return float(np.mean(cell[k][mk])) if k in cell else float("nan")

    lines = ["| takes | part | gap | n | SLERP deg | spline deg | take match raw deg | probe pick, no prior | "
             "DPoser deg | prior raw deg | **fill deg** | fill / better free | prior used | take match used | "
             "fill mm (free) | fill L2Q (free) | fill L2P (free) | edge pop deg, fill (free) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (group, part, gap_s), cell in sorted(acc.items(), key=lambda kv: (kv[0][0], PARTS.index(kv[0][1]), kv[0][2])):
        free = min(("slerp", "spline"), key=lambda k: mean(cell, k, "deg"))
        f = "fill"
        d = {k: mean(cell, k, "deg") for k in METHODS}
        ratio = d[f] / d[free]
        lines.append(
            f"| {group} | {part} | {gap_s:g} s | {cell['n']} | {d['slerp']:.2f} | {d['spline']:.2f} | "
            f"{d['match_raw']:.2f} | {d['free_pick']:.2f} | {d['dposer']:.2f} | {d['prior_raw']:.2f} | "
            f"**{d[f]:.2f}** | {ratio:.2f} | {cell['prior_used']}/{cell['n']} | {cell['match_used']}/{cell['n']} | "
            f"{mean(cell, f, 'mm'):.1f} ({mean(cell, free, 'mm'):.1f}) | "
            f"{mean(cell, f, 'l2q'):.3f} ({mean(cell, free, 'l2q'):.3f}) | "
            f"{mean(cell, f, 'l2p'):.3f} ({mean(cell, free, 'l2p'):.3f}) | "
            f"{mean(cell, f, 'pop'):.2f} ({mean(cell, free, 'pop'):.2f}) |")
    return "\n".join(lines)


def run(checkpoint=None, write=None, data=None, every: int = 6, log=print) -> str:
    from ..core.prior import load_prior
    from .checkpoint import DEFAULT
    from .prior import load_motion_prior

    prior = load_motion_prior(checkpoint) if (checkpoint or DEFAULT.is_file()) else None
    takes = held_out_takes(data, every)
    t0 = time.time()
    acc = evaluate(prior, takes, load_prior(None), log=log)
    none = " (none: fill = the probes' pick of SLERP, the spline and the take match)"
    body = (f"Motion prior: `{checkpoint or DEFAULT}`" + ("" if prior else none) + "\n\n"
            f"Takes: {sum(t[0] != 'other studios' for t in takes)} Bandai dataset-1 takes (every {every}th), "
            f"other studios: {', '.join(t[1] for t in takes if t[0] == 'other studios')}. "
            "n = gaps (positions x takes); *free* = the better of SLERP and the spline for that row, in degrees; "
            "DPoser on every 8th Bandai take only.\n\n" + table(acc))
    body += "\n\nSpeed: " + speed(prior, takes)
    body += f"\n\n*({time.time() - t0:.0f} s)*"
    print(body)
    if write:
        import shlex
        import sys

        from ..eval.bench import write_section

        write_section(write, "fill", body, "dposer " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    return body


def sampler_validation(prior, steps=(1, 3, 10, 20), every: int = 4, log=print) -> str:
    """The sampler's setting chosen on the validation takes (Bandai dataset 2's held-out 5%, never the bench's):
    mean geodesic degrees of the prior's raw fill (no probes) for centred 0.5 / 1 s gaps over the body, the left
    leg and the right arm, per number of DDIM steps, against SLERP."""
    takes = corpus.load("val")[::every]
    rows = {}
    for name, rot in takes:
        rot = rot.astype(np.float64)
        for gap_s in (0.5, 1.0):
            g = int(round(gap_s * corpus.RATE))
            if len(rot) < g + 2 * int(CONTEXT_S * corpus.RATE):
                continue
            a = (len(rot) - g) // 2
            for part in PARTS:
                mask = np.zeros(rot.shape[:2], bool)
                mask[a:a + g] = part_joints(part).numpy()
                r = rows.setdefault((part, gap_s), {})
                r.setdefault("slerp", []).append(geodesic_deg(interp.fill(rot, mask, corpus.RATE, "slerp")[mask],
                                                              rot[mask]).mean())
                for s in steps:
                    est, _ = fill(rot, mask, corpus.RATE, prior, steps=s, check=False)
                    r.setdefault(s, []).append(geodesic_deg(est[mask], rot[mask]).mean())
    lines = ["| part | gap | n | SLERP | " + " | ".join(f"{s} steps" for s in steps) + " |",
             "|---|---|---|---|" + "---|" * len(steps)]
    for (part, gap_s), r in rows.items():
        lines.append(f"| {part} | {gap_s:g} s | {len(r['slerp'])} | {np.mean(r['slerp']):.2f} | "
                     + " | ".join(f"{np.mean(r[s]):.2f}" for s in steps) + " |")
    out = "\n".join(lines)
    log(out)
    return out
