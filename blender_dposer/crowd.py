# SPDX-License-Identifier: GPL-3.0-or-later
"""Crowd layout for Variations: new armatures side by side (spacing from the rig's size), or new actions on the same
rig; every object, action and collection made is recorded so a failure can remove them again. Needs bpy."""
from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector

from . import crowd_root
from . import keyframes as kf
from . import rig_math as rm

def rig_spacing(obj) -> float:
    """Grid spacing for copies of an armature: 1.25 x the largest extent of its rest bones (world units)."""
    pts = np.array([list(b.head_local) + [1.0] for b in obj.data.bones]
                   + [list(b.tail_local) + [1.0] for b in obj.data.bones])
    world = pts @ np.array(obj.matrix_world).T
    extent = float(np.ptp(world[:, :3], axis=0).max())
    return 1.25 * extent if extent > 0 else 1.0


def shift_keys(obj, frames: int) -> None:
    """Move every key of ``obj``'s action (all its F-curves, handles included) ``frames`` later."""
    fcurves = kf.action_fcurves(obj.animation_data.action, obj) if obj.animation_data else None
    if not frames or fcurves is None:
        return
    for fc in fcurves:
        kp = fc.keyframe_points
        for attr in ("co", "handle_left", "handle_right"):
            xy = np.empty(2 * len(kp), dtype=np.float32)
            kp.foreach_get(attr, xy)
            xy[0::2] += frames
            kp.foreach_set(attr, xy)
        fc.update()


def make_variation_rigs(context, obj, variations, frame, spacing, made_objects, made_actions, made_collections,
                        delays=None, roots=None):
    """One copy of ``obj`` (sharing its armature data, with copies of its child objects and of its action) per
    variation, in a new collection, on a grid next to it; each keyed with its variation (on ``frame``, or on every
    frame of an animated rig's range, with its root location keys ``roots[i]`` = (bone, frames, (F, 3))) and its
    action's keys delayed by ``delays[i]`` frames."""
    coll = bpy.data.collections.new(f"{obj.name} variations")
    made_collections.append(coll)
    context.scene.collection.children.link(coll)
    offsets = rm.grid_offsets(len(variations), spacing if spacing > 0 else rig_spacing(obj))
    action = obj.animation_data.action if obj.animation_data is not None else None
    children = [c for c in obj.children]
    names = []
    for i, keys in enumerate(variations):
        rig = obj.copy()
        made_objects.append(rig)
        rig.name = f"{obj.name}.var{i + 1:03d}"
        coll.objects.link(rig)
        if action is not None:  # its own copy of the action (obj.copy() shares it)
            rig.animation_data.action = action.copy()
            made_actions.append(rig.animation_data.action)
        rig.location = obj.location + Vector(offsets[i])
        for child in children:
            c = child.copy()
            made_objects.append(c)
            c.parent = rig
            for m in getattr(c, "modifiers", []):
                if m.type == "ARMATURE" and m.object == obj:
                    m.object = rig
            coll.objects.link(c)
        kf.write_rotation_keys(rig, keys)
        if roots:
            crowd_root.write_location_keys(rig, *roots[i])
        if action is None:
            made_actions.append(rig.animation_data.action)
        delay = delays[i] if delays else 0
        shift_keys(rig, delay)
        kf.set_current_rotation(rig, keys, frame - delay)
        names.append(rig.name)
    return names


def make_variation_actions(obj, variations, made_actions, delays=None, roots=None):
    """One new action per variation on ``obj`` (a copy of its action with the variation keyed on the current frame,
    or on every frame of an animated rig's range with its root location keys ``roots[i]``, delayed by ``delays[i]``
    frames; fake user, so it is saved); the
    armature keeps its own action assigned."""
    ad = obj.animation_data
    had_animation = ad is not None
    original = ad.action if had_animation else None
    slot_id = ad.action_slot.identifier if (kf.SLOTTED and had_animation and ad.action_slot) else None
    base = original.name if original is not None else f"{obj.name}Action"
    names = []
    try:
        for i, keys in enumerate(variations):
            act = original.copy() if original is not None else bpy.data.actions.new(base)
            made_actions.append(act)
            act.name = f"{base}.var{i + 1:03d}"
            act.use_fake_user = True
            if obj.animation_data is None:
                obj.animation_data_create()
            obj.animation_data.action = act
            kf.write_rotation_keys(obj, keys)
            if roots:
                crowd_root.write_location_keys(obj, *roots[i])
            shift_keys(obj, delays[i] if delays else 0)
            names.append(act.name)
    finally:
        if not had_animation:
            obj.animation_data_clear()
        else:
            obj.animation_data.action = original
            if slot_id is not None and original is not None:
                slot = next((s for s in original.slots if s.identifier == slot_id), None)
                if slot is not None:
                    obj.animation_data.action_slot = slot
    return names


# Debugging/tests: the last job request sent ({"args": ..., "backend": ...}).
