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


def clean_bones(obj, frame_start: int, frame_end: int, fps: float, exclude=()):
    """(keys to write, repaired) for every animated bone of ``obj`` over frame_start..frame_end except ``exclude``.
    ``repaired``: dicts bone, kind, first, last (scene frames). Nothing is written here."""
    frames = np.arange(int(frame_start), int(frame_end) + 1, dtype=np.float64)
    bones = animated_bones(obj, frames, exclude)
    if len(frames) < 6 or not bones:
        return [], []
    channels = kf.Channels(obj)
    modes = kf.bone_rotation_modes(obj, bones)
    vals = [kf.read_rotation_values(obj, b, frames, m, channels) for b, m in zip(bones, modes)]
    q = np.stack([rm.matrix_to_quaternion(rm.rotation_to_matrix(v, m)) for v, m in zip(vals, modes)], 1)
    out, rep = channel_clean.clean(q, fps, parents=bone_parents(obj, bones))
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
