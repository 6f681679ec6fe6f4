# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyframe compatibility helper (blender.md section 5): read and write pose-bone rotation keys in bulk on
Blender 4.2 LTS to 5.x. Needs bpy; the math (rotation modes, continuity) is in :mod:`.rig_math`.

Where F-curves live:

- 4.2/4.3: legacy ``action.fcurves`` (new curves grouped by bone with ``action_group``);
- 4.4/4.5: slotted actions. ``animation_data.action_slot`` is always assigned (a fresh action's legacy
  ``fcurves.new`` would otherwise make an unassigned "XXLegacy Slot" that animates nothing); curves go into the slot's
  channelbag on ``layers[0].strips[0]``, grouped with ``channelbag.groups``;
- 5.0+: ``Action.fcurves`` is gone: channelbag only, ``fcurves.new(data_path, index=, group_name=)``.

Writes are bulk: ``keyframe_points.add(n)`` + ``foreach_set('co', ...)`` then ``fcurve.update()`` (25-60x faster than
``keyframe_insert``). Existing keys at the written frames are overwritten in place (their handle types and
interpolation are kept, free handles move with the value); other keys are kept. Values are written in each bone's
own rotation mode (``rotation_quaternion`` / ``rotation_euler`` / ``rotation_axis_angle``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import bpy
import numpy as np

from . import rig_math as rm

VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]
SLOTTED = VERSION >= (4, 4, 0)
HAS_LEGACY_FCURVES = "fcurves" in bpy.types.Action.bl_rna.properties  # False from 5.0 on
GROUP_NAME_ARG = VERSION >= (5, 0, 0)  # channelbag fcurves.new(..., group_name=)

ROTATION_PROPERTY = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}
FRAME_EPS = 1e-3


def rotation_property(mode: str) -> str:
    """The pose-bone property holding the rotation in ``mode`` (Euler orders -> ``rotation_euler``)."""
    return ROTATION_PROPERTY.get(mode, "rotation_euler")


def rotation_data_path(bone_name: str, mode: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"].{rotation_property(mode)}'


# ---------------------------------------------------------------------------------------------------------
# Action / slot / channelbag dispatch.

def _ensure_slot(obj, action):
    """The object's assigned slot of ``action`` (4.4+), created and assigned when there is none."""
    ad = obj.animation_data
    slot = ad.action_slot
    if slot is None:
        for s in ad.action_suitable_slots:
            slot = s
            break
        if slot is None:
            slot = action.slots.new(id_type="OBJECT", name=obj.name)
        ad.action_slot = slot
    return ad.action_slot


def _find_channelbag(action, slot):
    for layer in action.layers:
        for strip in layer.strips:
            cb = strip.channelbag(slot)
            if cb is not None:
                return cb
    return None


class Channels:
    """The F-curve collection that animates ``obj`` (legacy action F-curves or the assigned slot's channelbag).

    ``create=False``: read-only view (``fcurves`` may be None when the object has no animation yet).
    ``create=True``: action, slot, layer, strip and channelbag are made as needed (call it only when writing).
    """

    def __init__(self, obj, create: bool = False):
        self.obj = obj
        self.action = None
        self.channelbag = None
        self.fcurves = None
        ad = obj.animation_data
        if ad is None or ad.action is None:
            if not create:
                return
            ad = ad or obj.animation_data_create()
            ad.action = bpy.data.actions.new(f"{obj.name}Action")
        self.action = ad.action
        if not SLOTTED:
            self.fcurves = self.action.fcurves
            return
        slot = _ensure_slot(obj, self.action) if create else ad.action_slot
        if slot is None:
            return
        cb = _find_channelbag(self.action, slot)
        if cb is None and create:
            if VERSION >= (5, 0, 0):
                from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

                cb = action_ensure_channelbag_for_slot(self.action, slot)
            else:
                layer = self.action.layers[0] if len(self.action.layers) else self.action.layers.new("Layer")
                strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
                cb = strip.channelbag(slot, ensure=True)
        self.channelbag = cb
        self.fcurves = None if cb is None else cb.fcurves

    def find(self, data_path: str, index: int):
        if self.fcurves is None:
            return None
        return self.fcurves.find(data_path, index=index)

    def ensure(self, data_path: str, index: int, group: str = ""):
        fc = self.find(data_path, index)
        if fc is not None:
            return fc
        if self.fcurves is None:
            raise RuntimeError("Channels(create=False) cannot make F-curves")
        if not SLOTTED:
            return self.fcurves.new(data_path, index=index, action_group=group)
        if GROUP_NAME_ARG:
            return self.fcurves.new(data_path, index=index, group_name=group)
        fc = self.fcurves.new(data_path, index=index)
        if group:
            grp = self.channelbag.groups.get(group) if hasattr(self.channelbag.groups, "get") else None
            if grp is None:
                grp = next((g for g in self.channelbag.groups if g.name == group), None)
            fc.group = grp or self.channelbag.groups.new(group)
        return fc

    def all(self) -> list:
        return [] if self.fcurves is None else list(self.fcurves)


# ---------------------------------------------------------------------------------------------------------
# Reading.

def fcurve_keys(fc) -> np.ndarray:
    """(n, 2) float32 ``co`` of an F-curve's keys."""
    kp = fc.keyframe_points
    co = np.empty(2 * len(kp), dtype=np.float32)
    kp.foreach_get("co", co)
    return co.reshape(-1, 2)


def sample_fcurve(fc, frames: np.ndarray) -> np.ndarray:
    """Values of ``fc`` at ``frames``: straight from the keys when every frame is a key (mocap; foreach_get),
    else ``fc.evaluate`` per frame."""
    co = fcurve_keys(fc)
    frames = np.asarray(frames, dtype=np.float64)
    if len(co):
        idx = np.clip(np.searchsorted(co[:, 0], frames - FRAME_EPS), 0, len(co) - 1)
        if np.all(np.abs(co[idx, 0] - frames) < FRAME_EPS) and not fc.modifiers and not fc.mute:
            return co[idx, 1].astype(np.float64)
    return np.array([fc.evaluate(float(f)) for f in frames], dtype=np.float64)


def bone_rotation_modes(obj, bones: Sequence[str] | None = None) -> list[str]:
    pbs = obj.pose.bones
    return [pb.rotation_mode for pb in (pbs if bones is None else (pbs[b] for b in bones))]


def current_rotation_values(obj, bone: str, mode: str | None = None) -> np.ndarray:
    """The pose bone's rotation values now, in its mode (4 for quaternion / axis-angle, 3 for Euler)."""
    pb = obj.pose.bones[bone]
    return np.array(getattr(pb, rotation_property(mode or pb.rotation_mode)), dtype=np.float64)


def read_rotation_values(obj, bone: str, frames, mode: str | None = None, channels: Channels | None = None):
    """(F, 3 or 4) rotation values of one bone over ``frames`` in its own rotation mode: from its F-curves where
    there are any (per channel), else the pose bone's current value."""
    mode = mode or obj.pose.bones[bone].rotation_mode
    channels = channels or Channels(obj)
    frames = np.asarray(frames, dtype=np.float64)
    now = current_rotation_values(obj, bone, mode)
    dp = rotation_data_path(bone, mode)
    out = np.empty((len(frames), len(now)))
    for i in range(len(now)):
        fc = channels.find(dp, i)
        out[:, i] = sample_fcurve(fc, frames) if fc is not None and len(fc.keyframe_points) else now[i]
    return out


def read_basis_rotations(obj, frames=None, bones: Sequence[str] | None = None) -> np.ndarray:
    """Basis rotation matrices (F, B, 3, 3) of ``bones`` (default all pose bones, in ``obj.pose.bones`` order)
    over ``frames``, each read in its own rotation mode. ``frames=None``: the current pose-bone values (one frame,
    including un-keyed edits). F-curves only: drivers, constraints and NLA are not evaluated."""
    names = [pb.name for pb in obj.pose.bones] if bones is None else list(bones)
    modes = bone_rotation_modes(obj, names)
    n = 1 if frames is None else len(frames)
    out = np.empty((n, len(names), 3, 3))
    channels = Channels(obj)
    for k, (b, mode) in enumerate(zip(names, modes)):
        if frames is None:
            vals = current_rotation_values(obj, b, mode)[None]
        else:
            vals = read_rotation_values(obj, b, frames, mode, channels)
        out[:, k] = rm.rotation_to_matrix(vals, mode)
    return out


def previous_rotation_value(obj, bone: str, frame: float, mode: str | None = None,
                            channels: Channels | None = None) -> np.ndarray | None:
    """The bone's rotation value at ``frame`` if it has a rotation key before it (the seam seed for continuity),
    else None."""
    mode = mode or obj.pose.bones[bone].rotation_mode
    channels = channels or Channels(obj)
    dp = rotation_data_path(bone, mode)
    fcs = [channels.find(dp, i) for i in range(rm.rotation_channels(mode))]
    if not any(fc is not None and len(fc.keyframe_points) and fcurve_keys(fc)[0, 0] < frame for fc in fcs):
        return None
    return read_rotation_values(obj, bone, [frame], mode, channels)[0]


# ---------------------------------------------------------------------------------------------------------
# Writing.

@dataclass
class BoneKeys:
    """New keys of one bone's rotation: ``values`` (F, C) in ``mode`` at ``frames`` (F,)."""

    bone: str
    mode: str
    frames: np.ndarray
    values: np.ndarray


def rotation_keys(bone: str, mode: str, frames, matrices, previous=None) -> BoneKeys:
    """Basis rotation matrices (F, 3, 3) -> continuous values in ``mode`` (quaternion sign / Euler / axis-angle
    continuity, seeded by ``previous``, the value before the range)."""
    vals = rm.rotation_sequence(np.asarray(matrices, dtype=np.float64), mode, previous)
    return BoneKeys(bone, mode, np.asarray(frames, dtype=np.float64), vals)


def _write_channel(fc, frames: np.ndarray, values: np.ndarray, keep_other_handles: bool = False) -> int:
    kp = fc.keyframe_points
    n_old = len(kp)
    co = fcurve_keys(fc).astype(np.float64) if n_old else np.empty((0, 2))
    kept = _handles(fc) if keep_other_handles and n_old else None
    frames = np.asarray(frames, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    changed = np.zeros(n_old, dtype=bool)
    delta = np.zeros(n_old)
    hit = np.zeros(len(frames), dtype=bool)
    if n_old:  # new values at frames that already have a key overwrite that key (vectorised match)
        order = np.argsort(co[:, 0], kind="stable")
        sorted_frames = co[order, 0]
        i = np.minimum(np.searchsorted(sorted_frames, frames - FRAME_EPS), n_old - 1)
        hit = np.abs(sorted_frames[i] - frames) < FRAME_EPS
        k = order[i[hit]]
        delta[k] = values[hit] - co[k, 1]
        co[k, 1] = values[hit]
        changed[k] = True
    new_frames = frames[~hit]
    new_values = values[~hit]
    if changed.any():
        # free/aligned/vector handles follow the value; auto handles are recomputed by update()
        for side in ("handle_left", "handle_right"):
            h = np.empty(2 * n_old, dtype=np.float32)
            kp.foreach_get(side, h)
            h = h.reshape(-1, 2).astype(np.float64)
            h[:, 1] += delta
            kp.foreach_set(side, h.astype(np.float32).ravel())
    n_new = len(new_frames)
    if n_new:
        kp.add(n_new)
        co = np.concatenate([co, np.stack([new_frames, new_values], -1)])
    if n_new or changed.any():
        kp.foreach_set("co", co.astype(np.float32).ravel())
        fc.update()
        if kept is not None:  # update() recomputes auto handles everywhere: the other keys get theirs back
            _restore_handles(fc, kept, frames)
    return n_new + int(changed.sum())


def _handles(fc) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(frames (n,), {side: (n, 2)}) of an F-curve's keys."""
    kp = fc.keyframe_points
    out = {}
    for side in ("handle_left", "handle_right"):
        h = np.empty(2 * len(kp), dtype=np.float32)
        kp.foreach_get(side, h)
        out[side] = h.reshape(-1, 2)
    return fcurve_keys(fc)[:, 0].copy(), out


def _restore_handles(fc, kept, written: np.ndarray) -> None:
    """Put back the handles ``kept`` (:func:`_handles`) of the keys on frames not in ``written``."""
    old_frames, old = kept
    keep = np.ones(len(old_frames), bool)
    if len(written):
        keep = np.abs(old_frames[:, None] - np.asarray(written)[None]).min(1) >= FRAME_EPS
    now_frames, now = _handles(fc)
    idx = np.searchsorted(now_frames, old_frames[keep] - FRAME_EPS)
    for side in now:
        now[side][idx] = old[side][keep]
        fc.keyframe_points.foreach_set(side, now[side].ravel())


write_channel = _write_channel  # one F-curve's keys (frames, values): existing keys on those frames replaced


def write_rotation_keys(obj, keys: Iterable[BoneKeys], keep_other_handles: bool = False) -> int:
    """Write every :class:`BoneKeys` into ``obj``'s action (created when missing) in bulk; returns the number of
    keys written. Build all of ``keys`` first (so a failure before this call leaves the scene unchanged).
    ``keep_other_handles``: the keys on other frames keep their handles exactly (else Blender recomputes their auto
    handles)."""
    keys = list(keys)
    if not keys:
        return 0
    channels = Channels(obj, create=True)
    total = 0
    for bk in keys:
        dp = rotation_data_path(bk.bone, bk.mode)
        vals = np.asarray(bk.values, dtype=np.float64)
        for i in range(vals.shape[1]):
            fc = channels.ensure(dp, i, group=bk.bone)
            total += _write_channel(fc, np.asarray(bk.frames, dtype=np.float64), vals[:, i], keep_other_handles)
    return total


def set_current_rotation(obj, keys: Iterable[BoneKeys], frame: float) -> None:
    """Also show the written values now: set the pose bones' rotation properties to the keys at ``frame`` (the
    depsgraph re-evaluates the action on the next frame change anyway)."""
    for bk in keys:
        sel = np.flatnonzero(np.abs(np.asarray(bk.frames) - frame) < FRAME_EPS)
        if len(sel):
            setattr(obj.pose.bones[bk.bone], rotation_property(bk.mode), [float(x) for x in bk.values[sel[0]]])


def snapshot(obj) -> dict:
    """Every F-curve of ``obj`` -> {(data_path, index): (n, 6) float32 [co, handle_left, handle_right] per key}
    (for checks that the scene is unchanged)."""
    out = {}
    for fc in Channels(obj).all():
        kp = fc.keyframe_points
        cols = []
        for attr in ("co", "handle_left", "handle_right"):
            a = np.empty(2 * len(kp), dtype=np.float32)
            kp.foreach_get(attr, a)
            cols.append(a.reshape(-1, 2))
        out[(fc.data_path, fc.array_index)] = np.concatenate(cols, axis=1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Exact restore of rotation channels from a backup copy of the action (preview cancel).

# Per-key attributes copied on restore: name -> values per key (enums are their integer index).
KEY_ATTRIBUTES = {"co": 2, "handle_left": 2, "handle_right": 2, "interpolation": 1, "handle_left_type": 1,
                  "handle_right_type": 1, "easing": 1, "type": 1, "back": 1, "amplitude": 1, "period": 1}
_INT_ATTRIBUTES = {"interpolation", "handle_left_type", "handle_right_type", "easing", "type"}


def key_attributes(fc) -> dict[str, np.ndarray]:
    """Every :data:`KEY_ATTRIBUTES` of an F-curve's keys (bulk foreach_get)."""
    kp = fc.keyframe_points
    out = {}
    for attr, width in KEY_ATTRIBUTES.items():
        a = np.empty(width * len(kp), dtype=np.int32 if attr in _INT_ATTRIBUTES else np.float32)
        kp.foreach_get(attr, a)
        out[attr] = a
    return out


def set_key_attributes(fc, attrs: dict[str, np.ndarray]) -> None:
    """Replace an F-curve's keys by ``attrs`` (as :func:`key_attributes` gives them), exactly."""
    kp = fc.keyframe_points
    kp.clear()
    kp.add(len(attrs["co"]) // 2)
    for attr in KEY_ATTRIBUTES:
        kp.foreach_set(attr, attrs[attr])
    fc.update()
    for attr in ("handle_left", "handle_right"):  # update() may recompute auto handles: put the saved ones back
        kp.foreach_set(attr, attrs[attr])


def rotation_channels_of(bone: str) -> list[tuple[str, int]]:
    """(data_path, index) of every rotation channel a bone may have (quaternion, axis-angle, Euler)."""
    return [(rotation_data_path(bone, mode), i) for mode in ("QUATERNION", "AXIS_ANGLE", "XYZ")
            for i in range(rm.rotation_channels(mode))]


def action_fcurves(action, obj):
    """The F-curves of ``action`` for ``obj`` (its slot's channelbag on 4.4+, matched by slot identifier), or None."""
    if not SLOTTED:
        return action.fcurves
    ad = obj.animation_data
    ident = ad.action_slot.identifier if ad is not None and ad.action_slot is not None else None
    slot = next((s for s in action.slots if s.identifier == ident), None)
    cb = None if slot is None else _find_channelbag(action, slot)
    return None if cb is None else cb.fcurves


def restore_rotation_channels(obj, backup, bones) -> None:
    """Give ``obj``'s action the rotation channels of ``bones`` exactly as they are in ``backup`` (a copy of the
    action made before the writes): curves made since are removed, changed curves get every key attribute back."""
    src = action_fcurves(backup, obj)
    channels = Channels(obj, create=True)
    for b in bones:
        for dp, i in rotation_channels_of(b):
            old = None if src is None else src.find(dp, index=i)
            fc = channels.find(dp, i)
            if old is None:
                if fc is not None:
                    channels.fcurves.remove(fc)
                continue
            set_key_attributes(fc or channels.ensure(dp, i, group=b), key_attributes(old))


def rotation_values_now(obj, bones) -> dict:
    """{bone: {property: values}} of every rotation property (JSON-friendly), for :func:`set_rotation_values`."""
    pbs = obj.pose.bones
    return {b: {p: [float(x) for x in getattr(pbs[b], p)]
                for p in ("rotation_quaternion", "rotation_axis_angle", "rotation_euler")} for b in bones}


def set_rotation_values(obj, values: dict) -> None:
    for b, props in values.items():
        if b in obj.pose.bones:
            for p, v in props.items():
                setattr(obj.pose.bones[b], p, v)


def action_frame_range(obj) -> tuple[int, int] | None:
    """The frame range of ``obj``'s action (its keys, or its manual range), or None without an action."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None
    start, end = ad.action.frame_range
    return int(round(start)), int(round(end))


def tag_keys(obj, bone: str, mode: str, frames, key_type: str = "EXTREME") -> int:
    """Set the keyframe type (e.g. 'EXTREME', shown in its own colour in the Dope Sheet) of ``bone``'s rotation keys
    on ``frames``; returns how many keys were tagged."""
    channels = Channels(obj)
    frames = np.asarray(sorted(frames), dtype=np.float64)
    n = 0
    dp = rotation_data_path(bone, mode)
    for i in range(4 if mode in ("QUATERNION", "AXIS_ANGLE") else 3):
        fc = channels.find(dp, i)
        if fc is None or not len(frames):
            continue
        co = fcurve_keys(fc)
        hit = np.nonzero(np.abs(co[:, :1] - frames[None]).min(1) < FRAME_EPS)[0]
        for k in hit:
            fc.keyframe_points[int(k)].type = key_type
        n += len(hit)
    return n
