"""BVH takes -> SMPL-X body poses on the built-in skeleton (``dposer convert``). NumPy + SciPy, no torch.

How (vectorised over frames, no optimisation loop):

1. :mod:`dposer.formats.bvh` parses the take and runs its forward kinematics: world position and rotation of every joint.
2. BVH joint names map to SMPL-X joints through the bone-map presets (``dposer.spec.bone_maps``, the
   one name table: CMU / cgspeed, ASF-style, Bandai Namco, Mixamo ...), picked by how many names match.
3. The world is turned so that the body's up axis is +Y (a Z-up take is rotated), and the file unit (m, cm, inch,
   mm) is read off the skeleton's size against the built-in skeleton's.
4. Each SMPL-X body joint's world rotation is solved in kinematic order. The pelvis, spine, legs and arms are
   *aimed* from the BVH positions (the BVH rest pose never enters, so Bandai's everything-along-+X rest needs
   nothing special): the joint's bone points exactly at its mapped child and the twist about it comes from a
   second direction (TRIAD): the hip line for the pelvis, hip and shoulder lines blended up the spine (the chest
   aims between the shoulders), the knee's / elbow's bending plane for the thigh / upper arm (knees and elbows
   bend as hinges), the parent's axes for the rest (minimal twist). The neck, head and wrists, whose joint
   placement differs most between skeletons, copy the BVH's own rotation relative to the nearest mapped ancestor
   (zero when the BVH child is in its rest relation to the parent). Toes stay at zero. Unmapped joints inside a
   chain (Bandai has no spine2) share the bend equally; other unmapped joints keep a zero rotation. A joint on its
   parent's origin (cgspeed's LowerBack, LHipJoint, Neck: OFFSET 0 0 0) gives no direction: the parent aims at the
   next mapped joint down instead. A wrist, ankle or head the take lacks sits on its parent's End Site. Last, the
   spine and collars turn together so that the trunk line (mid-hip to mid-shoulder) points where the take's does:
   with the aimed limbs, the take's knee and elbow flexion and hip and shoulder angles to the trunk are kept
   (measured by :mod:`dposer.eval.convert_angles`).
5. Local rotations become axis-angle; ``trans`` puts the built-in skeleton's pelvis where the take's is (metres).

The fit error is the angle between each mapped bone of the built-in skeleton (joint to its nearest mapped
descendant) and the same bone in the take, in degrees: mean and max over bones and frames, and per bone (a bone of
zero length in the take has no direction and is left out). It measures what the
skeletons' different proportions and the solver's choices leave (e.g. Bandai's hips sit higher in the pelvis than
SMPL-X's), and exposes a wrong name map (tens of degrees).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from . import bvh as bvh_io
from ..spec import layout
from ..spec.skeleton import REST_OFFSETS, rest_joints
from .convert_names import END_SITE_JOINTS, body_map, chest_at_branch, presets  # noqa: F401 (name API)

NB = 22  # body joints: pelvis + the 21 of body_pose
BODY = layout.JOINT_NAMES[:NB]
PARENT = np.asarray(layout.PARENTS[:NB])
J = {n: i for i, n in enumerate(BODY)}
REST = rest_joints(dtype=np.float32)[:NB].astype(np.float64)
OFFSETS = REST_OFFSETS[:NB].astype(np.float64)
CHILDREN = {j: [c for c in range(NB) if PARENT[c] == j] for j in range(NB)}

# Unit candidates (metres per file unit) and the name written to the output; "cmu" is the CMU ASF length unit
# (1/0.45 inch) that the CMU BVH releases (cgspeed, ASF-named) keep.
UNITS = {"m": 1.0, "cm": 0.01, "inch": 0.0254, "cmu": 0.0254 / 0.45, "mm": 0.001}
# A bone shorter than this (metres, mean over frames) has no direction: helper joints at OFFSET 0 0 0 (LHipJoint,
# cgspeed's LowerBack, Neck and LeftShoulder) sit on their parent. Aims and fit errors look past them.
MIN_BONE = 0.01
SPINE = ("spine1", "spine2", "spine3", "neck", "head")


# ---------------------------------------------------------------------------------------------------------
# small vector helpers on (..., 3) arrays

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _triad(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3), columns: primary, secondary made orthogonal to it, their cross product."""
    e1 = _unit(primary)
    e2 = _unit(secondary - (secondary * e1).sum(-1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def _align(primary, secondary, rest_primary, rest_secondary) -> np.ndarray:
    """World rotations taking the rest directions onto the targets: primary exactly, secondary as near as it goes."""
    rest = _triad(np.broadcast_to(rest_primary, primary.shape), np.broadcast_to(rest_secondary, primary.shape))
    return _triad(primary, secondary) @ np.swapaxes(rest, -1, -2)


def _hinge(u: np.ndarray, f: np.ndarray, ur: float, fr: float, sign: float, fallback: np.ndarray,
           full_deg: float = 15.0) -> np.ndarray:
    """World direction of the hinge axis of a two-bone limb whose lower joint bends about one local axis of the
    upper joint (knee: x, elbow: y): the unit h with h.u = ur and h.f = fr (u, f: world directions of the upper
    and lower bone; ur, fr: the hinge-axis components of the rest-pose bone directions, which are not quite
    perpendicular to it), on the side ``sign`` of u x f where a bend (not a hyperextension) puts it. A limb bent
    less than ``full_deg`` has an ill-defined plane: h is blended towards ``fallback``."""
    g = (u * f).sum(-1, keepdims=True)
    n = np.cross(u, f)
    n2 = np.maximum((n * n).sum(-1, keepdims=True), 1e-12)
    a = (ur - g * fr) / np.maximum(1 - g * g, 1e-12)
    b = (fr - g * ur) / np.maximum(1 - g * g, 1e-12)
    inplane = a * u + b * f
    c = sign * np.sqrt(np.clip(1 - (inplane * inplane).sum(-1, keepdims=True), 0, None) / n2)
    h = _unit(inplane + c * n)
    w = np.clip(np.sqrt(n2) / np.sin(np.radians(full_deg)), 0.0, 1.0)
    return w * h + (1 - w) * _unit(fallback)


def _up_rotation(up: np.ndarray) -> np.ndarray:
    """The world rotation turning the take's up axis (the signed world axis nearest ``up``) onto +Y."""
    axis = int(np.argmax(np.abs(up)))
    src = np.zeros(3)
    src[axis] = np.sign(up[axis])
    y = np.array([0.0, 1.0, 0.0])
    if np.allclose(src, y):
        return np.eye(3)
    if np.allclose(src, -y):
        return np.diag([1.0, -1.0, -1.0])  # 180 deg about X
    rv = np.cross(src, y) * (np.pi / 2)  # src is perpendicular to y
    return Rotation.from_rotvec(rv).as_matrix()


@dataclass
class _Take:
    P: np.ndarray  # (F, 22, 3) world positions of mapped joints (nan elsewhere), metres, Y up
    Q: np.ndarray  # (F, 22, 3, 3) world rotations of the mapped BVH joints (identity elsewhere)
    mapped: np.ndarray  # (22,) bool

    def degenerate(self, a: int, b: int) -> bool:
        """Whether the take's bone from joint a to joint b is too short to have a direction."""
        return bool(np.linalg.norm(self.P[:, b] - self.P[:, a], axis=-1).mean() < MIN_BONE)


def _chain_length(bvh: bvh_io.Bvh, a: int, b: int) -> float:
    """Length of the BVH bone chain from joint a down to its descendant b (sum of offsets; file units)."""
    total = 0.0
    k = b
    while k != a and k >= 0:
        total += float(np.linalg.norm(bvh.joints[k].offset))
        k = bvh.joints[k].parent
    if k != a:
        raise bvh_io.BvhError(f"{bvh.joints[b].name!r} is not below {bvh.joints[a].name!r} in the hierarchy")
    return total


def _size(chain, top: str) -> float:
    """Body size for unit detection: mean leg length (hip to ankle) + the pelvis-to-``top`` length."""
    legs = 0.5 * (chain("left_hip", "left_ankle") + chain("right_hip", "right_ankle"))
    return legs + chain("pelvis", top)


def _detect_unit(bvh: bvh_io.Bvh, idx: dict[str, int]) -> tuple[str, float]:
    """(unit name, metres per file unit): the candidate unit that brings the skeleton's size (legs + pelvis to
    head, summed bone lengths: independent of the rest pose) nearest the built-in skeleton's over the same joints."""
    def ref_chain(a, b=None):
        a, b = ("pelvis", a) if b is None else (a, b)
        total, k = 0.0, J[b]
        while k != J[a]:
            total += float(np.linalg.norm(OFFSETS[k]))
            k = PARENT[k]
        return total

    def bvh_chain(a, b=None):
        a, b = ("pelvis", a) if b is None else (a, b)
        if b not in idx:  # a joint on its parent's End Site
            end = bvh.joints[idx[END_SITE_JOINTS[b]]].end_site
            return bvh_chain(a, END_SITE_JOINTS[b]) + float(np.linalg.norm(end))
        return _chain_length(bvh, idx[a], idx[b])

    top = next((n for n in ("head", "neck", "spine3", "spine2", "spine1") if n in idx), None)
    if top is None:
        raise bvh_io.BvhError("cannot size the skeleton: no head, neck or spine joint is mapped")
    size, ref = _size(bvh_chain, top), _size(ref_chain, top)
    if not size > 0:
        raise bvh_io.BvhError("the skeleton has zero size (all OFFSETs zero?)")
    name = min(UNITS, key=lambda u: abs(np.log(size * UNITS[u] / ref)))
    return name, UNITS[name]


def mapped_take(bvh: bvh_io.Bvh, bone_map: dict[str, str]) -> tuple[_Take, dict]:
    """The take's mapped joints in the body's Y-up frame, metres; info: ``unit``, ``metres_per_unit``, ``up_axis``
    and ``up_rotation`` (3, 3), the world rotation from the file's axes to the Y-up frame."""
    idx = {j: bvh.index(b) for j, b in bone_map.items()}
    glob, pos = bvh.global_transforms()
    F = bvh.num_frames
    P = np.full((F, NB, 3), np.nan)
    Q = np.broadcast_to(np.eye(3), (F, NB, 3, 3)).copy()
    mapped = np.zeros(NB, bool)
    for j, k in idx.items():
        P[:, J[j]] = pos[:, k]
        Q[:, J[j]] = glob[:, k]
        mapped[J[j]] = True
    for j, parent in END_SITE_JOINTS.items():  # a missing joint on its parent's End Site: placed, not rotated
        end = bvh.joints[idx[parent]].end_site if parent in idx and j not in idx else None
        if end is not None and np.linalg.norm(end) > 0:
            k = idx[parent]
            P[:, J[j]] = pos[:, k] + glob[:, k] @ np.asarray(end)
            Q[:, J[j]] = glob[:, k]
            mapped[J[j]] = True
    top = next((J[n] for n in ("head", "neck", "spine3", "spine2", "spine1") if mapped[J[n]]), None)
    if top is None:
        raise bvh_io.BvhError("no spine, neck or head joint is mapped: cannot tell the body's up axis")
    up = np.mean(P[:, top] - P[:, 0], axis=0)
    A = _up_rotation(up)
    unit, scale = _detect_unit(bvh, idx)
    P = np.einsum("ij,fkj->fki", A, P) * scale
    Q = A @ Q
    return _Take(P, Q, mapped), {"unit": unit, "metres_per_unit": scale, "up_axis": "xyz"[int(np.argmax(np.abs(up)))],
                                 "up_rotation": A}


def _mapped_descendant(j: int, mapped: np.ndarray) -> tuple[int | None, list[int]]:
    """Nearest mapped joint down j's single-child chain: (joint, the unmapped joints passed on the way)."""
    passed = []
    k = j
    while True:
        kids = CHILDREN[k]
        if not kids:
            return None, passed
        if len(kids) > 1:
            if k == j:  # a branching joint aims along its spine child
                kids = [c for c in kids if BODY[c] in SPINE] or kids[:1]
            else:
                return None, passed
        k = kids[0]
        if mapped[k]:
            return k, passed
        passed.append(k)


# Joints aimed at their mapped child by positions (TRIAD); the others (neck, head, wrists) copy the BVH's rotation
# relative to the parent. Aiming the neck would copy the BVH's joint *placement*, which differs from SMPL-X's
# (Bandai's neck and head joints sit on a straight line with the chest; the built-in skeleton's head joint sits
# well forward of its neck): an upright Bandai head came out 35 deg tipped back when aimed. Copying the spine
# instead failed the other way: Bandai's Spine joint turns 90 deg about the body axis against its Hips.
AIMED = frozenset(J[n] for n in ("pelvis", "spine1", "spine2", "spine3", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                                 "right_ankle", "left_collar", "right_collar", "left_shoulder", "right_shoulder",
                                 "left_elbow", "right_elbow"))
# Toes stay at zero: their BVH rest relation to the foot is not SMPL-X's (Bandai's straight foot-and-toes line
# came out as 18 deg of constant curl) and AMASS's SMPL-X fits barely move them (std 1-3 deg).
ZERO = frozenset(J[n] for n in ("left_foot", "right_foot"))


def solve(take: _Take) -> np.ndarray:
    """World rotations (F, 22, 3, 3) of the built-in skeleton's body joints for a take's mapped joints."""
    P, Q, mapped = take.P, take.Q, take.mapped
    F = P.shape[0]
    G = np.broadcast_to(np.eye(3), (F, NB, 3, 3)).copy()
    done = np.zeros(NB, bool)
    X, Y, Z = np.eye(3)
    T = lambda m: np.swapaxes(m, -1, -2)  # noqa: E731 - transpose of stacked matrices

    hip_line = _unit(P[:, J["left_hip"]] - P[:, J["right_hip"]])
    shoulder_line = _unit(P[:, J["left_shoulder"]] - P[:, J["right_shoulder"]])
    rest_hip_line = _unit(REST[J["left_hip"]] - REST[J["right_hip"]])
    rest_shoulder_line = _unit(REST[J["left_shoulder"]] - REST[J["right_shoulder"]])

    def secondary(j: int) -> tuple[np.ndarray, np.ndarray]:
        """(target, rest) second direction that fixes joint j's twist about its bone."""
        name = BODY[j]
        gp = G[:, PARENT[j]] if j else None
        if name == "pelvis":
            return hip_line, rest_hip_line
        if name in ("spine1", "spine2", "spine3"):  # hip and shoulder lines, blended up the spine
            w = {"spine1": 1 / 3, "spine2": 2 / 3, "spine3": 1.0}[name]
            return (1 - w) * hip_line + w * shoulder_line, (1 - w) * rest_hip_line + w * rest_shoulder_line
        side = name.split("_")[0]
        if name.endswith("_hip"):  # the knee's hinge axis; the foot (or the pelvis) when the leg is straight
            k, a, foot = J[f"{side}_knee"], J[f"{side}_ankle"], J[f"{side}_foot"]
            thigh, shin = _unit(P[:, k] - P[:, j]), _unit(P[:, a] - P[:, k])
            ur, fr = _unit(REST[k] - REST[j])[0], _unit(REST[a] - REST[k])[0]
            straight = np.cross(_unit(P[:, foot] - P[:, a]), thigh) if mapped[foot] else gp[..., 0]
            return _hinge(thigh, shin, ur, fr, 1.0, straight), X
        if name.endswith("_shoulder"):  # the elbow's hinge axis; the collar's axis when the arm is straight
            e, w = J[f"{side}_elbow"], J[f"{side}_wrist"]
            upper, fore = _unit(P[:, e] - P[:, j]), _unit(P[:, w] - P[:, e])
            ur, fr = _unit(REST[e] - REST[j])[1], _unit(REST[w] - REST[e])[1]
            return _hinge(upper, fore, ur, fr, -1.0 if side == "left" else 1.0, gp[..., 1]), Y
        if name.endswith("_elbow"):  # keeps the elbow a hinge
            return gp[..., 1], Y
        if name.endswith("_collar"):
            return gp[..., 2], Z
        return gp[..., 0], X  # knee, ankle: the parent's left-right axis (minimal twist)

    def share(chain: list[int], r_world: np.ndarray) -> None:
        """Bend the joint chain (parent first) equally so that its last joint gets the world rotation r_world."""
        gp = G[:, PARENT[chain[0]]]
        r = Rotation.from_matrix(T(gp) @ r_world).as_rotvec() / len(chain)
        step = Rotation.from_rotvec(r).as_matrix()
        for k in chain:
            gp = gp @ step
            G[:, k] = gp
        done[chain] = True

    for j in ORDER:
        if j == J["neck"]:  # the trunk is solved up to the shoulders: keep its line before the neck is copied
            G[:, UPPER_TRUNK] = keep_trunk_line(G, P)[:, UPPER_TRUNK]
        if done[j]:
            continue
        gp = G[:, PARENT[j]] if j else np.broadcast_to(np.eye(3), (F, 3, 3))
        if j in ZERO:
            G[:, j] = gp
            done[j] = True
            continue
        if not mapped[j]:
            b, _ = _mapped_descendant(j, mapped)
            if b is None or b in AIMED or j == 0:  # nothing mapped below on this chain: zero rotation
                G[:, j] = gp
                done[j] = True
            continue  # else solved with b (shares b's bend)
        b, passed = _mapped_descendant(j, mapped)
        while b is not None and take.degenerate(j, b):  # a helper joint on j's origin: aim at the next one
            b, _ = _mapped_descendant(b, mapped)
        if j in AIMED and b is not None:
            sec, rest_sec = secondary(j)
            target, rest = P[:, b] - P[:, j], REST[b] - REST[j]
            if BODY[j] == "spine3":  # the chest aims between the shoulders (neck joints sit differently)
                sh = [J["left_shoulder"], J["right_shoulder"]]
                target, rest = P[:, sh].mean(1) - P[:, j], REST[sh].mean(0) - REST[j]
            Gj = _align(target, sec, rest, rest_sec)
            if j:
                share([j] + passed, Gj)
            else:  # the root keeps its orientation; unmapped spine joints above the next mapped one stay straight
                G[:, j] = Gj
                done[j] = True
            continue
        # copy the BVH's rotation relative to the nearest mapped ancestor a; unmapped joints between share it
        a, above = PARENT[j], []
        while a > 0 and not mapped[a]:
            above.insert(0, a)
            a = PARENT[a]
        if not mapped[a]:
            G[:, j] = gp
            done[j] = True
            continue
        share(above + [j], Q[:, j] @ T(Q[:, a]) @ G[:, a])
    return G


# Joints the trunk correction turns: the upper body above the pelvis, without the arms (aimed from the take's bones).
UPPER_TRUNK = np.array([J[n] for n in ("spine1", "spine2", "spine3", "left_collar", "right_collar")])
# Solving order: parents first, the collars before the neck (the trunk line needs the shoulders; the neck and head
# are then copied relative to the corrected chest).
ORDER = [j for j in range(NB) if j < J["neck"]] + [J["left_collar"], J["right_collar"]] + \
    [j for j in range(NB) if j >= J["neck"] and j not in (J["left_collar"], J["right_collar"])]


def _trunk_line(X: np.ndarray) -> np.ndarray:
    """(F, 3) the trunk's line, from the mid-hip point to the mid-shoulder point, of joint positions X (F, 22, 3)."""
    return X[:, [J["left_shoulder"], J["right_shoulder"]]].mean(1) - X[:, [J["left_hip"], J["right_hip"]]].mean(1)


def keep_trunk_line(G: np.ndarray, P: np.ndarray, steps: int = 6) -> np.ndarray:
    """World rotations G with the spine and collars turned together about spine1 (per frame, the
    smallest turn) so that the built-in skeleton's trunk line (mid-hip to mid-shoulder) points where the take's
    does; the pelvis and the limbs keep their world rotations. The two skeletons place hips and shoulders
    differently in the pelvis and chest (and the chest's twist is a guess), so the aimed spine alone leaves the
    trunk a few degrees off, and with it every hip and shoulder angle to the trunk; this keeps those angles as the
    take has them. The turn is about spine1, not the mid-hip point: a few fixed-point steps converge."""
    v = _unit(_trunk_line(P))
    G = G.copy()
    for _ in range(steps):
        u = _unit(_trunk_line(body_joints(G)))
        axis = np.cross(u, v)
        angle = np.arctan2(np.linalg.norm(axis, axis=-1), (u * v).sum(-1))
        C = Rotation.from_rotvec(_unit(axis) * angle[:, None]).as_matrix()
        G[:, UPPER_TRUNK] = C[:, None] @ G[:, UPPER_TRUNK]
    return G


def local_rotations(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient (F, 3), body_pose (F, 63)) axis-angle from world rotations (F, 22, 3, 3)."""
    F = G.shape[0]
    R = np.empty_like(G)
    R[:, 0] = G[:, 0]
    R[:, 1:] = np.swapaxes(G[:, PARENT[1:]], -1, -2) @ G[:, 1:]
    aa = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(F, NB, 3)
    return aa[:, 0], aa[:, 1:].reshape(F, 63)


def body_joints(G: np.ndarray) -> np.ndarray:
    """Joint positions (F, 22, 3) of the built-in skeleton posed by world rotations G (pelvis at its rest place)."""
    X = np.empty(G.shape[:2] + (3,))
    X[:, 0] = OFFSETS[0]
    for j in range(1, NB):
        X[:, j] = X[:, PARENT[j]] + G[:, PARENT[j]] @ OFFSETS[j]
    return X


def fit_error(G: np.ndarray, take: _Take) -> tuple[np.ndarray, list[str]]:
    """((F, bones) angle in degrees between each bone of the posed built-in skeleton and the take's, bone names).
    A bone runs from a mapped joint to its nearest mapped ancestor ("left_hip-left_knee"); a bone the take gives
    no length (a joint on its parent's origin) has no direction and is left out."""
    X = body_joints(G)
    a_idx, b_idx = [], []
    for b in range(1, NB):
        if not take.mapped[b]:
            continue
        a = PARENT[b]
        while a >= 0 and not take.mapped[a]:
            a = PARENT[a]
        if a >= 0 and not take.degenerate(a, b):
            a_idx.append(a)
            b_idx.append(b)
    d = _unit(X[:, b_idx] - X[:, a_idx])
    t = _unit(take.P[:, b_idx] - take.P[:, a_idx])
    err = np.degrees(np.arccos(np.clip((d * t).sum(-1), -1.0, 1.0)))
    return err, [f"{BODY[a]}-{BODY[b]}" for a, b in zip(a_idx, b_idx)]


def fit_report(result: dict, worst: int = 3) -> str:
    """One line on a conversion's fit: mean / max over bones and frames, and the ``worst`` bones by mean."""
    import json

    bones = json.loads(str(result["fit_error_per_bone"]))
    top = sorted(bones.items(), key=lambda kv: -kv[1][0])[:worst]
    return (f"{result['fit_error_deg_mean']:.1f} deg mean / {result['fit_error_deg_max']:.1f} max; worst bones "
            + ", ".join(f"{b} {m:.1f}/{x:.1f}" for b, (m, x) in top))


def convert_bvh(source, skeleton: str | None = None) -> dict:
    """A BVH take (path, BVH text or a parsed :class:`dposer.bvh.Bvh`) as SMPL-X body poses on the built-in skeleton.

    Returns ``global_orient`` (F, 3), ``body_pose`` (F, 63) axis-angle radians, ``trans`` (F, 3) metres (puts the
    built-in skeleton's pelvis where the take's is), ``mocap_framerate`` (fps), ``fit_error_deg_mean`` /
    ``fit_error_deg_max`` (bone-direction misfit), ``fit_error_per_bone`` (JSON {bone: [mean, max]}), ``skeleton`` (the name preset used), ``unit`` (of the file)
    and ``bone_map`` (JSON {SMPL-X joint: BVH joint}). ``skeleton`` names a preset instead of detecting it.
    Raises :class:`dposer.formats.bvh.BvhError` on a malformed file or one whose joints cannot be mapped.
    """
    import json

    take_bvh = source if isinstance(source, bvh_io.Bvh) else bvh_io.read(source)
    ends = frozenset(j.name for k, j in enumerate(take_bvh.joints)
                     if j.end_site is not None and all(c.parent != k for c in take_bvh.joints))
    preset, bone_map = body_map(take_bvh.names, skeleton, ends)
    bone_map = chest_at_branch(take_bvh, bone_map)
    take, info = mapped_take(take_bvh, bone_map)
    G = solve(take)
    orient, body = local_rotations(G)
    err, bones = fit_error(G, take)
    trans = take.P[:, 0] - REST[0]
    return {
        "global_orient": orient.astype(np.float32),
        "body_pose": body.astype(np.float32),
        "trans": trans.astype(np.float32),
        "mocap_framerate": np.float64(take_bvh.fps),
        "fit_error_deg_mean": float(err.mean()),
        "fit_error_deg_max": float(err.max()),
        "fit_error_per_bone": json.dumps({b: [round(float(e.mean()), 2), round(float(e.max()), 2)]
                                          for b, e in zip(bones, err.T)}),
        "skeleton": preset,
        "unit": info["unit"],
        "bone_map": json.dumps({j: bone_map[j] for j in BODY if j in bone_map}),
    }


def save_npz(path: str | os.PathLike, result: dict) -> None:
    """Write a conversion result atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in result.items()})
    os.replace(tmp, path)
