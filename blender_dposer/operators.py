# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: ``dposer.add_armature``, ``dposer.complete``, ``dposer.refine``, ``dposer.random_pose``,
``dposer.test_backend``. Needs bpy.

``dposer.complete`` is one :class:`CompleteJob` (validate + snapshot the pose -> a backend request -> new keys ->
write them) driven two ways: ``execute()`` blocks until the backend answers (scripts, background mode, tests);
``invoke()`` (the UI) submits the same request and polls the backend from a modal timer, with status-bar
progress and Esc to cancel (blender.md 4.4-4.5). All new key data is built before anything is written, so an
error or a cancel leaves the scene unchanged, and a finished run is one undo step.
"""
from __future__ import annotations

import sys
import traceback

import bpy
import numpy as np
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import bone_maps
from . import keyframes as kf
from . import rig_math as rm
from .backend_client import BackendError
from .preferences import error_summary, get_backend, status_text

MAX_FRAMES = 1000  # poses per `complete` request (docs/protocol.md 5)


class JobError(Exception):
    """A problem the user can fix (no armature, unknown rig, bad parts, ...): reported as is."""


# ---------------------------------------------------------------------------------------------------------
# Rig reading.

def rig_from_object(obj) -> rm.Rig:
    bones = obj.data.bones
    names = [b.name for b in bones]
    parents = [b.parent.name if b.parent else None for b in bones]
    rest = np.array([[list(r) for r in b.matrix_local] for b in bones], dtype=np.float64).reshape(-1, 4, 4)
    return rm.Rig(names, parents, rest)


def detect_rig(obj):
    """(Rig, Detection) of an armature; JobError when no bone-map preset matches its bone names."""
    rig = rig_from_object(obj)
    det = bone_maps.detect_preset(rig.names)
    if det is None:
        sample = ", ".join(rig.names[:5]) + (", ..." if len(rig.names) > 5 else "")
        raise JobError(f"Unknown rig '{obj.name}': its bone names ({sample}) match no DPoser bone map (SMPL-X, "
                       "Mixamo, Rigify, CMU/Bandai BVH, SMPL FBX); use Add DPoser Armature or rename the bones")
    return rig, det


class PoseJob:
    """Shared part of the pose jobs (``complete``, ``refine``, ``random_pose``), snapshotted from the scene (names,
    not bpy references): the armature, its rig and retarget, the frames, the current pose and the continuity
    seeds of the bones to write. Subclasses set ``op`` (the backend op), ``args`` and ``fill`` [(joint, bone)]."""

    op = ""
    verb = "posed"

    def _setup(self, context, frame_start: int | None, frame_end: int | None):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            raise JobError("Select an armature (the active object is not one)")
        if obj.mode == "EDIT":
            raise JobError("Leave Edit Mode first (Object or Pose Mode)")
        rig, det = detect_rig(obj)
        self.obj_name = obj.name
        self.preset = det.preset
        self.rig = rig
        self.bone_map = det.bone_map
        self.retarget = rm.Retarget(rig, det.bone_map, C=rm.armature_up_axes(np.array(obj.matrix_world)))
        scene = context.scene
        if frame_start is None:
            self.frames = np.array([scene.frame_current], dtype=np.float64)
            self.current_only = True
        else:
            frame_end = frame_start if frame_end is None else frame_end
            if frame_end < frame_start:
                raise JobError(f"frame_end ({frame_end}) is before frame_start ({frame_start})")
            if frame_end - frame_start + 1 > MAX_FRAMES:
                raise JobError(f"{frame_end - frame_start + 1} frames: at most {MAX_FRAMES} per run")
            self.frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
            self.current_only = False
        self.modes = dict(zip(rig.names, kf.bone_rotation_modes(obj, rig.names)))
        # the pose: current values for the current frame (un-keyed edits count), the F-curves over a range
        self.basis = kf.read_basis_rotations(obj, None if self.current_only else self.frames, rig.names)
        self.aa = self.retarget.smplx_aa_from_basis(self.basis)  # (F, 55, 3)
        return obj

    def _seed_previous(self, obj) -> None:
        """Continuity seeds: the value before the range (or the current value for the current frame)."""
        channels = kf.Channels(obj)
        self.previous = {}
        for _, b in self.fill:
            mode = self.modes[b]
            if self.current_only:
                self.previous[b] = kf.current_rotation_values(obj, b, mode)
            else:
                self.previous[b] = kf.previous_rotation_value(obj, b, self.frames[0] - 1, mode, channels)

    def joints_from_result(self, result: dict) -> np.ndarray:
        return rm.joints_from_pose_dict(result)

    def keys_from_result(self, result: dict) -> list[kf.BoneKeys]:
        aa = self.joints_from_result(result)
        if aa.shape[0] != len(self.frames) or not np.all(np.isfinite(aa)):
            raise JobError(f"the backend returned {aa.shape[0]} poses for {len(self.frames)} frames")
        L = self.retarget.basis_from_smplx(rm.axis_angle_to_matrix(aa), current_basis=self.basis)
        keys = []
        for _, b in self.fill:
            k = self.rig.index[b]
            keys.append(kf.rotation_keys(b, self.modes[b], self.frames, L[:, k], self.previous[b]))
        return keys

    def apply(self, context, keys: list[kf.BoneKeys]) -> int:
        obj = bpy.data.objects.get(self.obj_name)
        if obj is None or obj.type != "ARMATURE":
            raise JobError(f"the armature '{self.obj_name}' is gone")
        missing = [k.bone for k in keys if k.bone not in obj.pose.bones]
        if missing:
            raise JobError(f"bones vanished from '{self.obj_name}': {', '.join(missing)}")
        n = kf.write_rotation_keys(obj, keys)
        kf.set_current_rotation(obj, keys, context.scene.frame_current)
        obj.update_tag()
        return n

    def summary(self, n_keys: int) -> str:
        frames = (f"frame {int(self.frames[0])}" if len(self.frames) == 1
                  else f"frames {int(self.frames[0])}-{int(self.frames[-1])}")
        return (f"DPoser: {self.verb} {len(self.fill)} bones of '{self.obj_name}' ({self.preset.label}) on {frames} "
                f"({n_keys} keys)")


class CompleteJob(PoseJob):
    """Everything ``dposer.complete`` needs."""

    op = "complete"
    verb = "completed"

    def __init__(self, context, parts: str, frame_start: int | None, frame_end: int | None, hypotheses: int,
                 seed: int):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            raise JobError("Select an armature (the active object is not one)")
        if obj.mode == "EDIT":
            raise JobError("Leave Edit Mode first (Object or Pose Mode)")
        names = bone_maps.split_names(parts)
        if not names:
            raise JobError("Nothing to complete: 'parts' is empty (e.g. 'right_hand' or 'left_hand,right_hand')")
        try:
            fill = bone_maps.names_to_joints(names)
        except ValueError as e:
            raise JobError(str(e)) from None
        rig, det = detect_rig(obj)
        self.fill = [(j, det.bone_map[j]) for j in fill if j in det.bone_map]
        if not self.fill:
            raise JobError(f"The rig '{obj.name}' ({det.preset.label}) has no bones for {', '.join(names)}")
        obj = self._setup(context, frame_start, frame_end)
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        undriven = bone_maps.undriven_joints(self.bone_map)
        missing = list(dict.fromkeys(names + [j for j in undriven]))
        self.args = {"pose": pose, "missing": missing, "hypotheses": int(hypotheses), "seed": int(seed)}
        self._seed_previous(obj)


# Joints the refine/random-pose jobs may write: body, jaw and hands (never the global orientation or the eyes).
_POSE_KEYS = ("body_pose", "jaw_pose", "left_hand_pose", "right_hand_pose")


def _keyed_joints(keys) -> set[str]:
    return {rm.JOINT_NAMES[i] for k in keys for i in range(rm.NUM_JOINTS)[rm.KEY_JOINTS[k]]}


class _KeepUnwrittenJob(PoseJob):
    """A job whose result replaces only the written joints: every other joint (global orientation, eyes, joints
    the rig does not drive) keeps its current value, so the retargeting of the written bones sees the same
    parents as the scene."""

    def joints_from_result(self, result: dict) -> np.ndarray:
        aa = rm.joints_from_pose_dict(result)
        if aa.shape[0] != len(self.frames):
            return aa  # keys_from_result reports it
        out = self.aa.copy()
        idx = [rm.JOINT_INDEX[j] for j, _ in self.fill]
        out[:, idx] = aa[:, idx]
        return out


class RefineJob(_KeepUnwrittenJob):
    """``dposer.refine``: the pose -> ``refine`` -> the rotations of every mapped body/jaw/hand joint."""

    op = "refine"
    verb = "refined"

    def __init__(self, context, strength: float, frame_start: int | None, frame_end: int | None, seed: int):
        obj = self._setup(context, frame_start, frame_end)
        if not 0.0 < float(strength) <= 1.0:
            raise JobError(f"strength must be in (0, 1], got {strength:g}")
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        sent = _keyed_joints([k for k in _POSE_KEYS if k in pose])
        self.fill = [(j, self.bone_map[j]) for j in rm.JOINT_NAMES if j in sent and j in self.bone_map]
        if not self.fill:
            raise JobError(f"The rig '{obj.name}' ({self.preset.label}) has no body, jaw or hand bones to refine")
        self.args = {"pose": pose, "strength": float(strength), "lock": [], "seed": int(seed)}
        self._seed_previous(obj)


class RandomPoseJob(_KeepUnwrittenJob):
    """``dposer.random_pose``: ``sample`` (n=1) -> the body/jaw/hand rotations on the current frame."""

    op = "sample"
    verb = "posed"

    def __init__(self, context, seed: int):
        obj = self._setup(context, None, None)
        allowed = _keyed_joints(_POSE_KEYS)
        self.fill = [(j, self.bone_map[j]) for j in rm.JOINT_NAMES if j in allowed and j in self.bone_map]
        if not self.fill:
            raise JobError(f"The rig '{obj.name}' ({self.preset.label}) has no body, jaw or hand bones")
        self.args = {"n": 1, "seed": int(seed)}
        self._seed_previous(obj)


# Debugging/tests: the last job request sent ({"args": ..., "backend": ...}).
last_request: dict = {}


def _set_progress(context, factor: float | None, text: str = "") -> None:
    wm = context.window_manager
    if hasattr(wm, "dposer_progress"):
        wm.dposer_progress = -1.0 if factor is None else float(factor)
        wm.dposer_status = text
    ws = getattr(context, "workspace", None)
    if ws is not None:
        try:
            ws.status_text_set(None if factor is None else text)
        except (AttributeError, RuntimeError, TypeError):
            pass
    screen = getattr(context, "screen", None)
    if screen is not None:
        for area in screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _report_exception(op, e: BaseException) -> set:
    if isinstance(e, (JobError, BackendError)):
        summary = error_summary(e)
        detail = e.message if isinstance(e, BackendError) else str(e)
    else:
        summary = f"{type(e).__name__}: {e}"
        detail = traceback.format_exc()
    print(f"DPoser error: {detail}", file=sys.stderr)
    op.report({"ERROR"}, f"DPoser: {summary}")
    return {"CANCELLED"}


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

    _job = None
    _rid = None
    _timer = None
    _backend = None
    _cancel_requested = False

    def _finish(self, context, job: PoseJob, result: dict) -> set:
        keys = job.keys_from_result(result)  # all new key data first ...
        n = job.apply(context, keys)  # ... then one write
        self.report({"INFO"}, job.summary(n))
        return {"FINISHED"}

    # -- synchronous: scripts, background mode, tests ---------------------------------------------------------
    def execute(self, context):
        wm = context.window_manager
        try:
            job = self._job_from_props(context)
            backend = get_backend(context)
            backend.wait_ready()
            last_request.clear()
            last_request.update(args=job.args, backend=backend)
            wm.progress_begin(0, 100)
            try:
                result = backend.call(job.op, job.args, on_progress=lambda m: wm.progress_update(
                    int(100 * m.get("done", 0) / max(1, m.get("total", 1)))))
            finally:
                wm.progress_end()
            return self._finish(context, job, result)
        except Exception as e:  # noqa: BLE001 - every failure is reported and leaves the scene unchanged
            return _report_exception(self, e)

    # -- modal: the UI ------------------------------------------------------------------------------------------
    def invoke(self, context, event):
        if _Running.op is not None:  # pressing the button again while running = cancel
            _Running.op._cancel_requested = True
            return {"CANCELLED"}
        try:
            job = self._job_from_props(context)
            backend = get_backend(context)
            rid = backend.submit(job.op, job.args)
        except Exception as e:  # noqa: BLE001
            return _report_exception(self, e)
        last_request.clear()
        last_request.update(args=job.args, backend=backend)
        self._job, self._backend, self._rid = job, backend, rid
        _start_modal(context, self)
        _Running.op = self
        _set_progress(context, 0.0, "DPoser: starting... (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def _end(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _Running.op = None
        _set_progress(context, None)

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
            result = poll_job(self._backend, self._rid, lambda done, total: _set_progress(
                context, done / max(1, total), f"DPoser: step {done}/{total} (Esc to cancel)"))
            if result is None:
                return {"PASS_THROUGH"}
            self._end(context)
            return self._finish(context, self._job, result)
        except Exception as e:  # noqa: BLE001
            self._end(context)
            return _report_exception(self, e)


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
    hypotheses: IntProperty(name="Hypotheses", default=1, min=1, max=32,
                            description="Solutions tried per frame; the most plausible is kept")
    seed: IntProperty(name="Seed", default=0, min=0)

    def _job_from_props(self, context) -> CompleteJob:
        start, end = _frame_args(self)
        return CompleteJob(context, self.parts, start, end, self.hypotheses, self.seed)


class DPOSER_OT_refine(_JobOperator, bpy.types.Operator):
    """Pull the active armature's pose towards the DPoser-X prior (body, jaw and hands; the global orientation is
    kept), on the current frame or a frame range"""

    bl_idname = "dposer.refine"
    bl_label = "Refine Pose"
    bl_options = {"REGISTER", "UNDO"}

    strength: FloatProperty(name="Strength", default=0.3, min=0.0, max=1.0,
                            description="How far the pose may move towards the prior (0 = unchanged)")
    frame_start: IntProperty(name="Start", description="First frame (unset: the current frame only)",
                             options={"SKIP_SAVE"})
    frame_end: IntProperty(name="End", description="Last frame (unset: frame_start)", options={"SKIP_SAVE"})
    seed: IntProperty(name="Seed", default=0, min=0)

    def _job_from_props(self, context) -> RefineJob:
        start, end = _frame_args(self)
        return RefineJob(context, self.strength, start, end, self.seed)


class DPOSER_OT_random_pose(_JobOperator, bpy.types.Operator):
    """Set the active armature's body, jaw and hands to a pose sampled from the DPoser-X prior on the current frame
    (the global orientation is kept)"""

    bl_idname = "dposer.random_pose"
    bl_label = "Random Pose"
    bl_options = {"REGISTER", "UNDO"}

    seed: IntProperty(name="Seed", default=0, min=0)

    def _job_from_props(self, context) -> RandomPoseJob:
        return RandomPoseJob(context, self.seed)


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
            return _report_exception(self, e)
        self.report({"INFO"}, f"DPoser: added armature '{obj.name}' ({len(spec['names'])} bones)")
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
            return _report_exception(self, e)
        self.report({"INFO"}, f"DPoser backend {info.get('version')} (protocol {info.get('protocol')}) on "
                              f"{info.get('device')}, torch {info.get('torch')}; {status_text()}")
        return {"FINISHED"}


CLASSES = (DPOSER_OT_add_armature, DPOSER_OT_complete, DPOSER_OT_refine, DPOSER_OT_random_pose,
           DPOSER_OT_test_backend)


def register() -> None:
    from . import _register_class

    for cls in CLASSES:
        _register_class(cls)


def unregister() -> None:
    _Running.op = None
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
