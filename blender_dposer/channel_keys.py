"""Clean every animated bone of a rig in its own rotation curves, inside Blender (NumPy only, no backend): the
bones the prior does not drive (helper joints, extra spine and neck bones, fingers, props) and twists about a
bone's own axis. Used by Clean after the prior's keys are written, in the same undo step.

Each bone's rotation over the range is read from its F-curves in its own mode, cleaned by
:mod:`dposer.tasks.channel_clean` (the backend's NumPy-only cleaner, from the ``dposer`` package the zip bundles),
and written back
only where it changed: the repaired frames of a fault, or, when the take has jitter, every frame of the bones that
move. Keys on other frames and other bones are left as they are.
"""
from __future__ import annotations

import numpy as np

from dposer.tasks import channel_clean

from . import keyframes as kf
from . import rig_math as rm


def animated_bones(obj, frames: np.ndarray, exclude=()) -> list[str]:
    """Pose bones of ``obj`` with rotation keys whose rotation changes over ``frames`` (``exclude``: names left out)."""
    channels = kf.Channels(obj)
    out = []
    for pb in obj.pose.bones:
        if pb.name in exclude:
            continue
        dp = kf.rotation_data_path(pb.name, pb.rotation_mode)
        fcs = [channels.find(dp, i) for i in range(rm.rotation_channels(pb.rotation_mode))]
        if any(fc is not None and len(fc.keyframe_points) for fc in fcs):
            vals = kf.read_rotation_values(obj, pb.name, frames, pb.rotation_mode, channels)
            if np.ptp(vals, axis=0).max() > 0:
                out.append(pb.name)
    return out


def twist_share(R_before: np.ndarray, R_after: np.ndarray) -> float:
    """Share (0-1) of the change R_before -> R_after (pose-bone basis rotations, (n, 3, 3)) that turns the bone
    about its own axis (the basis' Y), weighted by angle over the frames."""
    aa = rm.matrix_to_axis_angle(rm.transpose(R_before) @ R_after)
    return float(np.abs(aa[:, 1]).sum() / max(np.linalg.norm(aa, axis=-1).sum(), 1e-12))


def has_own_axis(bone) -> bool:
    """Whether a bone's Y axis is a direction of the rig (it has children, or a length of at least a quarter of its
    parent's), not an importer's stand-in for a zero-length end (e.g. a BVH ``End Site`` of ``OFFSET 0 0 0``)."""
    return bool(bone.children) or bone.parent is None or bone.length >= 0.25 * bone.parent.length


def bone_parents(obj, bones: list[str]) -> np.ndarray:
    """(B,) for each of ``bones`` (pose bone names of ``obj``), the index in ``bones`` of its nearest ancestor among
    them, -1 for none: the skeleton the channel cleaner's companion rule walks."""
    pos = {name: i for i, name in enumerate(bones)}
    out = np.full(len(bones), -1, dtype=int)
    for i, name in enumerate(bones):
        p = obj.pose.bones[name].parent
        while p is not None and p.name not in pos:
            p = p.parent
        out[i] = -1 if p is None else pos[p.name]
    return out


def clean_bones(obj, frame_start: int, frame_end: int, fps: float, exclude=(), accept=None):
    """(keys to write, repaired) for every animated bone of ``obj`` over frame_start..frame_end except ``exclude``.
    ``repaired``: dicts bone, kind, first, last (scene frames). Nothing is written here. ``accept(bone, frames,
    R_before, R_after) -> bool`` (when given, and the take is not smoothed) decides for each repaired fault whether
    its keys are kept."""
    frames = np.arange(int(frame_start), int(frame_end) + 1, dtype=np.float64)
    bones = animated_bones(obj, frames, exclude)
    if len(frames) < 6 or not bones:
        return [], []
    channels = kf.Channels(obj)
    modes = kf.bone_rotation_modes(obj, bones)
    vals = [kf.read_rotation_values(obj, b, frames, m, channels) for b, m in zip(bones, modes)]
    q = np.stack([rm.matrix_to_quaternion(rm.rotation_to_matrix(v, m)) for v, m in zip(vals, modes)], 1)
    out, rep = channel_clean.clean(q, fps, parents=bone_parents(obj, bones))
    if accept is not None and not rep.smoothed:
        drop, keep = np.zeros(rep.bad.shape, bool), np.zeros(rep.bad.shape, bool)
        for kind, b, a, e in rep.events:
            R0, R1 = (rm.quaternion_to_matrix(x[a:e + 1, b]) for x in (q, out))
            (keep if accept(bones[b], frames[a:e + 1], R0, R1) else drop)[a:e + 1, b] = True
        drop &= ~keep
        rep.bad &= ~drop
        out[drop] = q[drop]
        rep.events = [ev for ev in rep.events if not drop[ev[2], ev[1]]]
    keys = []
    for i, (bone, mode) in enumerate(zip(bones, modes)):
        cells = rep.bad[:, i] | (np.any(out[:, i] != q[:, i], axis=-1) if rep.smoothed else False)
        if not cells.any():
            continue
        first = int(np.flatnonzero(cells)[0])
        previous = vals[i][first - 1] if first > 0 else None
        keys.append(kf.rotation_keys(bone, mode, frames[cells], rm.quaternion_to_matrix(out[cells, i]), previous))
    repaired = [{"bone": bones[b], "kind": kind, "first": int(frames[a]), "last": int(frames[e])}
                for kind, b, a, e in rep.events]
    return keys, repaired


TWIST_SHARE = 0.7  # a repair on a prior-driven bone that is mostly a turn about the bone's axis is kept
MOVED_DEG = 1.0  # the prior's keys "moved" a bone on a frame where they turn it by more than this


def changed_frames(obj, keys: kf.BoneKeys) -> np.ndarray:
    """(F,) bool: the frames of ``keys`` where they turn the bone by more than MOVED_DEG from its current keys."""
    R0 = rm.rotation_to_matrix(kf.read_rotation_values(obj, keys.bone, keys.frames, keys.mode), keys.mode)
    R1 = rm.rotation_to_matrix(np.asarray(keys.values, np.float64), keys.mode)
    return np.degrees(np.linalg.norm(rm.matrix_to_axis_angle(rm.transpose(R0) @ R1), axis=-1)) > MOVED_DEG
