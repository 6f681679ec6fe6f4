"""Find the faults in a mocap clip and repair only them (the detection and rotation-space half of ``dposer.clean``).

Everything here works per joint on joint-local rotations, as unit quaternions made continuous in time:

- cuts: frames where most of the body jumps at once (a T-pose first frame, two takes joined); the segments between
  cuts are cleaned separately and nothing is smoothed across a cut;
- held limbs: a limb frozen on exactly its last value while the rest of the body moves (marker dropout);
- joint-limit breaks: a knee or elbow bent backwards past ``layout.HYPEREXTENSION_LIMIT``;
- temporal outliers: intervals of 1-10 frames of one joint that disagree with a cubic through the two frames either
  side, by more than both an absolute floor and ``k`` times the joint's own robust (MAD) residual scale for that
  interval length (one-frame spikes, multi-frame pops). Found greedily, each found interval replaced by its
  prediction before looking again, so a spike does not also flag its neighbours. The residual is what the rotation
  moves: the largest angle by which it turns the joint's descendants (its child bones and the ends of its subtree,
  as posed in that frame), so a twist about a straight limb, which moves nothing (a converter's twist flip on a
  straight arm), is not a fault; a joint with no descendant (a foot) uses the full rotation angle. The threshold
  stays the joint's full-rotation residual scale, so this only ever removes candidates. A fault is
  entered and left by a jump: the steps into and out of it are larger than the steps just outside it (a fast
  foot strike turns the ankle quickly but does not come straight back). A fault is one joint's: it must also be an
  outlier in the joint's rotation composed with its ancestors' (an ankle that turns back what its hip and knee
  turned, leaving the foot in place, is a re-solved leg). Ankles (``FAST_JOINTS``) are examined only from
  ``FAST_STRENGTH`` up: at 30 fps their real foot strikes are one-frame events of a spike's size;
- the jitter level: the MAD of each joint's 4th-difference residual, in degrees per axis.

Repair: flagged cells get zero weight in a Whittaker smoother (second differences, banded solve per joint and
segment), which fills them from the motion around them; unflagged cells keep their values exactly unless the
joint's jitter is above what real motion shows (``JITTER_FLOOR_DEG``), in which case they are smoothed with the
noise-adaptive weight ``lambda = c * sigma_noise^2 / var(true second difference)`` (the optimal weight for a
random-acceleration motion model), ``c`` growing with strength.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solveh_banded
from scipy.spatial.transform import Rotation

from ..spec import layout
from .faults import LIMBS
from .joint_quaternions import (_angle, _continuous, _unit, chain_parents, chained,  # noqa: F401 (used by callers)
                               from_quaternions, to_quaternions)

# Thresholds, chosen on the tuning takes (the two AMASS takes and the gestures clip, also resampled to 30 fps) and,
# for SPIKE_EDGE, the moved-angle residual and OUTLIER_K, on 49 Bandai Namco dataset-2 clips (training data of the
# prior; `python scripts/tune_clean.py`), never on the held-out dataset-1 clips the benchmark reports.
MAX_INTERVAL = 10  # longest pop looked for (frames)
OUTLIER_K = 3.5  # x the joint's MAD residual scale (strength 0.5; dataset-2: 4.5 -> 0.757, 4 -> 0.735, 3.5 -> 0.727,
#                  3 -> 0.727 of the better filter's error, the worst unfaulted change 43.8 mm at each)
OUTLIER_K90 = 2.5  # ... and this many times its 90th-percentile residual
OUTLIER_EVERY = 60  # more outliers on one joint than one per this many frames (and than 2) are its motion
OUTLIER_FLOOR_DEG = 9.0  # an outlier is at least this far off (strength 0.5; grows with the interval length)
JITTER_FLOOR_DEG = 1.0  # estimated per-axis noise (median over the joints) above which the clip is smoothed
CUT_DEG = 90.0  # summed joint jump that can be a cut ...
CUT_JOINTS = 6  # ... if at least this many joints jump by more than CUT_JOINT_DEG
CUT_JOINT_DEG = 10.0
LIMIT_JUMP_DEG = 20.0  # a joint-limit break starts or ends with a jump of the hinge angle this large
POP_MIN_FRAMES = 3  # outliers this long must be one constant offset (pops); shorter ones are spikes
POP_SPREAD = 0.5  # ... varying by at most this fraction of the offset over the interval
POP_EDGE = 3.0  # ... and entered and left by steps this many times its frames' median step
SPIKE_EDGE = 1.5  # every outlier is entered and left by steps this many times the steps just outside it
SMOOTH_C = 4.0  # jitter smoothing weight at strength 1: the noise-optimal weight at strength 0.5
# Joints whose real motion has one- and few-frame events at capture rates: an ankle at a foot strike or toe-off turns
# 20-40 deg within a frame or two at 30 fps, and converted takes re-solve it there. Below FAST_STRENGTH they are
# never called temporal outliers (held limbs still are). Dataset-2: 0.733 -> 0.734 of the better filter's error,
# fault frames 0.618 -> 0.620, the worst change to an unfaulted take 34.6 -> 0.0 mm (every change above 15 mm left
# there was an ankle's).
FAST_JOINTS = ("left_ankle", "right_ankle")
FAST_STRENGTH = 0.75
HELD_FRAMES = 8  # a limb frozen this long while the body moves is a dropout
HELD_EPS = 1e-5  # radians: 'frozen' = moves less than this per frame


@dataclass
class Detection:
    cuts: list  # first frames of the segments after the first (a cut is between frame c-1 and c)
    flags: np.ndarray  # (F, J) bool, J = the joints examined
    kinds: dict = field(default_factory=dict)  # kind -> (F, J) bool
    noise_deg: np.ndarray | None = None  # (J,) estimated jitter per axis


def find_cuts(q: np.ndarray, orient_q: np.ndarray | None = None) -> list:
    """Frames c where (nearly) the whole body jumps between c-1 and c."""
    if len(q) < 2:
        return []
    jumps = np.degrees(_angle(q[1:], q[:-1]))  # (F-1, J)
    if orient_q is not None:
        jumps = np.concatenate([jumps, np.degrees(_angle(orient_q[1:], orient_q[:-1]))[:, None]], 1)
    total = jumps.sum(1)
    typical = np.median(total)
    cut = (total > max(CUT_DEG, 8 * typical)) & ((jumps > CUT_JOINT_DEG).sum(1) >= CUT_JOINTS)
    return [int(i) + 1 for i in np.nonzero(cut)[0]]


def _lagrange(nodes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at), len(nodes)) weights of the polynomial through ``nodes`` evaluated ``at``."""
    w = np.ones((len(at), len(nodes)))
    for i, xi in enumerate(nodes):
        for k, xk in enumerate(nodes):
            if k != i:
                w[:, i] *= (at - xk) / (xi - xk)
    return w


def probes(aa: np.ndarray, joints: list) -> np.ndarray:
    """(F, J, K, 3) unit vectors from each joint to its child joints and to the ends of its subtree, in the joint's
    own (rotated) frame, on the built-in skeleton posed by ``aa`` (F, J, 3) (joints not in ``joints`` at rest);
    rows past a joint's count are NaN. Turning a joint's rotation by ``e`` moves these by the angle between
    ``v`` and ``e v``."""
    from ..core.kinematics import REST_OFFSETS

    F = len(aa)
    parents = np.asarray(layout.PARENTS)
    children = [np.nonzero(parents == j)[0] for j in range(layout.NUM_JOINTS)]

    def subtree(j):
        out = []
        for c in children[j]:
            out += [c] + subtree(c)
        return out

    ids = [layout.JOINT_INDEX[n] for n in joints]
    local = np.zeros((F, layout.NUM_JOINTS, 3))
    local[:, ids] = aa
    rot = Rotation.from_rotvec(local.reshape(-1, 3)).as_matrix().reshape(F, -1, 3, 3)
    glob, pos = np.zeros_like(rot), np.zeros((F, layout.NUM_JOINTS, 3))
    for j, p in enumerate(parents):  # parents come first in the joint order
        glob[:, j] = rot[:, j] if p < 0 else glob[:, p] @ rot[:, j]
        pos[:, j] = REST_OFFSETS[j] if p < 0 else pos[:, p] + glob[:, p] @ REST_OFFSETS[j]
    sets = []
    for j in ids:
        sub = subtree(j)
        sets.append(sorted(set(children[j]) | {d for d in sub if len(children[d]) == 0}))
    K = max(1, max(len(x) for x in sets))
    out = np.full((F, len(ids), K, 3), np.nan)
    for i, (j, ds) in enumerate(zip(ids, sets)):
        if ds:
            v = np.einsum("fba,fkb->fka", glob[:, j], pos[:, ds] - pos[:, j][:, None])  # G_j^T (p_d - p_j)
            out[:, i, :len(ds)] = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
    return out


def _moved_angle(pred: np.ndarray, q: np.ndarray, probe: np.ndarray | None, full: np.ndarray) -> np.ndarray:
    """Angle (radians) by which replacing rotations ``q`` (..., 4) with ``pred`` turns the probe vectors
    (..., K, 3) (the largest over K); the full rotation angle ``full`` where a joint has no probes."""
    if probe is None:
        return full
    # e = conj(q) * pred, as (x, y, z, w); rotate each probe v: v' = v + 2 w (u x v) + 2 u x (u x v)
    w1, v1 = q[..., 3:], -q[..., :3]
    w2, v2 = pred[..., 3:], pred[..., :3]
    ew = w1 * w2 - (v1 * v2).sum(-1, keepdims=True)
    eu = w1 * v2 + w2 * v1 + np.cross(v1, v2)
    u, w = eu[..., None, :], ew[..., None, :]
    t = 2 * np.cross(u, probe)
    moved = probe + w * t + np.cross(u, t)
    cos = np.clip((moved * probe).sum(-1), -1, 1)
    ang = np.arccos(cos)
    have = ~np.isnan(probe[..., 0])
    vis = np.where(have, ang, -1).max(-1)
    return np.where(have.any(-1), vis, full)


def _interval_residuals(q: np.ndarray, L: int):
    """For every interval [a, a+L-1] with two frames of context either side: the cubic prediction of its frames
    from the context (nA, L, J, 4) and their full rotation angles from it (nA, L, J). Returns (firsts, pred, full)."""
    F = len(q)
    first = np.arange(2, F - L - 1)
    if len(first) == 0:
        return first, None, None
    ctx = q[first[:, None] + np.array([-2, -1, L, L + 1])]  # (nA, 4, J, 4)
    pred = _unit(np.einsum("lc,ncjd->nljd", _cubic(L), ctx))
    return first, pred, _angle(pred, q[first[:, None] + np.arange(L)])


def _cubic(L: int) -> np.ndarray:
    """(L, 4) weights of the cubic through frames -2, -1, L, L+1, evaluated at 0..L-1."""
    return _lagrange(np.array([-2.0, -1.0, L, L + 1.0]), np.arange(L, dtype=float))


def _residual_at(q: np.ndarray, first: np.ndarray, j: np.ndarray, L: int) -> np.ndarray:
    """(n, L) full rotation angles of the intervals [first, first+L-1] of joints j (n,) from their cubic."""
    ctx = q[first[:, None] + np.array([-2, -1, L, L + 1]), j[:, None]]  # (n, 4, 4)
    pred = _unit(np.einsum("lc,ncd->nld", _cubic(L), ctx))
    return _angle(pred, q[first[:, None] + np.arange(L), j[:, None]])


def _constant_offset(pred: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n,) whether each interval's frames q (n, L, 4) sit on their predictions pred by one constant joint-local
    offset, up to POP_SPREAD of its size (a pop), rather than by a deviation that swells and fades (real motion
    faster than the cubic through the context frames)."""
    w1, v1 = pred[..., 3:], -pred[..., :3]  # conj(pred) (x, y, z, w) times q
    w2, v2 = q[..., 3:], q[..., :3]
    w = w1 * w2 - (v1 * v2).sum(-1, keepdims=True)
    v = w1 * v2 + w2 * v1 + np.cross(v1, v2)
    v = np.where(w < 0, -v, v)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    rotvec = v * (2 * np.arctan2(n, np.abs(w)) / np.maximum(n, 1e-12))  # (n, L, 3)
    mean = rotvec.mean(1)
    spread = np.linalg.norm(rotvec - mean[:, None], axis=-1).max(1)
    return spread <= POP_SPREAD * np.linalg.norm(mean, axis=-1)


def find_outliers(q: np.ndarray, k: float, floor_deg: float, fixed: np.ndarray | None = None,
                  probe: np.ndarray | None = None, jumps: bool = True, parents: np.ndarray | None = None):
    """Greedy interval outliers (see the module doc). ``fixed`` (F, J) cells already flagged (skipped as
    candidates, their values already replaced); ``probe`` (F, J, K, 3) from :func:`probes` (None: residuals are
    full rotation angles); ``jumps``: require the jumps into and out of an outlier (SPIKE_EDGE); ``parents``
    (from :func:`chain_parents`): an outlier must also be one in the joint's rotation composed with its ancestors'
    (a fault is one joint's: an ankle that turns back what its hip and knee turned, leaving the foot where it was,
    is the motion's or a converter's re-solved leg, not a fault). Returns (flags
    (F, J), q with the flagged cells replaced, often (J,): joints with too many outliers to be faults, whose flags
    are dropped)."""
    q = q.copy()
    F, J, _ = q.shape
    flags = np.zeros((F, J), bool)
    taken = flags if fixed is None else fixed.copy()
    scales = {}
    for L in range(1, min(MAX_INTERVAL, F - 4) + 1):
        r = _interval_residuals(q, L)[2]  # the scale: the joint's full rotation residuals
        m = r.min(1)
        # the MAD scale, and the 90th percentile for joints whose real motion is bursty (a toe is still most of
        # the time and flexes fast at every toe-off: 10-20% of the frames, far fewer than a fault holds)
        scales[L] = np.maximum(1.4826 * np.median(m, axis=0), OUTLIER_K90 / k * np.percentile(m, 90, axis=0)) + 1e-6
    count = np.zeros(J, int)
    qc = None if parents is None else chained(q, parents)  # of the input: a repaired hip must not make a spike
    for _ in range(F):
        # every interval above its threshold, strongest first; per round one interval per stretch of a joint (an
        # accepted interval and its two context frames either side block overlapping candidates until the next
        # round, which sees the accepted ones replaced by their predictions)
        cands = []
        for L, scale in scales.items():
            first, pred, full = _interval_residuals(q, L)
            thr = np.maximum(np.radians(floor_deg) * (1 + 0.05 * (L - 1)), k * scale)
            score = full.min(1) / thr  # (nA, J)
            inside = first[:, None] + np.arange(L)
            score[taken[inside].any(1)] = 0
            i, j = np.nonzero(score > 1)
            # what a rotation moves is at most its angle, so only these candidates need the finer tests
            if probe is not None and len(i):  # the angle it turns the joint's descendants
                moved = _moved_angle(pred[i, :, j], q[inside[i], j[:, None]], probe[inside[i], j[:, None]], full[i, :, j])
                score[i, j] = moved.min(1) / thr[j]
            if qc is not None and len(i):  # ... and as far off in the chain's composed rotation
                score[i, j] = np.minimum(score[i, j], _residual_at(qc, first[i], j, L).min(1) / thr[j])
            i, j = np.nonzero(score > 1)
            if jumps and len(i):  # entered and left by a jump: the steps into and out of it beat those outside it
                seg = q[first[i, None] + np.array([-2, -1, 0, L - 1, L, L + 1]), j[:, None]]
                st = _angle(seg[:, 1:], seg[:, :-1])  # before, in, (across the interval), out, after
                ok = np.minimum(st[:, 1], st[:, 3]) >= SPIKE_EDGE * np.maximum(st[:, 0], st[:, 4])
                score[i[~ok], j[~ok]] = 0
            if L >= POP_MIN_FRAMES:  # a pop is a constant offset: a bump that rises and falls is the motion's own
                i, j = np.nonzero(score > 1)
                bump = ~_constant_offset(pred[i, :, j], q[inside[i], j[:, None]])
                # ... entered and left by a jump: a pop's frames move with the motion around them, so the steps
                # into and out of it are much larger than the steps within it (a fast stride's are not)
                seg = q[first[i, None] + np.arange(-1, L + 1), j[:, None]]  # (n, L + 2, 4)
                steps = _angle(seg[:, 1:], seg[:, :-1])  # (n, L + 1)
                bump |= np.minimum(steps[:, 0], steps[:, -1]) < POP_EDGE * np.median(steps[:, 1:-1], 1)
                score[i[bump], j[bump]] = 0
            for i, j in zip(*np.nonzero(score > 1)):
                cands.append((score[i, j], int(first[i]), L, int(j), pred[i, :, j]))
        if not cands:
            break
        blocked = np.zeros((F, J), bool)
        for _, a, L, j, p in sorted(cands, key=lambda c: -c[0]):
            if blocked[max(0, a - 2):a + L + 2, j].any():
                continue
            blocked[max(0, a - 2):a + L + 2, j] = True
            q[a:a + L, j] = p
            flags[a:a + L, j] = True
            taken[a:a + L, j] = True
            count[j] += 1
    # a joint with many 'outliers' is one whose real motion is bursty (a toe at every step): not faults
    often = count > max(2, F / OUTLIER_EVERY)
    flags[:, often] = False
    return flags, q, often


def find_held(q: np.ndarray, joints: list) -> np.ndarray:
    """(F, J) cells of limbs frozen for HELD_FRAMES+ frames on their last value while the rest of the body moves."""
    F, J, _ = q.shape
    flags = np.zeros((F, J), bool)
    if F < HELD_FRAMES + 2:
        return flags
    speed = np.zeros((F, J))
    speed[1:] = _angle(q[1:], q[:-1])
    index = {j: i for i, j in enumerate(joints)}
    for limb in LIMBS.values():
        idx = [index[j] for j in limb if j in index]
        if not idx:
            continue
        others = [i for i in range(J) if i not in idx]
        frozen = (speed[:, idx] < HELD_EPS).all(1)
        frozen[0] = False
        moving = np.median(speed[:, others], 1) > 10 * HELD_EPS if others else np.ones(F, bool)
        t = 0
        while t < F:
            if not frozen[t]:
                t += 1
                continue
            e = t
            while e + 1 < F and frozen[e + 1]:
                e += 1
            # frames t..e repeat frame t-1; a dropout if the body moves meanwhile
            if e - t + 1 >= HELD_FRAMES and moving[t:e + 1].mean() > 0.5:
                flags[np.ix_(np.arange(t, e + 1), idx)] = True
            t = e + 1
    return flags


def find_limit_breaks(aa: np.ndarray, joints: list) -> np.ndarray:
    """(F, J) cells where a hinge joint (knee, elbow) bends backwards past its limit, in runs entered or left by
    a jump of more than LIMIT_JUMP_DEG in one frame (a flipped solve; a real take that drifts slowly into a
    hyperextended fit is its truth, and stays)."""
    flags = np.zeros(aa.shape[:2], bool)
    for name, axis in layout.HINGE_AXES.items():
        if name not in joints:
            continue
        j = joints.index(name)
        flex = aa[:, j] @ np.asarray(axis)
        bad = flex < -layout.HYPEREXTENSION_LIMIT[name]
        jump = np.abs(np.diff(flex)) > np.radians(LIMIT_JUMP_DEG)
        for a, b in _runs(bad):
            if (a > 0 and jump[a - 1]) or (b + 1 < len(flex) and jump[b]):
                flags[a:b + 1, j] = True
    return flags


def _runs(x: np.ndarray) -> list:
    """(first, last) of each run of True in a 1-D bool array."""
    d = np.diff(np.r_[0, x.astype(int), 0])
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0] - 1))


def jitter_deg(q: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """(J,) robust per-axis noise estimate (degrees) from the 4th-difference residual, skipping flagged cells."""
    F, J, _ = q.shape
    if F < 5:
        return np.zeros(J)
    r = q[2:-2] - (-q[:-4] + 4 * q[1:-3] + 4 * q[3:-1] - q[4:]) / 6  # (F-4, J, 4)
    near = np.zeros((F, J), bool)
    for s in range(-2, 3):
        near |= np.roll(flags, s, axis=0)
    ok = ~near[2:-2]
    out = np.zeros(J)
    for j in range(J):
        m = np.linalg.norm(r[ok[:, j], j], axis=-1)
        if len(m):
            # |r| of isotropic 3-D noise: median = 1.538 s; r = 70/36 of the noise variance; quaternion units are
            # half-angles
            out[j] = np.degrees(2 * np.median(m) / 1.538 / np.sqrt(70 / 36))
    return out


def whittaker(y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """argmin_z sum w (z - y)^2 + lam |D2 z|^2 for y (F, C), w (F,), by a banded Cholesky solve."""
    F = len(y)
    if F < 3:
        return y.copy()
    # banded D2'D2 (bandwidth 2), upper form for solveh_banded
    ab = np.zeros((3, F))
    main = np.full(F, 6.0)
    main[[0, -1]] = 1
    main[[1, -2]] = 5 if F > 3 else 2
    if F == 3:
        main = np.array([1.0, 4.0, 1.0])
    off1 = np.full(F - 1, -4.0)
    off1[[0, -1]] = -2
    off2 = np.ones(F - 2)
    ab[2] = w + lam * main
    ab[1, 1:] = lam * off1
    ab[0, 2:] = lam * off2
    return solveh_banded(ab, w[:, None] * y)


@dataclass
class Repair:
    aa: np.ndarray  # (F, J, 3) repaired rotations
    detection: Detection


def detect(aa: np.ndarray, joints: list, strength: float, orient: np.ndarray | None = None) -> Detection:
    """Cuts and faulty cells of the joints ``joints`` (names) whose rotations are ``aa`` (F, J, 3)."""
    q = to_quaternions(aa)
    F, J, _ = q.shape
    cuts = find_cuts(q, None if orient is None else to_quaternions(orient[:, None])[:, 0])
    kinds = {k: np.zeros((F, J), bool) for k in ("held", "limit", "outlier")}
    k_mult = 1.5 - strength  # strength 0.5 -> 1; higher strength flags more
    for a, b in _segments(F, cuts):
        if b - a < 5:
            continue
        qs = q[a:b]
        held = find_held(qs, joints)
        limit = find_limit_breaks(aa[a:b], joints)
        known = held | limit
        qs = _fill(qs, known)
        k, floor = OUTLIER_K * k_mult, OUTLIER_FLOOR_DEG * k_mult
        out, _, _ = find_outliers(qs, k, floor, fixed=known, probe=probes(aa[a:b], joints), parents=chain_parents(joints))
        # a bursty joint is told by every interval above the threshold, fault-shaped or not (a walk's ankle
        # crosses it at every step, sometimes with a jump in and out: the take's motion, not faults)
        out[:, find_outliers(qs, k, floor, fixed=known, jumps=False)[2]] = False
        if strength < FAST_STRENGTH:
            out[:, [i for i, n in enumerate(joints) if n in FAST_JOINTS]] = False
        kinds["held"][a:b], kinds["limit"][a:b], kinds["outlier"][a:b] = held, limit, out
    flags = kinds["held"] | kinds["limit"] | kinds["outlier"]
    return Detection(cuts, flags, kinds)


def _segments(F: int, cuts: list) -> list:
    edges = [0] + list(cuts) + [F]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _fill(q: np.ndarray, flags: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Flagged cells filled from the unflagged ones (Whittaker with zero weight there); others unchanged."""
    out = q.copy()
    for j in np.nonzero(flags.any(0))[0]:
        w = (~flags[:, j]).astype(float)
        if w.sum() < 2:
            continue
        out[flags[:, j], j] = _unit(whittaker(q[:, j], w, lam))[flags[:, j]]
    return out


def repair(aa: np.ndarray, det: Detection, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill the flagged cells and smooth jittery joints. Returns (repaired aa (F, J, 3), the jitter estimate in degrees)."""
    q = to_quaternions(aa)
    F, J, _ = q.shape
    out = q.copy()
    noise = 0.0
    c = SMOOTH_C * strength ** 2  # smoothing weight multiplier: 0 at strength 0, SMOOTH_C / 4 at 0.5
    for a, b in _segments(F, det.cuts):
        if b - a < 5:
            continue
        qs, fl = q[a:b], det.flags[a:b]
        filled = _fill(qs, fl)
        # jitter is the capture's, the same on every joint: the median over the joints is the clip's level (a
        # joint's own estimate also holds its fastest motion at low frame rates)
        sig = float(np.median(jitter_deg(filled, fl)))
        noise = max(noise, sig)
        smooth = sig > JITTER_FLOOR_DEG and c > 0
        s2 = 3 * (np.radians(sig) / 2) ** 2  # noise variance of the quaternion's (x, y, z) per frame
        for j in range(J):
            if smooth:
                d2 = filled[2:, j] - 2 * filled[1:-1, j] + filled[:-2, j]
                acc = max(np.mean((d2 ** 2).sum(-1)) - 6 * s2, 0.05 * s2)
                w = np.maximum((~fl[:, j]).astype(float), 1e-9)
                out[a:b, j] = _unit(whittaker(filled[:, j], w, c * s2 / acc))
            elif fl[:, j].any():
                out[a:b, j] = filled[:, j]
    changed = np.any(out != q, axis=-1)
    res = aa.copy()
    res[changed] = from_quaternions(out)[changed]
    return res, noise


def report(det: Detection, joints: list) -> list:
    """What was repaired: [{"joint", "first", "last", "kind"}], one entry per run of flagged frames of a joint."""
    out = []
    for kind, cells in det.kinds.items():
        for j in np.nonzero(cells.any(0))[0]:
            f = np.nonzero(cells[:, j])[0]
            breaks = np.nonzero(np.diff(f) > 1)[0]
            for s, e in zip(np.r_[0, breaks + 1], np.r_[breaks, len(f) - 1]):
                out.append({"joint": joints[j], "first": int(f[s]), "last": int(f[e]), "kind": kind})
    return sorted(out, key=lambda r: (r["first"], r["joint"]))


def summary(repaired: list, cuts=()) -> str:
    """One line: how many faults on which frames and bones, e.g. for a status bar."""
    if not len(repaired):
        return "no faults found" + (f"; {len(cuts)} cut(s)" if len(cuts) else "")
    frames = sorted({f for r in repaired for f in range(r["first"], r["last"] + 1)})
    bones = sorted({r["joint"] for r in repaired})
    kinds = {}
    for r in repaired:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return (f"repaired {len(repaired)} fault(s) (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) +
            f") on {len(frames)} frame(s), bones: {', '.join(bones)}" + (f"; {len(cuts)} cut(s)" if len(cuts) else ""))
