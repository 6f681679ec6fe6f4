# SPDX-License-Identifier: GPL-3.0-or-later
"""``dposer.fill_gap``: fill a gap of frames of the active armature's take from the motion around it (the backend's
``fill`` op: SLERP or a cubic rotation spline picked per gap by probes, or the motion prior when one is bundled).
The rotations of the take's action are sent; the filled keys are written on the gap's frames only (every key
outside it stays as it was) and tagged. Driven like the other pose operators (:class:`.operators._JobOperator`):
execute() synchronous, invoke() modal with progress and Esc. Needs bpy; the frame and joint choices are in the
bpy-free :mod:`.fill_frames`."""
from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, IntProperty

from . import fill_frames
from . import keyframes as kf
from . import rig_math as rm
from .jobs import MAX_CLEAN_FRAMES, PoseJob, _selected_bones, active_armature
from .operators import _JobOperator
from .rig_profile import JobError, detect_rig

FILLED_KEY_TYPE = "BREAKDOWN"  # keyframe type of the filled keys: Blender's own type for in-betweens


def fill_frame_range(context, frame_start: int | None, frame_end: int | None) -> tuple[int, int]:
    """The frames to fill: ``frame_start``..``frame_end`` when given (one of them alone: that frame), else the
    scene's preview range; JobError without either."""
    if frame_start is None and frame_end is None:
        scene = context.scene
        if not scene.use_preview_range:
            raise JobError("Fill Gap needs the frames to fill: set the scene's preview range over the gap (Ctrl Alt "
                           "P in the Timeline) or give Start and End")
        return scene.frame_preview_start, scene.frame_preview_end
    start = frame_end if frame_start is None else frame_start
    end = start if frame_end is None else frame_end
    if end < start:
        raise JobError(f"frame_end ({end}) is before frame_start ({start})")
    return start, end


class FillJob(PoseJob):
    """``dposer.fill_gap``: the take's rotations around the gap -> ``fill`` -> keys of the filled bones on the gap's
    frames only. The joints: the selected bones in Pose Mode that drive the root or a body joint, else the whole
    body the rig maps."""

    op = "fill"
    verb = "filled"
    max_frames = MAX_CLEAN_FRAMES
    keep_other_handles = True  # every key outside the gap stays exactly as it was, its handles too

    def __init__(self, context, frame_start: int | None, frame_end: int | None, tag_filled: bool = True):
        obj = active_armature(context)
        start, end = fill_frame_range(context, frame_start, frame_end)
        try:
            first, last = fill_frames.context_frames(start, end, kf.action_frame_range(obj), self.max_frames)
        except ValueError as e:
            raise JobError(str(e)) from None
        rig, det = detect_rig(obj)
        bone_joint = {b: j for j, b in det.bone_map.items()}
        selected = {bone_joint[b] for b in _selected_bones(obj) if b in bone_joint} if obj.mode == "POSE" else set()
        if obj.mode == "POSE" and _selected_bones(obj) and not fill_frames.fill_joints(set(det.bone_map), selected):
            raise JobError("None of the selected bones drives the root or a body joint: select body bones (or none, "
                           "for the whole body)")
        joints = fill_frames.fill_joints(set(det.bone_map), selected)
        if not joints:
            raise JobError(f"The rig '{obj.name}' ({det.preset.label}) maps no body joint to fill")
        self.fill = [(j, det.bone_map[j]) for j in joints]
        obj = self._setup(context, first, last)
        self.start, self.end = start, end
        self.rows = slice(start - first, end - first + 1)
        self.gap_frames = np.arange(start, end + 1, dtype=np.float64)
        render = context.scene.render
        self.args = {"clip": {"global_orient": self.aa[:, 0].copy(), "body_pose": self.aa[:, 1:22].reshape(-1, 63)},
                     "first": start - first, "last": end - first, "parts": joints,
                     "fps": float(render.fps) / float(render.fps_base or 1.0)}
        self.tag = bool(tag_filled)
        self.gaps: list = []
        channels = kf.Channels(obj)
        self.previous = {b: kf.previous_rotation_value(obj, b, start - 1, self.modes[b], channels)
                         for _, b in self.fill}

    def keys_from_result(self, result: dict) -> list[kf.BoneKeys]:
        """The filled joints' new rotations on the gap's frames; every other joint keeps the take's."""
        n = len(self.gap_frames)
        body = np.asarray(result.get("body_pose", ()), dtype=np.float64)
        root = np.asarray(result.get("global_orient", ()), dtype=np.float64)
        if body.shape != (n, 63) or root.shape != (n, 3) or not (np.isfinite(body).all() and np.isfinite(root).all()):
            raise JobError(f"the backend returned {body.shape} body rotations for {n} frames to fill")
        filled = np.concatenate([root[:, None], body.reshape(n, 21, 3)], 1)
        aa = self.aa[self.rows].copy()
        idx = [rm.JOINT_INDEX[j] for j, _ in self.fill]
        aa[:, idx] = filled[:, idx]
        L = self.retarget.basis_from_smplx(rm.axis_angle_to_matrix(aa), current_basis=self.basis[self.rows])
        self.gaps = list(result.get("gaps", ()))
        return [kf.rotation_keys(b, self.modes[b], self.gap_frames, L[:, self.rig.index[b]], self.previous[b])
                for _, b in self.fill]

    def apply(self, context, keys: list[kf.BoneKeys]) -> int:
        n = super().apply(context, keys)
        if self.tag:
            obj = self._armature()
            for k in keys:
                kf.tag_keys(obj, k.bone, k.mode, k.frames, FILLED_KEY_TYPE)
        return n

    def summary(self, n_keys: int) -> str:
        methods = sorted({g.get("method", "?") for g in self.gaps})
        how = f" by {', '.join(methods)}" if methods else ""
        tag = f"; keys tagged '{FILLED_KEY_TYPE}'" if self.tag else ""
        return (f"DPoser: filled {len(self.fill)} bones of '{self.obj_name}' ({self.preset.label}) on frames "
                f"{self.start}-{self.end}{how} ({n_keys} keys{tag})")


class DPOSER_OT_fill_gap(_JobOperator, bpy.types.Operator):
    """Fill a gap of frames of the active armature's take from the motion around it: the selected bones in Pose
    Mode (or the whole body), on the scene's preview range or Start..End; keys outside the gap are not touched"""

    bl_idname = "dposer.fill_gap"
    bl_label = "Fill Gap"
    bl_options = {"REGISTER", "UNDO"}

    frame_start: IntProperty(name="Start", description="First frame to fill (unset: the scene's preview range)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame to fill (unset: the scene's preview range)",
                           options={"SKIP_SAVE"})
    tag_filled: BoolProperty(name="Tag filled keys", default=True,
                             description="Give the filled keys the keyframe type 'Breakdown' so they stand out in "
                                         "the Dope Sheet and Graph Editor")

    def _job_from_props(self, context) -> FillJob:
        start = self.frame_start if self.properties.is_property_set("frame_start") else None
        end = self.frame_end if self.properties.is_property_set("frame_end") else None
        return FillJob(context, start, end, self.tag_filled)


CLASSES = (DPOSER_OT_fill_gap,)
