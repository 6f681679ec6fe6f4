"""Fitting the hands-over-a-take model (:mod:`dposer.tasks.hands`) from the shared data; writes ``hands_model.json``.

What is fitted on what (``python -m dposer.train.hands_fit`` reproduces the file bit for bit):

- **Shape space**: the PCA of the hand training set (``load_part_set('hand', 'train')``, right-hand convention):
  the mean hand, the first ``COMPONENTS`` directions and their variances. Hypotheses move in this space.
- **Best estimate**: the constant it starts from is the average of the mean hands of the three sources of hands
  here (the hand training set, EgoBody's training split with mirror images, the MANO mean hand), each source
  weighing the same: a user's take comes from none of them, and leaving one source out, the average of the other
  sources' means is never worse than the worse of them alone (the fit log). How far it moves toward the mirrored
  other hand when that hand is known is learned on EgoBody (the only data where both hands were captured together;
  its training split with every pose's mirror image): per finger, a least-squares weight shrunk toward a shared one
  by the factor with the lowest error on EgoBody's validation split. The body is not used: the Gaussian conditional
  from body + other hand fitted on EgoBody is worse than the constant mean hand on another capture
  (docs/benchmarks.md, clip completion).
- **Finger dynamics** (the first half of the AMASS finger take, frames 0-299, both hands; its second half is where
  the hypotheses' speed is measured, and nothing else is fitted on the take): the within-take amplitude as a fraction
  of the shape space's variance, the timescale of a squared-exponential Gaussian process by moment matching (the
  ratio of the take's finger velocity to its spread, the velocity measured on the motion's own clock), the weight of
  the other hand's fast motion (its deviation from its own slow trend) in the estimate, by least squares, clipped
  to [0, the static weight], and the wrist speed at which the motion's clock runs at its fitted pace: the two
  wrists' mean low-passed speed over those frames (the hypotheses' liveliness, the clock's rate, is the observed
  wrist speed over it). The wrist is the arm joint whose low-passed speed follows the fingers' over those frames
  (the fit log gives each arm joint's correlation; finger speed over wrist speed is about proportional there).
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from ..core.torch_rotations import geodesic_degrees
from ..formats import data
from ..spec import layout
from ..tasks.hands import ARM_S, MODEL_FILE, SLOW_S, joint_speed, lowpass_np

COMPONENTS = 12  # PCA directions the hypotheses move in (EgoBody's hands have rank 12 too)
SHRINK = (0.0, 0.25, 0.5, 0.75, 1.0)  # per-finger weights pulled toward the shared weight by this factor
FIT_FRAMES = slice(0, 300)  # the part of the AMASS finger take the dynamics are fitted on
R, L = layout.PART_SLICES["right_hand"], layout.PART_SLICES["left_hand"]


def hand_error_deg(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean geodesic error (degrees) over the 15 joints of (N, 45) hands, per row."""
    p = torch.from_numpy(np.ascontiguousarray(pred, np.float64).reshape(len(pred), 15, 3))
    t = torch.from_numpy(np.ascontiguousarray(truth, np.float64).reshape(len(truth), 15, 3))
    return geodesic_degrees(p, t).mean(1).numpy()


def hand_speed_deg(hands: np.ndarray) -> float:
    """Mean frame-to-frame rotation change (degrees per frame) of the joints of (F, 45) hands."""
    return float(hand_error_deg(hands[1:], hands[:-1]).mean())


def _pairs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target, mirrored other) right-convention hand pairs of whole-body rows, both sides."""
    y = np.concatenate([v[:, R], layout.mirror_hand(v[:, L])])
    x = np.concatenate([layout.mirror_hand(v[:, L]), v[:, R]])
    return y, x


def _finger_dims() -> list[np.ndarray]:
    """The 9 dims of each finger (3 joints) in the 45-D hand."""
    return [np.arange(9 * f, 9 * f + 9) for f in range(5)]


def _weights(y: np.ndarray, x: np.ndarray, m: np.ndarray, shrink: float) -> np.ndarray:
    """Per-dim weights toward the other hand: per finger least squares, pulled toward the shared one."""
    dy, dx = y - m, x - m
    shared = float((dy * dx).sum() / (dx * dx).sum())
    w = np.empty(45)
    for dims in _finger_dims():
        own = float((dy[:, dims] * dx[:, dims]).sum() / (dx[:, dims] ** 2).sum())
        w[dims] = shrink * shared + (1 - shrink) * own
    return np.clip(w, 0.0, 1.0)


def _const_err(c: np.ndarray, y: np.ndarray) -> float:
    return float(hand_error_deg(np.broadcast_to(c, y.shape), y).mean())


def fit_best_estimate(root=None) -> tuple[dict, list[str]]:
    hand_tr = data.load_part_set("hand", "train", root).vectors[:, R].astype(np.float64)
    hand_va = data.load_part_set("hand", "val", root).vectors[:, R].astype(np.float64)
    ego = {s: data.load_wholebody_set(s, root).vectors.astype(np.float64) for s in ("train", "val")}
    ytr, xtr = _pairs(np.concatenate([ego["train"], layout.mirror_pose(ego["train"])]))
    yva, xva = _pairs(ego["val"])
    means = {"hand training set": hand_tr.mean(0), "EgoBody": ytr.mean(0),
             "MANO": data.mano_mean_hand(root).astype(np.float64)}
    # leave one source out: a hand from a capture none of the means came from is what a user's take is
    log = []
    for held, val in (("hand training set", hand_va), ("EgoBody", yva)):
        others = [n for n in means if n != held]
        alone = ", ".join(f"{n} mean {_const_err(means[n], val):.2f}" for n in others)
        log.append(f"{held} val from the other sources: {alone}, their average "
                   f"{_const_err(np.mean([means[n] for n in others], 0), val):.2f} deg")
    constant = np.mean(list(means.values()), 0)  # every source weighs the same, whatever its size
    log.append(f"constant: the average of the {len(means)} sources' mean hands: hand val "
               f"{_const_err(constant, hand_va):.2f}, EgoBody val {_const_err(constant, yva):.2f} deg")
    best = None
    for s in SHRINK:
        w = _weights(ytr, xtr, constant, s)
        e = float(hand_error_deg(constant + w * (xva - constant), yva).mean())
        log.append(f"  + other hand, per-finger weights shrunk {s}: EgoBody val {e:.2f} deg "
                   f"(weights {w.min():.2f}-{w.max():.2f})")
        if best is None or e < best[0]:
            best = (e, s, w)
    log.append(f"chosen shrink {best[1]}")
    return {"constant": constant.tolist(), "other_weight": best[2].tolist()}, log


def take_dynamics(hands: list[np.ndarray], fps: float, basis: np.ndarray, variances: np.ndarray,
                  lively: list[np.ndarray] | None = None) -> tuple[float, float]:
    """(amplitude, timescale in seconds) of real finger motion, pooled over ``hands`` ((F, 45) each, right-hand
    convention): the spread around each hand's own mean in the PCA space as a fraction of the shape variance (per
    hand), and the squared-exponential timescale with that spread and the same mean squared velocity. ``lively``
    ((F,) per hand): the rate of the motion's own clock per frame, on which the velocity is then measured."""
    var, dvar = 0.0, 0.0
    for i, h in enumerate(hands):
        z = (h - h.mean(0)) @ basis.T  # (F, C)
        vel = np.diff(z, axis=0) * fps
        if lively is not None:
            vel /= 0.5 * (lively[i][1:] + lively[i][:-1])[:, None]  # the clock's rate between the two frames
        var += (z ** 2).mean(0).sum()
        dvar += (vel ** 2).mean(0).sum()
    return float(var / (len(hands) * variances.sum())), float(np.sqrt(var / dvar))


def fit_dynamics(root, basis: np.ndarray, variances: np.ndarray, paired: dict) -> tuple[dict, list[str]]:
    take = data.load_finger_take(root)
    fps = float(take.extras.get("framerate", 120.0))
    v = take.vectors[FIT_FRAMES].astype(np.float64)
    hands = [v[:, R], layout.mirror_hand(v[:, L])]
    wrists = [joint_speed(v[:, layout.joint_vector_slice(f"{s}_wrist")], fps) for s in ("right", "left")]
    wrist = float(np.mean([w.mean() for w in wrists]))
    # the timescale on the motion's own clock, which runs at each frame's wrist speed over the mean one
    amplitude, timescale = take_dynamics(hands, fps, basis, variances, [w / wrist for w in wrists])
    w = np.asarray(paired["other_weight"])
    num = den = 0.0
    for y, x in ((hands[0], hands[1]), (hands[1], hands[0])):
        fast_x = x - lowpass_np(x, SLOW_S * fps)
        fast_y = y - lowpass_np(y, SLOW_S * fps)
        num += (fast_y * w * fast_x).sum()
        den += ((w * fast_x) ** 2).sum()
    fast = float(np.clip(num / den, 0.0, 1.0))
    log = [f"dynamics on AMASS finger take frames {FIT_FRAMES.start}-{FIT_FRAMES.stop - 1} at {fps:g} fps: "
           f"amplitude {amplitude:.4f} of the shape variance, timescale {timescale:.3f} s on the motion's clock "
           f"({take_dynamics(hands, fps, basis, variances)[1]:.3f} s on the take's), fast-motion factor "
           f"{fast:.3f}, mean wrist speed {wrist:.2f} deg/s",
           "  correlation of each arm joint's speed with its hand's finger speed there (both low-passed, both "
           "hands): " + ", ".join(f"{j} {c:.2f}" for j, c in arm_correlations(v, fps).items())
           + f"; log finger speed on log wrist speed: slope {_log_slope(v, fps):.2f}"]
    return {"amplitude": amplitude, "timescale_s": timescale, "fast_factor": fast, "wrist_speed": wrist}, log


def finger_speed(hand: np.ndarray, fps: float) -> np.ndarray:
    """(F,) mean angular speed (deg/s) of the finger joints of (F, 45) hands, per frame, low-passed like an arm
    joint's (:func:`dposer.tasks.hands.joint_speed`)."""
    step = hand_error_deg(hand[1:], hand[:-1]) * fps
    per_frame = np.concatenate([step[:1], 0.5 * (step[1:] + step[:-1]), step[-1:]])
    return lowpass_np(per_frame[:, None], ARM_S * fps)[:, 0]


def arm_correlations(v: np.ndarray, fps: float) -> dict[str, float]:
    """Pearson correlation over the frames of a take ``v`` (F, 256) and both sides between each arm joint's
    low-passed speed and the same side's finger speed."""
    out, sides = {}, ("left", "right")
    fingers = np.concatenate([finger_speed(v[:, layout.PART_SLICES[f"{s}_hand"]], fps) for s in sides])
    for joint in ("collar", "shoulder", "elbow", "wrist"):
        arm = np.concatenate([joint_speed(v[:, layout.joint_vector_slice(f"{s}_{joint}")], fps) for s in sides])
        out[joint] = float(np.corrcoef(arm, fingers)[0, 1])
    return out



def _log_slope(v: np.ndarray, fps: float) -> float:
    """Least-squares slope of the log finger speed on the log wrist speed over the frames of ``v`` and both sides
    (1: the fingers' speed proportional to the wrist's)."""
    sides = ("left", "right")
    wrist = np.concatenate([joint_speed(v[:, layout.joint_vector_slice(f"{s}_wrist")], fps) for s in sides])
    fingers = np.concatenate([finger_speed(v[:, layout.PART_SLICES[f"{s}_hand"]], fps) for s in sides])
    return float(np.polyfit(np.log(wrist), np.log(fingers), 1)[0])

def fit(root=None) -> tuple[dict, list[str]]:
    hands = data.load_part_set("hand", "train", root).vectors[:, R].astype(np.float64)
    mean = hands.mean(0)
    evals, evecs = np.linalg.eigh(np.cov((hands - mean).T))
    order = np.argsort(evals)[::-1][:COMPONENTS]
    basis, variances = evecs[:, order].T, evals[order]
    basis *= np.sign(basis.sum(1, keepdims=True) + 1e-12)  # a fixed sign per direction
    est, log = fit_best_estimate(root)
    dyn, log2 = fit_dynamics(root, basis, variances, est)
    model = {"basis": basis.tolist(), "variances": variances.tolist(), **est, **dyn,
             "explained": float(variances.sum() / evals.sum())}
    return model, log + log2


def main() -> None:
    model, log = fit(os.environ.get("DPOSER_DATA"))
    print("\n".join(log))
    tmp = MODEL_FILE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model, indent=0) + "\n")
    os.replace(tmp, MODEL_FILE)
    print(f"wrote {MODEL_FILE}")


if __name__ == "__main__":
    main()
