# SPDX-License-Identifier: GPL-3.0-or-later
"""The rig profile stored on an armature object: its bone-map preset (auto-detected, or chosen by the user) and
its rest calibration (blender.md 1.5c). The operators that set them (``dposer.calibrate_rest``,
``dposer.show_zero_pose``) are in :mod:`.operators`. No bpy import (it reads the objects it is given); the math
is :mod:`.retarget`.

Both live in custom properties of the armature *object*, so they are saved with the .blend file and undone with it:

- ``dposer_preset``: a preset id of :data:`bone_maps.PRESETS`; absent = auto-detect from the bone names;
- ``dposer_calibration``: JSON ``{"version": 1, "preset": id, "bones": {bone: [w, x, y, z]}}``, each bone's
  armature-space orientation ``M_k`` while the rig shows the SMPL-X zero pose; absent = the rig's rest pose is
  taken as the zero pose (right for SMPL-X rigs, roughly right for T-pose rigs).

Every job reads and writes rotations through :func:`retarget_for`, i.e. through this calibration.
"""
from __future__ import annotations

import json

import numpy as np

from dposer.spec import bone_maps

from . import retarget as rm

PRESET_PROP = "dposer_preset"
CALIBRATION_PROP = "dposer_calibration"


class JobError(Exception):
    """A problem the user can fix (no armature, unknown rig, bad parts, ...): reported as is."""


def rig_from_object(obj) -> rm.Rig:
    bones = obj.data.bones
    names = [b.name for b in bones]
    parents = [b.parent.name if b.parent else None for b in bones]
    rest = np.array([[list(r) for r in b.matrix_local] for b in bones], dtype=np.float64).reshape(-1, 4, 4)
    return rm.Rig(names, parents, rest)


def bone_parents(obj) -> dict[str, str | None]:
    """{bone name: parent bone name or None} of an armature object."""
    return {b.name: (b.parent.name if b.parent else None) for b in obj.data.bones}


def detect_bone_map(obj, names=None):
    """The bone-map Detection of an armature: its stored preset when the user chose one, else the auto-detected
    one; JobError when no preset matches its bone names. Needs only the bone names and parents (cheap enough for
    the panel); the hierarchy corrects limbs the names alone would map a level off (bone_maps.fix_limb_chains)."""
    names = [b.name for b in obj.data.bones] if names is None else list(names)
    parents = bone_parents(obj)
    chosen = obj.get(PRESET_PROP)
    if chosen:
        try:
            return bone_maps.detection_for(str(chosen), names, parents=parents)
        except ValueError as e:
            raise JobError(f"'{obj.name}': {e} (choose another preset in Calibrate Rest)") from None
    det = bone_maps.detect_preset(names, parents=parents)
    if det is None:
        sample = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise JobError(f"Unknown rig '{obj.name}': its bone names ({sample}) match no DPoser bone map (SMPL-X, "
                       "Mixamo, Rigify, CMU/Bandai BVH, SMPL FBX); use Add DPoser Armature or rename the bones")
    return det


def detect_rig(obj):
    """(Rig, Detection) of an armature (see :func:`detect_bone_map`)."""
    rig = rig_from_object(obj)
    return rig, detect_bone_map(obj, rig.names)


def load_calibration(obj) -> dict[str, np.ndarray] | None:
    """The stored calibration {bone: 3x3}, or None when the rig has none."""
    text = obj.get(CALIBRATION_PROP)
    if not text:
        return None
    try:
        data = json.loads(str(text))
        return rm.calibration_from_dict(data["bones"])
    except (ValueError, KeyError, TypeError) as e:
        raise JobError(f"'{obj.name}' has a damaged calibration ({e}); calibrate it again") from None


def save_calibration(obj, preset_id: str, calibration: dict[str, np.ndarray]) -> None:
    obj[CALIBRATION_PROP] = json.dumps({"version": 1, "preset": preset_id,
                                        "bones": rm.calibration_to_dict(calibration)})


def retarget_for(obj, rig: rm.Rig, det, calibration: dict | None = None, require: bool = True) -> rm.Retarget:
    """The rig <-> SMPL-X mapping every job uses: the bone map, C from the object's up axis and the stored
    calibration (or ``calibration``). JobError when the preset needs a calibration the rig does not have."""
    cal = load_calibration(obj) if calibration is None else calibration
    if cal is None and require and det.preset.needs_calibration:
        raise JobError(f"'{obj.name}' ({det.preset.label}) is not calibrated: its rest pose is not the SMPL-X zero "
                       "pose. Pose it in a T-pose (palms down, flat hands) and click Calibrate Rest, or use "
                       "Show Zero Pose (automatic guess) first")
    return rm.Retarget(rig, det.bone_map, C=rm.armature_up_axes(np.array(obj.matrix_world)), calibration=cal)


def profile_text(obj) -> tuple[str, str]:
    """Two panel lines about an armature: its preset, and its calibration state."""
    try:
        det = detect_bone_map(obj)
    except JobError:
        return "Rig: unknown bone names", "Not usable: rename bones or choose a preset"
    how = "chosen" if obj.get(PRESET_PROP) else "detected"
    line1 = f"Rig: {det.preset.label} ({how}, {len(det.bone_map)} bones"
    line1 += f"; partial: no {bone_maps.summarize_joints(det.missing_joints)})" if det.missing_joints else ")"
    try:
        cal = load_calibration(obj)
    except JobError:
        return line1, "Calibration: damaged, calibrate again"
    if cal is not None:
        return line1, f"Calibrated ({sum(b in cal for b in det.bone_map.values())} bones)"
    if det.preset.needs_calibration:
        return line1, "Calibration needed (rest pose is not a T-pose)"
    return line1, "Not calibrated: rest pose used as zero pose"


# EnumProperty items: auto-detect, then every bone-map preset (a constant list: Blender keeps pointers to its strings)
PRESET_ITEMS = [("AUTO", "Auto-detect", "Detect the preset from the bone names")] + [
    (p.id, p.label, p.description) for p in bone_maps.PRESETS.values()]
