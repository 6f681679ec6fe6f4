"""``dposer bench clip``: hand completion over a take, against the answers a user has without us.

Takes: the AMASS finger take (601 frames at 120 fps, real finger motion; measured here, never fitted or tuned on,
except the one coherence knob documented in :mod:`dposer.tasks.temporal`) solved as a clip, and the EgoBody test split
(per frame). Tasks: both hands given the body; each hand given the body and the other hand.
Trivial answers: the constant mean hand of the hand training set, the mirrored other hand (where it is observed),
nearest neighbour and a ridge-regularised Gaussian conditional, both fitted on the EgoBody training split with its
mirror images (the only data where body and hands were captured together).
Metrics: mean geodesic error of the filled finger joints (degrees) with a paired block-bootstrap interval against
the best trivial answer, and the ratio of the completed to the real frame-to-frame finger motion.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from ..core.torch_rotations import geodesic_degrees
from ..core.solver import SolverConfig
from ..tasks.pose_tasks import COMPLETE, complete

TASKS = (("both hands | body", "left_hand,right_hand", ()),
         ("right hand | body + left hand", "right_hand", ("left_hand",)),
         ("left hand | body + right hand", "left_hand", ("right_hand",)))
HAND_SIDES = ("left_hand", "right_hand")
RIDGES = (0.01, 0.1, 1.0)  # ridge of the Gaussian conditional, times the mean variance; picked on EgoBody val


def _per_frame_deg(pred: np.ndarray, truth: np.ndarray, missing: str) -> np.ndarray:
    dims = layout.names_to_dims(missing)
    p = torch.from_numpy(pred[:, dims].reshape(len(pred), -1, 3)).double()
    t = torch.from_numpy(truth[:, dims].reshape(len(truth), -1, 3)).double()
    return geodesic_degrees(p, t).mean(1).numpy()


def finger_motion(vectors: np.ndarray, missing: str) -> float:
    """Mean frame-to-frame rotation change (degrees) of the named joints."""
    dims = layout.names_to_dims(missing)
    v = torch.from_numpy(vectors[:, dims].reshape(len(vectors), -1, 3)).double()
    return float(geodesic_degrees(v[1:], v[:-1]).mean())


def block_bootstrap(x: np.ndarray, block: int, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of a time series by the moving-block bootstrap (frames of a take are correlated;
    ``block`` = 1 draws frames independently)."""
    x = np.asarray(x, np.float64)
    block = max(1, min(block, len(x)))
    starts = np.random.default_rng(seed).integers(0, len(x) - block + 1, (n, -(-len(x) // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n, -1)[:, :len(x)]
    m = x[idx].mean(1)
    return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


class Trivial:
    """The answers without a learned prior, fitted on the hand training set and EgoBody's training split."""

    def __init__(self, root=None):
        hands = data.load_part_set("hand", "train", root).vectors[:, layout.PART_SLICES["right_hand"]]
        self.mean_right = hands.mean(0)
        wb = data.load_wholebody_set("train", root).vectors
        self.pool = np.concatenate([wb, layout.mirror_pose(wb)]).astype(np.float64)
        val = data.load_wholebody_set("val", root).vectors.astype(np.float64)
        self.ridge = {}
        for _, missing, _ in TASKS:  # the ridge with the lowest validation error, per task
            errs = {r: _per_frame_deg(self._gauss(val, missing, r), val, missing).mean() for r in RIDGES}
            self.ridge[missing] = min(errs, key=errs.get)

    def mean(self, v: np.ndarray, missing: str) -> np.ndarray:
        out = v.copy()
        if "right_hand" in missing:
            out[:, layout.PART_SLICES["right_hand"]] = self.mean_right
        if "left_hand" in missing:
            out[:, layout.PART_SLICES["left_hand"]] = layout.mirror_hand(self.mean_right)
        return out

    @staticmethod
    def mirror(v: np.ndarray, missing: str) -> np.ndarray:
        out = v.copy()
        side = layout.PART_SLICES[missing]
        other = layout.PART_SLICES["left_hand" if missing == "right_hand" else "right_hand"]
        out[:, side] = layout.mirror_hand(v[:, other])
        return out

    def _split(self, missing: str):
        m = layout.names_to_dims(missing)
        o = np.setdiff1d(np.arange(layout.PART_SLICES["right_hand"].stop), m)  # body and any observed hand
        return o, m

    def nearest(self, v: np.ndarray, missing: str) -> np.ndarray:
        o, m = self._split(missing)
        idx = torch.cdist(torch.from_numpy(v[:, o].astype(np.float64)), torch.from_numpy(self.pool[:, o])).argmin(1)
        out = v.copy()
        out[:, m] = self.pool[idx.numpy()][:, m]
        return out

    def _gauss(self, v: np.ndarray, missing: str, ridge: float) -> np.ndarray:
        o, m = self._split(missing)
        mu = self.pool.mean(0)
        s = np.cov(self.pool.T)
        soo = s[np.ix_(o, o)] + ridge * np.trace(s[np.ix_(o, o)]) / len(o) * np.eye(len(o))
        coef = np.linalg.solve(soo, s[np.ix_(o, m)])  # (O, M)
        out = v.copy()
        out[:, m] = mu[m] + (v[:, o] - mu[o]) @ coef
        return out

    def gauss(self, v: np.ndarray, missing: str) -> np.ndarray:
        return self._gauss(v, missing, self.ridge[missing])


def _ours(prior, v: np.ndarray, missing: str, k: int, clip: bool, fps: float | None, cfg: SolverConfig,
          combine: str = "mean") -> np.ndarray:
    pose = {key: x for key, x in layout.vectors_to_dict(v).items() if key in layout.KEY_SLICES}
    res = complete(prior, pose, missing, hypotheses=k, seed=0, cfg=cfg, clip=clip, fps=fps, combine=combine)
    return layout.dict_to_vectors(res, base=v)


def clip_rows(prior, root=None, quick: bool = False, bootstrap: int = 1000) -> tuple[list[dict], dict]:
    """Every (take, task, method) row; plus the finger take's per-frame series for the plot."""
    cfg = COMPLETE.with_(steps=12) if quick else COMPLETE
    k = 2 if quick else 5
    trivial = Trivial(root)
    take = data.load_finger_take(root)
    fps = float(take.extras.get("framerate", 120.0))
    if quick:
        take = take.subset(np.arange(24))
    ego = data.load_wholebody_set("test", root)
    if quick:
        ego = ego.subset(np.arange(8))
    rows, series = [], {}
    for take_name, v, clip, block in (("AMASS finger take (clip)", take.vectors.astype(np.float64), True, int(fps)),
                                      ("EgoBody test (per frame)", ego.vectors.astype(np.float64), False, 1)):
        for task, missing, observed_hand in TASKS:
            answers = {"constant mean hand": trivial.mean(v, missing)}
            if observed_hand:
                answers["mirrored other hand"] = trivial.mirror(v, missing)
            answers["nearest neighbour (EgoBody)"] = trivial.nearest(v, missing)
            answers[f"Gaussian conditional, ridge {trivial.ridge[missing]:g} (EgoBody)"] = trivial.gauss(v, missing)
            trivial_names = list(answers)
            t0 = time.perf_counter()
            if clip:
                answers[f"**ours: clip, mean of {k} (default)**"] = _ours(prior, v, missing, k, True, fps, cfg)
                answers["ours: clip, 1 hypothesis"] = _ours(prior, v, missing, 1, True, fps, cfg)
                answers["ours: frame by frame, 1 hypothesis (before)"] = _ours(prior, v, missing, 1, False, None, cfg)
            else:
                answers[f"**ours: mean of {k} (default)**"] = _ours(prior, v, missing, k, False, None, cfg)
                answers["ours: 1 hypothesis"] = _ours(prior, v, missing, 1, False, None, cfg)
            secs = time.perf_counter() - t0
            errs = {name: _per_frame_deg(a, v, missing) for name, a in answers.items()}
            best = min(trivial_names, key=lambda n: errs[n].mean())
            real = finger_motion(v, missing) if clip else None
            for name, e in errs.items():
                d = e - errs[best]
                lo, hi = block_bootstrap(d, block, bootstrap)
                rows.append({"take": take_name, "task": task, "method": name, "deg": float(e.mean()),
                             "vs_best": "" if name == best else f"{d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]",
                             "best_trivial": name == best,
                             "motion": None if real is None else finger_motion(answers[name], missing) / real})
            if clip:
                series[missing] = {"answers": answers, "truth": v, "fps": fps, "secs": secs}
    return rows, series


def table(rows: list[dict]) -> str:
    lines = []
    for take in dict.fromkeys(r["take"] for r in rows):
        clip = "clip" in take
        lines += [f"\n**{take}**\n", "| task | answer | error (deg) | minus the best trivial answer [95% CI] |"
                  + (" completed / real finger motion |" if clip else ""),
                  "|---|---|---|---|" + ("---|" if clip else "")]
        for r in (r for r in rows if r["take"] == take):
            best = " (best trivial)" if r["best_trivial"] else ""
            motion = f" {r['motion']:.2f} |" if clip else ""
            lines.append(f"| {r['task']} | {r['method']}{best} | {r['deg']:.2f} | {r['vs_best']} |{motion}")
    return "\n".join(lines)


def plot(series: dict, path, joint: str = "right_index2", seconds: float | None = None) -> None:
    """One finger joint's rotation angle over the take: the real one, frame by frame (before), the clip answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series["right_hand"]
    sl = layout.joint_vector_slice(joint)
    t = np.arange(len(s["truth"])) / s["fps"]
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    styles = {"real": ("black", 2.0), "before": ("tab:red", 0.8), "clip": ("tab:blue", 2.0)}
    for label, v, key in (("real right hand (hidden from the solver)", s["truth"], "real"),
                          ("frame by frame (before)", s["answers"]["ours: frame by frame, 1 hypothesis (before)"], "before"),
                          ("clip completion (now)", next(a for n, a in s["answers"].items() if "default" in n), "clip")):
        c, w = styles[key]
        ax.plot(t, np.degrees(np.linalg.norm(v[:, sl], axis=1)), color=c, lw=w, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{joint} angle (deg)")
    ax.set_title("Complete right hand given body + left hand, AMASS finger take (120 fps)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def predictability(root=None) -> str:
    """What the finger take's observed joints say about the hidden hand's motion: the correlation of each hand's
    deviations from its mean over the take with the mirrored other hand's (per dim, averaged), and how much the
    body moves compared with the fingers."""
    v = data.load_finger_take(root).vectors.astype(np.float64)
    left = layout.mirror_hand(v[:, layout.PART_SLICES["left_hand"]])
    right = v[:, layout.PART_SLICES["right_hand"]]
    dl, dr = left - left.mean(0), right - right.mean(0)
    corr = np.nanmean([np.corrcoef(dl[:, i], dr[:, i])[0, 1] for i in range(dl.shape[1])])
    body = v[:, layout.PART_SLICES["body"]]
    text = (f"finger take: correlation of the right hand's motion with the mirrored left hand's r = {corr:.2f}; "
            f"per-dim std over the take: body {np.degrees(body.std(0).mean()):.1f} deg, left fingers "
            f"{np.degrees(left.std(0).mean()):.1f} deg, right fingers {np.degrees(right.std(0).mean()):.1f} deg")
    return text + "; " + "; ".join(_in_take_bounds(v, missing) for missing in HAND_SIDES)


def _in_take_bounds(v: np.ndarray, missing: str, fps: int = 120, ridge: float = 0.1) -> str:
    """Oracles that see the take itself (leave-one-second-out): the hidden hand's own mean over the other seconds,
    and a ridge regression from body + other hand fitted on them. Not answers a user has; they split the error of
    any answer fitted elsewhere into the take's static hand shape and its motion."""
    other = HAND_SIDES[1 - HAND_SIDES.index(missing)]
    m = np.arange(layout.PART_SLICES[missing].start, layout.PART_SLICES[missing].stop)
    o = np.r_[np.arange(layout.PART_SLICES["body"].stop), np.arange(layout.PART_SLICES[other].start,
                                                                      layout.PART_SLICES[other].stop)]
    block = np.arange(len(v)) // fps
    const, reg = v.copy(), v.copy()
    for b in np.unique(block):
        te, tr = block == b, block != b
        x, y = v[tr][:, o], v[tr][:, m]
        mx, my = x.mean(0), y.mean(0)
        c = (x - mx).T @ (x - mx) / len(x)
        w = np.linalg.solve(c + ridge * np.trace(c) / len(c) * np.eye(len(c)), (x - mx).T @ (y - my) / len(x))
        const[np.ix_(te, m)] = my
        reg[np.ix_(te, m)] = my + (v[te][:, o] - mx) @ w
    return (f"{missing.replace('_', ' ')} from the take itself (leave-one-second-out): its own mean shape "
            f"{_per_frame_deg(const, v, missing).mean():.1f} deg, ridge from body + other hand "
            f"{_per_frame_deg(reg, v, missing).mean():.1f} deg")


def bench_clip(ctx) -> str:
    rows, series = clip_rows(ctx.prior, ctx.root, ctx.quick, ctx.sizes.bootstrap)
    body = table(rows) + "\n\n" + predictability(ctx.root) + "."
    if ctx.images is not None and not ctx.quick:
        path = ctx.images / "clip_complete_finger.png"
        plot(series, path)
        body += f"\n\n![finger angle over the take](images/{path.name})"
    return body
