"""``dposer bench hands``: hands over a take (:mod:`dposer.tasks.hands`) against the free answers.

Per case (the hidden hand; what is known), the best estimate's error against every free answer: the constant mean
hand of the hand training set, the mirrored other hand when it is known, and mixes of the two (fixed weights, and
the weight that is best on the take itself: an oracle no user has). Per hypothesis: its speed (mean frame-to-frame
rotation change of the finger joints) over the real hand's, and its error over the constant mean hand's.

Takes: the AMASS finger take (601 frames at 120 fps; its frames 0-299 fitted the finger dynamics and the wrist speed
of their pace, so the hypotheses' speed is also reported on frames 300-600 alone, with and without the arm driving
their liveliness, and the best estimate saw none of it), the EgoBody test split per frame (no time: best estimate
only), and the gestures clip (no hands: the hypotheses' speed in degrees per second).
"""
from __future__ import annotations

import numpy as np

from ..formats import data
from ..spec import layout
from ..tasks import hands
from ..train.hands_fit import FIT_FRAMES, finger_speed, hand_error_deg, hand_speed_deg, take_dynamics

R, L = layout.PART_SLICES["right_hand"], layout.PART_SLICES["left_hand"]
# (case name, hidden side, other hand known)
CASES = (("right | body + left", "right_hand", True), ("left | body + right", "left_hand", True),
         ("right | body", "right_hand", False), ("left | body", "left_hand", False),
         ("both hands | body", "left_hand,right_hand", False))
MIXES = (0.25, 0.5, 0.75)
ORACLE_GRID = np.linspace(0.0, 1.0, 21)
K = 5
SEEDS = 20  # seeds over which the hypotheses' speed is also summarised


def _free(v: np.ndarray, missing: str, other_known: bool) -> np.ndarray:
    free = np.zeros(v.shape, bool)
    for side in missing.split(","):
        free[:, layout.PART_SLICES[side]] = True
    if not other_known:
        free[:, layout.HANDS] = True
    return free


def _err(pred: np.ndarray, v: np.ndarray, sides: list[str]) -> np.ndarray:
    return np.mean([hand_error_deg(pred[:, layout.PART_SLICES[s]], v[:, layout.PART_SLICES[s]]) for s in sides], 0)


def _speed(x: np.ndarray, sides: list[str]) -> float:
    return float(np.mean([hand_speed_deg(x[:, layout.PART_SLICES[s]]) for s in sides]))


def case_rows(v: np.ndarray, fps: float, mean_right: np.ndarray, k: int = K, seed: int = 0,
              measure: slice | None = None) -> list[dict]:
    """Rows for every case on one take ``v`` (F, 256); ``measure``: the frames the hypotheses' speed is also
    reported on (the ones the dynamics were not fitted on)."""
    rows = []
    for name, missing, other_known in CASES:
        sides = missing.split(",")
        free = _free(v, missing, other_known)
        dims, best, hyps = hands.clip_hands(v, free, k, fps, seed)
        ours = v.copy()
        ours[:, dims] = best
        mean = v.copy()
        for s in sides:
            mean[:, layout.PART_SLICES[s]] = mean_right if s == "right_hand" else layout.mirror_hand(mean_right)
        free_answers = {"constant mean hand": _err(mean, v, sides)}
        if other_known:
            other = "left_hand" if sides == ["right_hand"] else "right_hand"
            mirror = v.copy()
            mirror[:, layout.PART_SLICES[sides[0]]] = layout.mirrored_hand(v, other)
            free_answers["mirrored other hand"] = _err(mirror, v, sides)
            for a in MIXES:
                free_answers[f"mix {a:g} mirrored + {1 - a:g} mean"] = _err(a * mirror + (1 - a) * mean, v, sides)
            oracle = {a: _err(a * mirror + (1 - a) * mean, v, sides).mean() for a in ORACLE_GRID}
            a = min(oracle, key=oracle.get)
            free_answers[f"best mix on the take (oracle: {a:.2f} mirrored)"] = _err(a * mirror + (1 - a) * mean,
                                                                                    v, sides)
        e = _err(ours, v, sides)
        best_free = min(free_answers, key=lambda n: free_answers[n].mean())
        row = {"case": name, "ours": float(e.mean()), "free": {n: float(x.mean()) for n, x in free_answers.items()},
               "best_free": best_free, "margin": float(e.mean() - free_answers[best_free].mean())}
        if len(v) > 1:
            real = _speed(v, sides)
            hyp = []
            for h in hyps:
                x = v.copy()
                x[:, dims] = h
                item = {"speed": _speed(x, sides) / real, "error": float(_err(x, v, sides).mean())
                        / float(free_answers["constant mean hand"].mean())}
                if measure is not None:
                    item["speed_heldout"] = _speed(x[measure], sides) / _speed(v[measure], sides)
                hyp.append(item)
            row |= {"real_speed": real * fps, "best_speed": _speed(ours, sides) / real, "hypotheses": hyp}
        rows.append(row)
    return rows


def table(rows: list[dict], temporal: bool, heldout: bool) -> str:
    lines = ["| case | best estimate (deg) | free answers (deg) | best estimate minus the best free answer |"
             + (" real speed (deg/s) | best estimate speed / real | hypotheses: speed / real"
                + (f" (frames {FIT_FRAMES.stop}-end)" if heldout else "") + " | hypotheses: error / mean hand's |"
                if temporal else ""),
             "|---|---|---|---|" + ("---|---|---|---|" if temporal else "")]
    for r in rows:
        free = "; ".join(f"{n} {x:.2f}" for n, x in r["free"].items())
        line = f"| {r['case']} | {r['ours']:.2f} | {free} | {r['margin']:+.2f} ({r['best_free']}) |"
        if temporal:
            key = "speed_heldout" if heldout else "speed"
            sp = ", ".join(f"{h[key]:.2f}" for h in r["hypotheses"])
            er = ", ".join(f"{h['error']:.2f}" for h in r["hypotheses"])
            line += f" {r['real_speed']:.1f} | {r['best_speed']:.2f} | {sp} | {er} |"
        lines.append(line)
    return "\n".join(lines)


def gestures_speed(root=None, k: int = K) -> str:
    """The hypotheses' speed on the gestures clip (body only: no real fingers to compare with), in degrees per
    second, per hand; the clip stores no frame rate and is read at 30 fps (the hypotheses' pace follows the wrists'
    speed in degrees per second, so the rate read scales both)."""
    g = data.load_gestures_clip(root).vectors.astype(np.float64)
    fps = 30.0
    free = _free(g, "left_hand,right_hand", False)
    dims, _, hyps = hands.clip_hands(g, free, k, fps, seed=0)
    parts = []
    for side in hands.SIDES:
        x = g.copy()
        sp = []
        for h in hyps:
            x[:, dims] = h
            sp.append(hand_speed_deg(x[:, layout.PART_SLICES[side]]) * fps)
        lively = hands.liveliness(g, free, side, fps)
        parts.append(f"{side.replace('_', ' ')} {', '.join(f'{s:.0f}' for s in sp)} deg/s (liveliness "
                     f"{lively.mean():.2f})")
    return (f"Gestures clip ({len(g)} frames, body only, read at {fps:g} fps): the {k} hypotheses of each hand "
            f"given the body move: {'; '.join(parts)} (no real fingers to compare with).")


def without_arm(v: np.ndarray, fps: float, measure: slice, k: int = K) -> str:
    """The hypotheses' speed over the real hand's on the ``measure`` frames with their clock at the fitted pace on
    every frame (the arm ignored), against the same with the arm's liveliness: what the arm adds."""
    parts = []
    for side in hands.SIDES:
        free = _free(v, side, False)
        real = hand_speed_deg(v[measure, layout.PART_SLICES[side]])
        est = hands.best_estimate(len(v), None, fps)
        flip = layout.mirror_hand if side == "left_hand" else (lambda h: h)
        row, lively = [], hands.liveliness(v, free, side, fps)
        for pace in (None, lively):
            moves = flip(est[None] + hands.motion(k, len(v), fps, seed=0, lively=pace))
            row.append(", ".join(f"{hand_speed_deg(h[measure]) / real:.2f}" for h in moves))
        parts.append(f"{side.replace('_', ' ')} (liveliness {lively[measure].mean():.2f}): {row[0]} at the fitted "
                     f"pace, {row[1]} with the arm")
    return (f"Hypotheses' speed / real on frames {measure.start}-{len(v) - 1} of the finger take, hand | body: "
            + "; ".join(parts) + ".")


def over_seeds(v: np.ndarray, fps: float, measure: slice, seeds: int = SEEDS, k: int = K) -> str:
    """The spread of the hypotheses' speed / real on the ``measure`` frames over ``seeds`` seeds of K hypotheses
    (hand | body): how often one hypothesis leaves 0.5-2x, which one seed's row cannot tell."""
    parts = []
    for side in hands.SIDES:
        free = _free(v, side, False)
        sl = layout.PART_SLICES[side]
        real = hand_speed_deg(v[measure, sl])
        ratios = []
        for seed in range(seeds):
            dims, _, hyps = hands.clip_hands(v, free, k, fps, seed)
            cols = np.isin(dims, np.arange(sl.start, sl.stop))
            ratios += [hand_speed_deg(h[measure]) / real for h in hyps[:, :, cols]]
        r = np.asarray(ratios)
        parts.append(f"{side.replace('_', ' ')} {r.min():.2f}-{r.max():.2f} (median {np.median(r):.2f}), "
                     f"{int(((r < 0.5) | (r > 2)).sum())} outside 0.5-2x")
    return (f"Over seeds 0-{seeds - 1} ({seeds * k} hypotheses per hand, hand | body), speed / real on frames "
            f"{measure.start}-{len(v) - 1}: " + "; ".join(parts) + ".")


def dynamics_check(v: np.ndarray, fps: float) -> str:
    """The model's finger dynamics against the same estimate on each hand of the take (on the take's clock), in and
    out of the frames they were fitted on, with the liveliness the hand's wrist gives there."""
    m = hands.HandModel.load()
    free = _free(v, "left_hand,right_hand", False)
    lively = {side: hands.liveliness(v, free, f"{side}_hand", fps) for side in ("right", "left")}
    parts = []
    for name, sl in ((f"frames {FIT_FRAMES.start}-{FIT_FRAMES.stop - 1} (fitted)", FIT_FRAMES),
                     (f"frames {FIT_FRAMES.stop}-{len(v) - 1} (not fitted)", slice(FIT_FRAMES.stop, len(v)))):
        if sl.start >= len(v) - 2:
            continue
        for side, h in (("right", v[sl, R]), ("left", layout.mirror_hand(v[sl, L]))):
            a, t = take_dynamics([h], fps, m.basis, m.variances)
            per_wrist = finger_speed(h, fps).mean() / (lively[side][sl].mean() * m.wrist_speed)
            parts.append(f"{name}, {side} hand: amplitude {a:.3f}, timescale {t:.3f} s, liveliness "
                         f"{lively[side][sl].mean():.2f}, finger speed / wrist speed {per_wrist:.2f}")
    return (f"Finger dynamics: the model's amplitude {m.amplitude:.3f} of the shape variance, timescale "
            f"{m.timescale_s:.3f} s on the motion's own clock (it runs at the liveliness: the wrist's speed over "
            f"{m.wrist_speed:.1f} deg/s); the take's own, on the take's clock: " + "; ".join(parts) + ".")


def bench_hands(ctx) -> str:
    root = ctx.root
    mean_right = data.load_part_set("hand", "train", root).vectors[:, R].astype(np.float64).mean(0)
    take = data.load_finger_take(root)
    fps = float(take.extras.get("framerate", 120.0))
    v = take.vectors.astype(np.float64)
    if ctx.quick:
        v = v[:48]
    measure = slice(FIT_FRAMES.stop, len(v)) if len(v) > FIT_FRAMES.stop + 1 else None
    ego = data.load_wholebody_set("test", root).vectors.astype(np.float64)
    ego_rows = []
    for i in range(len(ego) if not ctx.quick else 8):  # each pose a one-frame take
        ego_rows.append(case_rows(ego[i:i + 1], 30.0, mean_right, k=1))
    ego_avg = []
    for c in range(len(CASES)):
        rs = [e[c] for e in ego_rows]
        ego_avg.append({"case": rs[0]["case"], "ours": float(np.mean([r["ours"] for r in rs])),
                        "free": {n: float(np.mean([r["free"][n] for r in rs])) for n in rs[0]["free"]
                                 if "oracle" not in n}})  # a per-pose best mix is no answer for a set of poses
        best = min(ego_avg[-1]["free"], key=ego_avg[-1]["free"].get)
        ego_avg[-1] |= {"best_free": best, "margin": ego_avg[-1]["ours"] - ego_avg[-1]["free"][best]}
    out = [f"**AMASS finger take** ({len(v)} frames at {fps:g} fps; {K} hypotheses, seed 0)\n",
           table(case_rows(v, fps, mean_right, measure=measure), True, measure is not None),
           f"\n**EgoBody test split, per frame** ({len(ego_rows)} poses; no time, best estimate only)\n",
           table(ego_avg, False, False), "", gestures_speed(root), "", dynamics_check(v, fps)]
    if measure is not None:
        out += ["", without_arm(v, fps, measure), "", over_seeds(v, fps, measure)]
    return "\n".join(out)
