"""Filling a gap from the take's own motion: find where else in the take the body did what it does around the gap,
and paste that stretch in, bent to meet the gap's edges. NumPy + SciPy.

Takes repeat themselves: a walk has many steps, an idle take sways again and again, a dance repeats its figures.
Around a gap the take shows the motion leading into and out of it (the context frames on each side), and for a limb
gap it also shows the rest of the body *during* the gap. The candidate is the stretch of the take, as long as the
gap, whose surroundings look most like the gap's (squared chordal distance of the joint rotations, root excluded:
its heading is arbitrary) and whose cells to fill are observed. The candidate's rotations are then carried onto the
gap's edges: each joint gets a rotation offset, the one that maps the candidate onto the take at the frame before
the gap, turning (SLERP) into the one at the frame after it, so the fill meets both edges exactly.

Whether this beats SLERP or the spline on a gap is for the probes to say (:mod:`dposer.motion.filling`): a take with
nothing like the gap's motion gets a free answer.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

CONTEXT_MIN = 3  # frames of context on each side, at least ...
CONTEXT_SHARE = 0.5  # ... and this share of the gap's length


def _matrices(rot: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rot.reshape(-1, 3)).as_matrix().reshape(len(rot), rot.shape[1], 9)


def best_shift(rot: np.ndarray, mask: np.ndarray, first: int, last: int, mats: np.ndarray | None = None,
               stride: int = 1):
    """The shift s (int) that moves frames first..last onto the best-matching observed stretch of the take, or
    None when no stretch has the gap's cells observed. ``mask`` (F, J) marks every missing cell of the take;
    candidates are tried every ``stride`` frames (then refined around the best)."""
    n = len(mask)
    length = last - first + 1
    c = max(CONTEXT_MIN, int(round(CONTEXT_SHARE * length)))
    before, after = min(c, first), min(c, n - 1 - last)  # context frames on each side
    span = before + length + after
    fill_j = mask[first:last + 1].any(0)
    feat = ~mask[first - before:last + after + 1]  # target cells that are observed: the features
    feat[:, 0] = False  # the root's heading is arbitrary
    if not feat.any():
        return None
    mats = _matrices(rot) if mats is None else mats
    target = mats[first - before:last + after + 1]
    miss = mask[:, fill_j].any(1)  # frames a candidate may not draw the gap's cells from
    # by the candidate's first frame a: any such frame in a-1..a+length (its edges included)
    bad = np.r_[True, np.convolve(miss.astype(np.int32), np.ones(length + 2, np.int32), "valid") > 0, True]
    starts = np.arange(before, n - length - after + 1)  # candidate first frames (its context fits in the take)
    starts = starts[~bad[starts] & (starts != first)]

    def cost(a: int) -> float:
        ok = feat & ~mask[a - before:a - before + span]
        if ok.sum() < 0.9 * feat.sum():
            return np.inf
        return float(((mats[a - before:a - before + span] - target) ** 2).sum(-1)[ok].mean())

    if not len(starts):
        return None
    costs = {int(a): cost(a) for a in starts[::stride]}
    a0 = min(costs, key=costs.get)
    for a in starts[np.abs(starts - a0) < stride]:
        costs.setdefault(int(a), cost(a))
    a0 = min(costs, key=costs.get)
    return None if not np.isfinite(costs[a0]) else a0 - first


def fill_from(rot: np.ndarray, first: int, last: int, shift: int, joints: np.ndarray) -> np.ndarray:
    """(last - first + 1, J, 3): the take's frames first+shift..last+shift of ``joints``, each joint carried by an
    offset rotation that turns from the gap's frame before onto its frame after (the other joints: as in ``rot``)."""
    out = rot[first:last + 1].copy()
    length = last - first + 1
    w = np.arange(1, length + 1) / (length + 1)
    for j in np.flatnonzero(joints):
        cand = Rotation.from_rotvec(rot[first + shift:last + shift + 1, j])
        ends = [first - 1, last + 1]
        off = [Rotation.from_rotvec(rot[e, j]) * Rotation.from_rotvec(rot[e + shift, j]).inv() for e in ends]
        offsets = Slerp([0.0, 1.0], Rotation.concatenate(off))(w)
        out[:, j] = (offsets * cand).as_rotvec()
    return out


def midway(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation halfway (geodesic) between axis-angle arrays a and b (..., 3)."""
    ra, rb = Rotation.from_rotvec(a.reshape(-1, 3)), Rotation.from_rotvec(b.reshape(-1, 3))
    return (ra * Rotation.from_rotvec(0.5 * (ra.inv() * rb).as_rotvec())).as_rotvec().reshape(a.shape)


def fill_gap(rot: np.ndarray, mask: np.ndarray, first: int, last: int, mats=None, stride: int = 1):
    """The take-matching fill (last - first + 1, J, 3) of the gap first..last (needs an observed frame on each
    side), or None when the take has no stretch to draw from."""
    if first < 1 or last > len(rot) - 2:
        return None
    s = best_shift(rot, mask, first, last, mats, stride)
    if s is None:
        return None
    return fill_from(rot, first, last, s, mask[first:last + 1].any(0))

