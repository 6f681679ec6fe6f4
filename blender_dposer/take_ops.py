# SPDX-License-Identifier: GPL-3.0-or-later
"""``dposer.take_to_smplx`` (SMPL-X Armature from Take): with an animated, calibrated rig active, add the DPoser
(SMPL-X) armature beside it, keyed over the scene range with the take's body motion and root motion, ready for
Complete (a rig without finger bones cannot be completed itself). Needs bpy; the math is :mod:`.take_smplx`.

The take is read frame by frame from the evaluated rig (constraints and IK count); ``invoke()`` does it from a
modal timer with status-bar progress and Esc to cancel, ``execute()`` in one go (scripts, tests). Nothing is added
before every frame is read; the run is one undo step, and a cancel or an error leaves the scene as it was.
"""
from __future__ import annotations

import bpy
import numpy as np
from bpy.props import FloatVectorProperty, StringProperty

from . import keyframes as kf
from . import retarget as rm
from . import rig_profile as rp
from . import take_smplx as ts
from .jobs import JobError, active_armature
from .operators import _ArmaturePoll
from .reports import report_exception, set_progress

FRAMES_PER_TICK = 10  # frames read per timer tick of the modal run


class TakeReader:
    """The source rig's take over the scene range, read one frame at a time."""

    def __init__(self, context):
        obj = active_armature(context)
        if obj.animation_data is None or obj.animation_data.action is None:
            raise JobError(f"'{obj.name}' has no animation: SMPL-X Armature from Take copies a take's motion")
        rig, det = rp.detect_rig(obj)
        self.retarget = rp.retarget_for(obj, rig, det)  # refuses an uncalibrated rig that needs a calibration
        if "pelvis" not in det.bone_map:
            raise JobError(f"'{obj.name}' ({det.preset.label}) has no pelvis bone: the root motion cannot be read")
        self.obj_name, self.rig, self.pelvis = obj.name, rig, det.bone_map["pelvis"]
        scene = context.scene
        self.frames = np.arange(scene.frame_start, scene.frame_end + 1)
        self.frame_before = scene.frame_current
        self.pose = np.empty((len(self.frames), len(rig), 3, 3))
        self.pelvis_world = np.empty((len(self.frames), 3))
        self.done = 0
        mw = np.array(obj.matrix_world)
        self.matrix_world = mw
        heads = {j: mw[:3, :3] @ np.array(obj.data.bones[b].head_local) + mw[:3, 3] for j, b in det.bone_map.items()}
        self.scale = ts.leg_scale(heads, rm.rest_joints())

    def step(self, context, count: int) -> bool:
        """Read the next ``count`` frames; True when every frame is read."""
        obj = bpy.data.objects.get(self.obj_name)
        if obj is None:
            raise JobError(f"the armature '{self.obj_name}' is gone")
        scene = context.scene
        for f in self.frames[self.done:self.done + count]:
            scene.frame_set(int(f))
            i = self.done
            for k, name in enumerate(self.rig.names):
                self.pose[i, k] = np.array(obj.pose.bones[name].matrix)[:3, :3]
            head = np.array(obj.pose.bones[self.pelvis].head)
            self.pelvis_world[i] = self.matrix_world[:3, :3] @ head + self.matrix_world[:3, 3]
            self.done += 1
        return self.done >= len(self.frames)

    def restore_frame(self, context) -> None:
        context.scene.frame_set(int(self.frame_before))


def build_armature(context, reader: TakeReader, name: str, offset) -> tuple[object, int]:
    """Add the DPoser armature beside the take's rig and key it with the take; returns (object, keys written)."""
    R = ts.body_rotations(reader.retarget.smplx_from_pose(reader.pose))  # (F, 55, 3, 3)
    src = bpy.data.objects[reader.obj_name]
    rot = ts.object_rotation(reader.matrix_world, reader.retarget.C)
    origin = reader.matrix_world[:3, 3] + np.asarray(offset, dtype=np.float64)
    if context.mode != "OBJECT":  # the rig may be in Pose Mode; a new armature is added in Object Mode
        bpy.ops.object.mode_set(mode="OBJECT")
    if bpy.ops.dposer.add_armature(name=name) != {"FINISHED"}:
        raise JobError("could not add the DPoser armature")
    obj = context.active_object
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, origin
    obj.matrix_world = [list(r) for r in m]
    rig, det = rp.detect_rig(obj)
    target = rm.Retarget(rig, det.bone_map, C=rm.armature_up_axes(m))
    L = target.basis_from_smplx(R)
    keys = [kf.rotation_keys(j, "QUATERNION", reader.frames, L[:, rig.index[det.bone_map[j]]])
            for j in ts.BODY_JOINTS]
    n = kf.write_rotation_keys(obj, keys)
    bone = obj.data.bones["pelvis"]
    rest = np.array(bone.matrix_local)
    loc = ts.pelvis_locations(reader.pelvis_world, reader.matrix_world[:3, 3], origin, rot, reader.scale,
                              rest[:3, 3], rest[:3, :3])
    channels = kf.Channels(obj, create=True)
    for i in range(3):
        fc = channels.ensure('pose.bones["pelvis"].location', i, group="pelvis")
        n += kf._write_channel(fc, reader.frames.astype(np.float64), loc[:, i])
    obj["dposer_take_source"] = src.name
    return obj, n


class DPOSER_OT_take_to_smplx(_ArmaturePoll, bpy.types.Operator):
    """Add a DPoser (SMPL-X) armature beside the active animated, calibrated rig, keyed over the scene range with
    its body and root motion; then Complete can add fingers (the rig itself may have no finger bones)"""

    bl_idname = "dposer.take_to_smplx"
    bl_label = "SMPL-X Armature from Take"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", default="DPoser Take")
    offset: FloatVectorProperty(name="Offset", size=3, default=(1.0, 0.0, 0.0), subtype="TRANSLATION",
                                description="Where the new armature stands, from the take's rig (metres)")

    _reader = None
    _timer = None

    def _finish(self, context, reader: TakeReader) -> set:
        reader.restore_frame(context)
        obj, n = build_armature(context, reader, self.name, self.offset)
        context.scene.frame_set(int(reader.frame_before))
        self.report({"INFO"}, f"DPoser: added '{obj.name}' keyed from '{reader.obj_name}' over frames "
                              f"{int(reader.frames[0])}-{int(reader.frames[-1])} ({n} keys); select it and "
                              "Complete the hands")
        return {"FINISHED"}

    def execute(self, context):
        reader = None
        try:
            reader = TakeReader(context)
            wm = context.window_manager
            wm.progress_begin(0, len(reader.frames))
            try:
                while not reader.step(context, FRAMES_PER_TICK):
                    wm.progress_update(reader.done)
            finally:
                wm.progress_end()
            return self._finish(context, reader)
        except Exception as e:  # noqa: BLE001 - reported; nothing was added
            if reader is not None:
                reader.restore_frame(context)
            return report_exception(self, e)

    def invoke(self, context, event):
        try:
            self._reader = TakeReader(context)
        except Exception as e:  # noqa: BLE001
            return report_exception(self, e)
        self._timer = context.window_manager.event_timer_add(0.01, window=context.window)
        context.window_manager.modal_handler_add(self)
        set_progress(context, 0.0, "DPoser: reading the take... (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def _end(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        set_progress(context, None)

    def modal(self, context, event):
        reader = self._reader
        if event.type == "ESC":
            self._end(context)
            reader.restore_frame(context)
            self.report({"WARNING"}, "DPoser: cancelled, nothing was added")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            if not reader.step(context, FRAMES_PER_TICK):
                set_progress(context, reader.done / len(reader.frames),
                              f"DPoser: reading frame {reader.done}/{len(reader.frames)} (Esc to cancel)")
                return {"RUNNING_MODAL"}
            self._end(context)
            return self._finish(context, reader)
        except Exception as e:  # noqa: BLE001
            self._end(context)
            reader.restore_frame(context)
            return report_exception(self, e)


CLASSES = (DPOSER_OT_take_to_smplx,)
