"""Filling a gap from the take's own motion: find where else in the take the body did what it does around the gap,
and paste that stretch in, bent to meet the gap's edges. NumPy + SciPy.

Takes repeat themselves: a walk has many steps, an idle take sways again and again, a dance repeats its figures.
Around a gap the take shows the motion leading into and out of it (the context frames on each side), and for a limb
gap it also shows the rest of the body *during* the gap. The candidates are the stretches of the take, as long as
the gap, whose surroundings look most like the gap's (squared chordal distance of the joint rotations, root
excluded: its heading is arbitrary) and whose cells to fill are observed. Each candidate's rotations are carried
onto the gap's edges: each joint gets a rotation offset, the one that maps the candidate onto the take at the frame
before the gap, turning (SLERP) into the one at the frame after it, so the fill meets both edges exactly; the
TOP_K best candidates are averaged, weighted by how well they match.

Whether this beats SLERP or the spline on a gap is for the probes to say (:mod:`dposer.motion.filling`): a take with
nothing like the gap's motion gets a free answer.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.spatial.transform import Rotation, Slerp

from .interp import fill_joint

CONTEXT_MIN = 3  # frames of context on each side, at least ...
CONTEXT_SHARE = 0.5  # ... and this share of the gap's length
# The fill averages the TOP_K best stretches (weighted by their match): on the training-split takes the weighted
# average of 5 beat the single best (Bandai-2 validation 0.70x against 0.78x the better free answer, cgspeed
# training takes 0.89x against 1.03x, ReActIdle 1.34x against 1.74x; k = 1, 3, 5 tried; docs/model_card.md).
TOP_K = 5
EDGE_S = 0.1  # seconds over which a match is eased in from the spline at each edge of the gap (set, not tuned)


def rotation_matrices(rot: np.ndarray) -> np.ndarray:
    """(F, J, 9) rotation matrices, flattened, of axis-angle rotations (F, J, 3)."""
    return Rotation.from_rotvec(rot.reshape(-1, 3)).as_matrix().reshape(len(rot), rot.shape[1], 9)


def best_shifts(rot: np.ndarray, mask: np.ndarray, first: int, last: int, mats: np.ndarray | None = None,
                k: int = 1) -> list[tuple[int, float]]:
    """Up to ``k`` (shift, cost), best first: shifts that move frames first..last onto observed stretches of the
    take whose surroundings look most like the gap's, at least half a gap apart; [] when no stretch has the gap's
    cells observed. ``mask`` (F, J) marks every missing cell of the take; every frame is tried."""
    n = len(mask)
    length = last - first + 1
    c = max(CONTEXT_MIN, int(round(CONTEXT_SHARE * length)))
    before, after = min(c, first), min(c, n - 1 - last)  # context frames on each side
    span = before + length + after
    fill_j = mask[first:last + 1].any(0)
    feat = ~mask[first - before:last + after + 1]  # target cells that are observed: the features
    feat[:, 0] = False  # the root's heading is arbitrary
    if not feat.any():
        return []
    mats = rotation_matrices(rot) if mats is None else mats
    target = mats[first - before:last + after + 1]
    miss = mask[:, fill_j].any(1)  # frames a candidate may not draw the gap's cells from
    # by the candidate's first frame a: any such frame in a-1..a+length (its edges included)
    bad = np.r_[True, np.convolve(miss.astype(np.int32), np.ones(length + 2, np.int32), "valid") > 0, True]
    starts = np.arange(before, n - length - after + 1)  # candidate first frames (its context fits in the take)
    starts = starts[~bad[starts] & (starts != first)]

    if not len(starts):
        return []
    # every candidate at once: a cell's squared distance is 6 - 2 M.T (rotation matrices have |M|^2 = 3), summed
    # over the target's observed cells that the candidate also has: correlations along time
    obs = (~mask).astype(np.float64)  # (F, J)
    f = feat.astype(np.float64)
    count = fftconvolve(obs, f[::-1], mode="valid", axes=0).sum(1)  # by the candidate window's first frame
    cross = fftconvolve((mats * obs[..., None]).reshape(n, -1), (target * f[..., None]).reshape(span, -1)[::-1],
                        mode="valid", axes=0).sum(1)
    w0 = starts - before
    enough = count[w0] >= 0.9 * f.sum() - 1e-6
    costs = np.where(enough, (6 * count[w0] - 2 * cross[w0]) / np.maximum(count[w0], 1), np.inf)
    out = []
    for i in np.argsort(costs, kind="stable"):
        if not np.isfinite(costs[i]) or len(out) == k:
            break
        if all(abs(starts[i] - first - s) >= max(2, length // 2) for s, _ in out):
            out.append((int(starts[i] - first), float(max(costs[i], 0.0))))
    return out


def best_shift(rot: np.ndarray, mask: np.ndarray, first: int, last: int, mats: np.ndarray | None = None):
    """The shift of the best-matching stretch (see :func:`best_shifts`), or None when there is none."""
    found = best_shifts(rot, mask, first, last, mats, k=1)
    return found[0][0] if found else None


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


def mean_rotation(values: list, weights: list) -> np.ndarray:
    """The weighted mean (normalised quaternion average) of axis-angle arrays of one shape (..., 3)."""
    if np.count_nonzero(weights) == 1:  # one answer alone: exactly its values
        return values[int(np.argmax(weights))]
    q = np.stack([Rotation.from_rotvec(v.reshape(-1, 3)).as_quat() for v in values])
    q = np.where((q * q[:1]).sum(-1, keepdims=True) < 0, -q, q)
    m = (q * np.asarray(weights)[:, None, None]).sum(0)
    return Rotation.from_quat(m / np.linalg.norm(m, axis=-1, keepdims=True)).as_rotvec().reshape(values[0].shape)


def fill_gap(rot: np.ndarray, mask: np.ndarray, first: int, last: int, fps: float, mats=None,
             k: int = TOP_K) -> np.ndarray | None:
    """The take-matching fill (last - first + 1, J, 3) of the gap first..last (needs an observed frame on each
    side): the ``k`` best stretches, each bent onto the gap's edges, averaged with weights exp(-cost / best cost),
    and eased in from the cubic rotation spline over EDGE_S at each edge (the spline keeps the take's speed there:
    a stretch meets the edge's value, not its speed); None when the take has no stretch to draw from."""
    if first < 1 or last > len(rot) - 2:
        return None
    found = best_shifts(rot, mask, first, last, mats, k)
    if not found:
        return None
    joints = mask[first:last + 1].any(0)
    fills = [fill_from(rot, first, last, s, joints) for s, _ in found]
    best = max(found[0][1], 1e-12)
    matched = mean_rotation(fills, list(np.exp(-np.array([c for _, c in found]) / best)))
    t = np.arange(first, last + 1)
    ease = np.minimum(np.minimum(t - (first - 1), (last + 1) - t) / max(1.0, EDGE_S * fps), 1.0)
    out = matched.copy()
    for j in np.flatnonzero(joints):
        spline = fill_joint(rot[:, j], mask[:, j], fps, "spline")[first:last + 1]
        d = (Rotation.from_rotvec(spline).inv() * Rotation.from_rotvec(matched[:, j])).as_rotvec()
        out[:, j] = (Rotation.from_rotvec(spline) * Rotation.from_rotvec(d * ease[:, None])).as_rotvec()
    return out
