# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: ``dposer.add_armature``, ``dposer.calibrate_rest``, ``dposer.show_zero_pose``, ``dposer.complete``,
``dposer.refine``, ``dposer.random_pose``, ``dposer.clean``, ``dposer.vary``, ``dposer.test_backend``. Needs bpy.

Each pose operator is one :class:`.jobs.PoseJob` subclass (validate + snapshot the pose through the rig's bone map and
calibration -> one backend request -> new keys -> write them) driven two ways by :class:`_JobOperator`:
``execute()`` blocks until the backend answers (scripts, background mode, tests); ``invoke()`` (the UI) submits the
same request and polls the backend from a modal timer, with status-bar progress and Esc to cancel (blender.md
4.4-4.5). All new data is built before anything is written, so an error or a cancel leaves the scene unchanged,
and a finished run is one undo step. The hypothesis preview of ``dposer.complete`` is :mod:`.preview`.
"""
from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from dposer.spec import bone_maps

from . import keyframes as kf
from . import params as P
from . import preview
from . import rig_profile as rp
from . import rig_math as rm
from .backend_client import BackendError
from .jobs import (MAX_CLEAN_FRAMES, MAX_FRAMES, REPAIRED_KEY_TYPE, CleanJob, CompleteJob, PoseJob,
    RandomPoseJob, RefineJob, VaryJob, active_armature, check_param, clean_frame_range, locked_joints)
from .rig_profile import PRESET_ITEMS, JobError, detect_rig, retarget_for, rig_from_object  # noqa: F401
from .reports import report_exception, set_progress
from .session import get_backend, status_text


def _frame_args(op):
    if not op.properties.is_property_set("frame_start") and not op.properties.is_property_set("frame_end"):
        return None, None
    start = op.frame_start if op.properties.is_property_set("frame_start") else op.frame_end
    end = op.frame_end if op.properties.is_property_set("frame_end") else start
    return start, end


class _ArmaturePoll:
    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None:
            cls.poll_message_set("No active object: select an armature")
            return False
        if obj.type != "ARMATURE":
            cls.poll_message_set(f"The active object '{obj.name}' is not an armature")
            return False
        if context.mode not in ("OBJECT", "POSE"):
            cls.poll_message_set("Switch to Object or Pose Mode")
            return False
        return True


class _JobOperator(_ArmaturePoll):
    """execute() (synchronous) and invoke()/modal() (timer, progress, Esc) around a :class:`PoseJob` built by
    ``_job_from_props``; one undo step, and the scene is unchanged on any error or a cancel."""

    _params: dict = {}  # property name -> params.Param, checked before any work (out of range: refused)
    _job = None
    _rid = None
    _timer = None
    _backend = None
    _cancel_requested = False

    def _checked_job(self, context) -> PoseJob:
        """The job, after refusing any property out of its declared range (a script's values are not clamped)."""
        for name, param in self._params.items():
            check_param(param, getattr(self, name))
        return self._job_from_props(context)

    def _finish(self, context, job: PoseJob, result: dict) -> set:
        keys = job.keys_from_result(result)  # all new key data first ...
        n = job.apply(context, keys)  # ... then one write
        for warning in getattr(job, "warnings", ()):
            self.report({"WARNING"}, f"DPoser: {warning}")
        self.report({"INFO"}, job.summary(n))
        return {"FINISHED"}

    # -- synchronous: scripts, background mode, tests ---------------------------------------------------------
    def execute(self, context):
        wm = context.window_manager
        try:
            job = self._checked_job(context)
            backend = get_backend(context)
            backend.wait_ready()
            wm.progress_begin(0, 100)
            try:
                result = backend.call(job.op, job.args, on_progress=lambda m: wm.progress_update(
                    int(100 * m.get("done", 0) / max(1, m.get("total", 1)))))
            finally:
                wm.progress_end()
            return self._finish(context, job, result)
        except Exception as e:  # noqa: BLE001 - every failure is reported and leaves the scene unchanged
            return report_exception(self, e)

    # -- modal: the UI ------------------------------------------------------------------------------------------
    def invoke(self, context, event):
        if _Running.op is not None:  # pressing the button again while running = cancel
            _Running.op._cancel_requested = True
            return {"CANCELLED"}
        try:
            job = self._checked_job(context)
            backend = get_backend(context)
            rid = backend.submit(job.op, job.args)
        except Exception as e:  # noqa: BLE001
            return report_exception(self, e)
        self._job, self._backend, self._rid = job, backend, rid
        _start_modal(context, self)
        _Running.op = self
        set_progress(context, 0.0, "DPoser: starting... (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def _end(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _Running.op = None
        set_progress(context, None)

    def modal(self, context, event):
        if event.type == "ESC" or self._cancel_requested:
            try:
                self._backend.cancel(self._rid)  # its 'cancelled' reply is ignored; the worker frees within a step
            except BackendError:
                pass
            self._end(context)
            self.report({"WARNING"}, "DPoser: cancelled, nothing was changed")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            result = poll_job(self._backend, self._rid, lambda done, total: set_progress(
                context, done / max(1, total), f"DPoser: step {done}/{total} (Esc to cancel)"))
            if result is None:
                return {"PASS_THROUGH"}
            self._end(context)
            return self._finish(context, self._job, result)
        except Exception as e:  # noqa: BLE001
            self._end(context)
            return report_exception(self, e)


class DPOSER_OT_complete(_JobOperator, bpy.types.Operator):
    """Fill in the named parts of the active armature's pose (e.g. the hands) from the rest of the pose with the
    DPoser-X prior, on the current frame or a frame range"""

    bl_idname = "dposer.complete"
    bl_label = "Complete Pose"
    bl_options = {"REGISTER", "UNDO"}

    parts: StringProperty(name="Parts", default="left_hand,right_hand",
                          description="Comma-separated parts, groups or SMPL-X joints to fill in (left_hand, "
                                      "right_hand, hands, body, face, left_arm, right_index, jaw, ...)")
    frame_start: IntProperty(name="Start", description="First frame (unset: the current frame only)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame (unset: frame_start)", options={"SKIP_SAVE"})
    hypotheses: P.bpy_prop(P.HYPOTHESES, "Hypotheses")
    seed: P.bpy_prop(P.SEED, "Seed")
    preview: P.bpy_prop(P.COMPLETE_PREVIEW, "Preview")
    _params = {"hypotheses": P.HYPOTHESES, "seed": P.SEED}

    def _job_from_props(self, context) -> CompleteJob:
        start, end = _frame_args(self)
        return CompleteJob(context, self.parts, start, end, self.hypotheses, self.seed, self.preview)


class DPOSER_OT_refine(_JobOperator, bpy.types.Operator):
    """Pull the active armature's pose towards the DPoser-X prior (body, jaw and hands; the global orientation is
    kept), on the current frame or a frame range"""

    bl_idname = "dposer.refine"
    bl_label = "Refine Pose"
    bl_options = {"REGISTER", "UNDO"}

    strength: P.bpy_prop(P.REFINE_STRENGTH, "Strength")
    frame_start: IntProperty(name="Start", description="First frame (unset: the current frame only)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame (unset: frame_start)", options={"SKIP_SAVE"})
    seed: P.bpy_prop(P.SEED, "Seed")
    _params = {"strength": P.REFINE_STRENGTH, "seed": P.SEED}

    def _job_from_props(self, context) -> RefineJob:
        start, end = _frame_args(self)
        return RefineJob(context, self.strength, start, end, self.seed)


class DPOSER_OT_random_pose(_JobOperator, bpy.types.Operator):
    """Set the active armature's body, jaw and hands to a pose sampled from the DPoser-X prior on the current frame
    (the global orientation is kept)"""

    bl_idname = "dposer.random_pose"
    bl_label = "Random Pose"
    bl_options = {"REGISTER", "UNDO"}

    seed: P.bpy_prop(P.SEED, "Seed")
    _params = {"seed": P.SEED}

    def _job_from_props(self, context) -> RandomPoseJob:
        return RandomPoseJob(context, self.seed)


_LOCK_DESCRIPTION = ("Comma-separated bones of the rig or SMPL-X parts/groups/joints kept exactly (e.g. "
                     "'Hand_L, head' or 'left_arm')")
_LOCK_SELECTED_DESCRIPTION = "In Pose Mode, also keep the selected bones exactly"


class DPOSER_OT_clean(_JobOperator, bpy.types.Operator):
    """Denoise the active armature's keyed animation over a frame range with the DPoser-X prior (one request for
    the whole clip; the root orientation and all locations are kept); rotations are written in each bone's own
    rotation mode"""

    bl_idname = "dposer.clean"
    bl_label = "Clean Animation"
    bl_options = {"REGISTER", "UNDO"}

    frame_start: IntProperty(name="Start", description="First frame (unset: the start of the armature's action)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame (unset: the end of the armature's action)",
                           options={"SKIP_SAVE"})
    strength: P.bpy_prop(P.CLEAN_STRENGTH, "Strength")
    tag_repaired: BoolProperty(name="Tag repaired keys", default=True,
                               description="Give the repaired keys the keyframe type 'Extreme' so they stand out in "
                                           "the Dope Sheet and Graph Editor")
    parts: StringProperty(name="Parts", default="body",
                          description="Comma-separated parts, groups or SMPL-X joints that may change (body, hands, "
                                      "left_arm, spine, ...)")
    lock: StringProperty(name="Lock", default="", description=_LOCK_DESCRIPTION)
    lock_selected: BoolProperty(name="Lock selected bones", default=True, description=_LOCK_SELECTED_DESCRIPTION)
    seed: P.bpy_prop(P.SEED, "Seed")
    _params = {"strength": P.CLEAN_STRENGTH, "seed": P.SEED}

    def _job_from_props(self, context) -> CleanJob:
        start0, end0 = clean_frame_range(context)
        start = self.frame_start if self.properties.is_property_set("frame_start") else start0
        end = self.frame_end if self.properties.is_property_set("frame_end") else end0
        return CleanJob(context, start, end, self.strength, self.parts, self.lock, self.lock_selected, self.seed,
                        self.tag_repaired)


class DPOSER_OT_vary(_JobOperator, bpy.types.Operator):
    """Make variations of the active armature's motion (over its action's frame range) or, without an action, of
    its pose on the current frame, with the DPoser-X prior: new armatures in a grid (a crowd) or new actions on
    this armature"""

    bl_idname = "dposer.vary"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}

    count: P.bpy_prop(P.VARY_COUNT, "Count")
    strength: P.bpy_prop(P.VARY_STRENGTH, "Strength")
    mode: EnumProperty(name="As", default="RIGS",
                       items=[("RIGS", "Armatures", "Copies of the armature (and its child meshes) in a grid, each "
                               "keyed with its variation on the current frame"),
                              ("ACTIONS", "Actions", "New actions on this armature (copies of its action with the "
                               "variation keyed on the current frame); the armature keeps its own action")])
    spacing: P.bpy_prop(P.VARY_SPACING, "Spacing")
    start_offset: P.bpy_prop(P.VARY_START_OFFSET, "Start Offset")
    frame_start: IntProperty(name="Start", description="First frame (unset: the start of the armature's action)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame (unset: the end of the armature's action)",
                           options={"SKIP_SAVE"})
    lock: StringProperty(name="Lock", default="", description=_LOCK_DESCRIPTION)
    lock_selected: BoolProperty(name="Lock selected bones", default=True, description=_LOCK_SELECTED_DESCRIPTION)
    seed: P.bpy_prop(P.SEED, "Seed")
    _params = {"count": P.VARY_COUNT, "strength": P.VARY_STRENGTH, "spacing": P.VARY_SPACING,
               "start_offset": P.VARY_START_OFFSET, "seed": P.SEED}

    def _job_from_props(self, context) -> VaryJob:
        start, end = _frame_args(self)
        return VaryJob(context, self.count, self.strength, self.lock, self.lock_selected, self.seed, self.mode,
                       self.spacing, self.start_offset, start, end)


class _Running:
    op = None


def _start_modal(context, op) -> None:
    """Timer + modal handler for ``op`` (a separate function so tests can run invoke()/modal() headless)."""
    wm = context.window_manager
    op._timer = wm.event_timer_add(0.05, window=context.window)
    wm.modal_handler_add(op)


def poll_job(backend, rid, on_progress=None) -> dict | None:
    """One modal-timer tick: drain the backend's messages; the result of ``rid`` when it arrived, else None.
    Raises :class:`BackendError` on its error reply or a start-up failure. Plain function (timers do not run
    headless, so tests call it directly)."""
    for m in backend.poll():
        if m.get("id") is None and m.get("type") == "error" and not backend.ready:
            raise BackendError.from_reply(m)
        if m.get("id") != rid:
            continue
        if m.get("type") == "progress" and on_progress is not None:
            on_progress(int(m.get("done", 0)), int(m.get("total", 1)))
        elif m.get("type") == "result":
            return m["result"]
        elif m.get("type") == "error":
            raise BackendError.from_reply(m)
    return None


class DPOSER_OT_add_armature(bpy.types.Operator):
    """Add an armature with SMPL-X bone names built from DPoser's skeleton (bones along +Z, roll 0: a bone's
    quaternion is the SMPL-X axis-angle)"""

    bl_idname = "dposer.add_armature"
    bl_label = "Add DPoser Armature"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", default="DPoser")
    with_root: BoolProperty(name="Root bone", default=True, description="Add the SMPL-X add-on's 'root' bone")

    @classmethod
    def poll(cls, context):
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode")
            return False
        return True

    def execute(self, context):
        try:
            spec = rm.armature_spec(with_root=self.with_root)
            arm = bpy.data.armatures.new(self.name)
            obj = bpy.data.objects.new(self.name, arm)
            context.collection.objects.link(obj)
            obj.location = context.scene.cursor.location
            for o in context.selected_objects:
                o.select_set(False)
            context.view_layer.objects.active = obj
            obj.select_set(True)
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                ebs = arm.edit_bones
                for name, parent, head, tail, roll in zip(spec["names"], spec["parents"], spec["heads"],
                                                          spec["tails"], spec["rolls"]):
                    eb = ebs.new(name)
                    eb.head = [float(x) for x in head]
                    eb.tail = [float(x) for x in tail]
                    eb.roll = float(roll)
                    eb.use_connect = False
                    if parent is not None:
                        eb.parent = ebs[parent]
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
            for pb in obj.pose.bones:
                pb.rotation_mode = "QUATERNION"
            obj["dposer_rig"] = "smplx"
        except Exception as e:  # noqa: BLE001
            return report_exception(self, e)
        self.report({"INFO"}, f"DPoser: added armature '{obj.name}' ({len(spec['names'])} bones)")
        return {"FINISHED"}


class DPOSER_OT_calibrate_rest(_ArmaturePoll, bpy.types.Operator):
    """Store the active armature's rest calibration: pose it in the SMPL-X zero pose (T-pose, palms down, flat
    hands) on the current frame first, then calibrate; every DPoser job then reads and writes through it"""

    bl_idname = "dposer.calibrate_rest"
    bl_label = "Calibrate Rest"
    bl_options = {"REGISTER", "UNDO"}

    method: EnumProperty(
        name="From",
        items=[("POSE", "Current pose", "The rig shows the SMPL-X zero pose on the current frame"),
               ("AUTO", "Automatic", "Guess from the bone directions of the rest pose (check with Show Zero Pose)"),
               ("REST", "Rest pose (clear)", "The rest pose is the zero pose: remove the stored calibration")],
        default="POSE")
    preset: EnumProperty(name="Bone map", items=PRESET_ITEMS,
                         description="Bone-map preset (stored on the armature); Auto-detect uses the bone names")

    def execute(self, context):
        try:
            obj = active_armature(context)
            rig = rig_from_object(obj)
            if self.preset == "AUTO":
                det = bone_maps.detect_preset(rig.names, parents=rp.bone_parents(obj))
                if det is None:
                    raise JobError(f"Unknown rig '{obj.name}': no bone-map preset matches its bone names; choose one")
            else:
                try:
                    det = bone_maps.detection_for(self.preset, rig.names, parents=rp.bone_parents(obj))
                except ValueError as e:
                    raise JobError(str(e)) from None
            C = rm.armature_up_axes(np.array(obj.matrix_world))
            bones = list(det.bone_map.values())
            if self.method == "POSE":
                basis = kf.read_basis_rotations(obj, None, rig.names)[0]
                cal = rm.calibration_from_basis(rig, basis, bones)
            elif self.method == "AUTO":
                cal = rm.auto_calibration(rig, det.bone_map, C=C)
            else:
                cal = None
            # everything computed: now change the object (one undo step)
            if self.preset == "AUTO":
                if rp.PRESET_PROP in obj:
                    del obj[rp.PRESET_PROP]
            else:
                obj[rp.PRESET_PROP] = self.preset
            if cal is None:
                if rp.CALIBRATION_PROP in obj:
                    del obj[rp.CALIBRATION_PROP]
            else:
                rp.save_calibration(obj, det.preset.id, cal)
        except Exception as e:  # noqa: BLE001 - reported, object unchanged
            return report_exception(self, e)
        what = {"POSE": "from the current pose", "AUTO": "automatically", "REST": "cleared (rest = zero pose)"}
        self.report({"INFO"}, f"DPoser: '{obj.name}' ({det.preset.label}, {len(det.bone_map)} bones) calibrated "
                              f"{what[self.method]}")
        return {"FINISHED"}


class DPOSER_OT_show_zero_pose(_ArmaturePoll, bpy.types.Operator):
    """Pose the active armature in the SMPL-X zero pose (T-pose, palms down, flat hands) on the current frame, as
    its calibration (or an automatic guess) sees it; adjust it and Calibrate Rest from the pose. Not keyed"""

    bl_idname = "dposer.show_zero_pose"
    bl_label = "Show Zero Pose"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(
        name="Source",
        items=[("CALIBRATION", "Calibration", "The stored calibration (the rest pose when there is none)"),
               ("AUTO", "Automatic guess", "From the bone directions of the rest pose")],
        default="CALIBRATION")

    def execute(self, context):
        try:
            obj = active_armature(context)
            rig, det = detect_rig(obj)
            cal = None
            if self.source == "AUTO":
                cal = rm.auto_calibration(rig, det.bone_map, C=rm.armature_up_axes(np.array(obj.matrix_world)))
            ret = retarget_for(obj, rig, det, calibration=cal, require=False)
            current = kf.read_basis_rotations(obj, None, rig.names)[0]
            L = ret.zero_pose_basis(current)
            values = {}
            for b in det.bone_map.values():
                mode = obj.pose.bones[b].rotation_mode
                now = kf.current_rotation_values(obj, b, mode)
                values[b] = rm.matrix_to_rotation(L[rig.index[b]], mode, compat=now)
            for b, v in values.items():
                setattr(obj.pose.bones[b], kf.rotation_property(obj.pose.bones[b].rotation_mode),
                        [float(x) for x in v])
            obj.update_tag()
        except Exception as e:  # noqa: BLE001
            return report_exception(self, e)
        self.report({"INFO"}, f"DPoser: '{obj.name}' shows the SMPL-X zero pose ({len(values)} bones, not keyed)")
        return {"FINISHED"}


class DPOSER_OT_test_backend(bpy.types.Operator):
    """Start the DPoser backend with the current preferences and report its version and device"""

    bl_idname = "dposer.test_backend"
    bl_label = "Test Backend"

    def execute(self, context):
        try:
            backend = get_backend(context)
            backend.wait_ready()
            info = backend.version()
        except Exception as e:  # noqa: BLE001
            return report_exception(self, e)
        self.report({"INFO"}, f"DPoser backend {info.get('version')} (protocol {info.get('protocol')}) on "
                              f"{info.get('device')}, torch {info.get('torch')}; {status_text()}")
        return {"FINISHED"}


CLASSES = (DPOSER_OT_add_armature, DPOSER_OT_calibrate_rest, DPOSER_OT_show_zero_pose, DPOSER_OT_complete,
           DPOSER_OT_refine, DPOSER_OT_random_pose, DPOSER_OT_clean, DPOSER_OT_vary, DPOSER_OT_test_backend)



def unregister() -> None:
    _Running.op = None
