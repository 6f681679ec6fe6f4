# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: ``dposer.add_armature``, ``dposer.calibrate_rest``, ``dposer.show_zero_pose``, ``dposer.complete``,
``dposer.refine``, ``dposer.random_pose``, ``dposer.clean``, ``dposer.vary``, ``dposer.test_backend``. Needs bpy.

Each pose operator is one :class:`PoseJob` subclass (validate + snapshot the pose through the rig's bone map and
calibration -> one backend request -> new keys -> write them) driven two ways by :class:`_JobOperator`:
``execute()`` blocks until the backend answers (scripts, background mode, tests); ``invoke()`` (the UI) submits the
same request and polls the backend from a modal timer, with status-bar progress and Esc to cancel (blender.md
4.4-4.5). All new data is built before anything is written, so an error or a cancel leaves the scene unchanged,
and a finished run is one undo step. The hypothesis preview of ``dposer.complete`` is :mod:`.preview`.
"""
from __future__ import annotations

import sys
import traceback

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from mathutils import Vector

from . import bone_maps
from . import keyframes as kf
from . import params as P
from . import preview
from . import rig_profile as rp
from . import rig_math as rm
from .backend_client import BackendError
from .rig_profile import PRESET_ITEMS, JobError, detect_rig, retarget_for, rig_from_object  # noqa: F401
from .preferences import error_summary, get_backend, status_text

MAX_FRAMES = 1000  # poses per `complete` request (docs/protocol.md 5)
MAX_CLEAN_FRAMES = 20000  # frames per `clean` clip
REPAIRED_KEY_TYPE = "EXTREME"  # keyframe type Clean gives the keys it repaired (its own colour in the Dope Sheet)


def _check(param: P.Param, value) -> None:
    try:
        param.check(value)
    except ValueError as e:
        raise JobError(str(e)) from None


def active_armature(context):
    """The active object when it is an armature outside Edit Mode, else JobError."""
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise JobError("Select an armature (the active object is not one)")
    if obj.mode == "EDIT":
        raise JobError("Leave Edit Mode first (Object or Pose Mode)")
    return obj


class PoseJob:
    """Shared part of the pose jobs (complete, refine, random_pose, clean, vary), snapshotted from the scene (names,
    not bpy references): the armature, its rig and retarget, the frames, the current pose and the continuity
    seeds of the bones to write. Subclasses set ``op`` (the backend op), ``args`` and ``fill`` [(joint, bone)]."""

    op = ""
    verb = "posed"
    max_frames = MAX_FRAMES

    def _setup(self, context, frame_start: int | None, frame_end: int | None):
        obj = active_armature(context)
        if preview.has_preview(obj):
            raise JobError(f"'{obj.name}' has a pending Complete preview: accept or cancel it first")
        rig, det = detect_rig(obj)
        self.obj_name = obj.name
        self.preset = det.preset
        self.rig = rig
        self.bone_map = det.bone_map
        self.retarget = retarget_for(obj, rig, det)
        self.warnings = det.warnings(calibrated=rp.load_calibration(obj) is not None)  # reported with the result
        scene = context.scene
        if frame_start is None:
            self.frames = np.array([scene.frame_current], dtype=np.float64)
            self.current_only = True
        else:
            frame_end = frame_start if frame_end is None else frame_end
            if frame_end < frame_start:
                raise JobError(f"frame_end ({frame_end}) is before frame_start ({frame_start})")
            if frame_end - frame_start + 1 > self.max_frames:
                raise JobError(f"{frame_end - frame_start + 1} frames: at most {self.max_frames} per run")
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
        return self._keys_for(self.joints_from_result(result))

    def _keys_for(self, aa: np.ndarray, basis=None) -> list[kf.BoneKeys]:
        """SMPL-X axis-angle (F, 55, 3) over the job's frames -> continuous keys of the bones to fill."""
        if aa.shape[0] != len(self.frames) or not np.all(np.isfinite(aa)):
            raise JobError(f"the backend returned {aa.shape[0]} poses for {len(self.frames)} frames")
        L = self.retarget.basis_from_smplx(rm.axis_angle_to_matrix(aa),
                                           current_basis=self.basis if basis is None else basis)
        keys = []
        for _, b in self.fill:
            k = self.rig.index[b]
            keys.append(kf.rotation_keys(b, self.modes[b], self.frames, L[:, k], self.previous[b]))
        return keys

    def _armature(self):
        obj = bpy.data.objects.get(self.obj_name)
        if obj is None or obj.type != "ARMATURE":
            raise JobError(f"the armature '{self.obj_name}' is gone")
        missing = [b for _, b in self.fill if b not in obj.pose.bones]
        if missing:
            raise JobError(f"bones vanished from '{self.obj_name}': {', '.join(missing)}")
        return obj

    def apply(self, context, keys: list[kf.BoneKeys]) -> int:
        obj = self._armature()
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
    max_frames = MAX_CLEAN_FRAMES  # a range is solved as a clip (the server's clip limit)

    def __init__(self, context, parts: str, frame_start: int | None, frame_end: int | None, hypotheses: int,
                 seed: int, with_preview: bool = False):
        self.preview = bool(with_preview) and int(hypotheses) > 1
        obj = active_armature(context)
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
        if self.preview and int(hypotheses) * len(self.frames) > preview.MAX_PREVIEW_POSES:
            raise JobError(f"a preview keeps every hypothesis: at most {preview.MAX_PREVIEW_POSES} hypotheses x "
                           f"frames, got {int(hypotheses)} x {len(self.frames)}; use fewer of either, or no preview")
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        undriven = bone_maps.undriven_joints(self.bone_map)
        missing = list(dict.fromkeys(names + [j for j in undriven]))
        self.args = {"pose": pose, "missing": missing, "hypotheses": int(hypotheses), "seed": int(seed)}
        if len(self.frames) > 1:  # a range is a take: solve it as one motion (smooth, coherent hypotheses)
            render = context.scene.render
            self.args.update(clip=True, fps=float(render.fps) / float(render.fps_base or 1.0))
        self._seed_previous(obj)

    def keys_from_result(self, result: dict):
        """The best estimate's keys (the mean of the hypotheses); with ``preview``, those first, then the keys of
        every hypothesis (best first, each one coherent motion over the range), and their scores (the best
        estimate gets the lowest score of the hypotheses)."""
        if not self.preview:
            return super().keys_from_result(result)
        best = rm.joints_from_pose_dict({k: result[k] for k in rm.KEY_JOINTS if k in result})
        stacks = {k: np.asarray(result[f"{k}_hypotheses"]) for k in rm.KEY_JOINTS if f"{k}_hypotheses" in result}
        hyps = [best]
        if stacks:
            count = min(len(v) for v in stacks.values())
            orient = result.get("global_orient", np.zeros((len(self.frames), 3)))
            hyps += [rm.joints_from_pose_dict({**{k: v[i] for k, v in stacks.items()}, "global_orient": orient})
                     for i in range(count)]
        keys = [self._keys_for(aa) for aa in hyps]
        scores = np.asarray(result.get("scores", np.zeros((len(keys) - 1, len(self.frames)))), dtype=np.float64)
        scores = np.concatenate([scores.min(0, keepdims=True), scores]) if scores.size else np.zeros((len(keys), len(self.frames)))
        return keys, scores

    def apply(self, context, keys) -> int:
        if not self.preview:
            return super().apply(context, keys)
        hypotheses, scores = keys
        self.n_hypotheses = len(hypotheses)
        return preview.start(self._armature(), hypotheses, scores, context.scene.frame_current, mean_first=True)

    def summary(self, n_keys: int) -> str:
        text = super().summary(n_keys)
        if self.preview:
            text += (f"; previewing the best estimate (mean of {self.n_hypotheses - 1} hypotheses): Next/Previous "
                     "to compare the hypotheses, then Accept or Cancel")
        return text


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
        _check(P.REFINE_STRENGTH, strength)
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


def _selected_bones(obj) -> list[str]:
    """Selected pose bones (PoseBone.select from 5.0, Bone.select before)."""
    return [pb.name for pb in obj.pose.bones if (pb.select if hasattr(pb, "select") else pb.bone.select)]


def locked_joints(obj, bone_map: dict, lock: str, lock_selected: bool) -> list[str]:
    """SMPL-X joints to keep exactly: ``lock`` names (the rig's bone names, or SMPL-X part/group/joint names), plus
    the selected bones when ``lock_selected`` and the armature is in Pose Mode."""
    bone_joint = {b: j for j, b in bone_map.items()}
    found: set[str] = set()
    unknown = []
    for name in bone_maps.split_names(lock):
        if name in bone_joint:
            found.add(bone_joint[name])
            continue
        try:
            found.update(bone_maps.names_to_joints([name]))
        except ValueError:
            unknown.append(name)
    if unknown:
        raise JobError(f"lock: {', '.join(map(repr, unknown))} is neither a mapped bone of '{obj.name}' nor an "
                       "SMPL-X part, group or joint name (e.g. 'left_arm', 'right_hand', 'head')")
    if lock_selected and obj.mode == "POSE":
        found.update(bone_joint[b] for b in _selected_bones(obj) if b in bone_joint)
    return [j for j in rm.JOINT_NAMES if j in found]


def _selection_hint(obj, lock_selected: bool) -> str:
    if lock_selected and obj.mode == "POSE" and _selected_bones(obj):
        return " (in Pose Mode the selected bones are locked: deselect them or turn off 'Lock selected bones')"
    return ""


class CleanJob(_KeepUnwrittenJob):
    """``dposer.clean``: the keyed clip over a frame range -> one ``clean`` request -> the rotations of the cleaned
    bones (parts minus locked) on every frame; the pelvis (root orientation) and all locations are kept."""

    op = "clean"
    verb = "cleaned"
    max_frames = MAX_CLEAN_FRAMES

    def __init__(self, context, frame_start: int, frame_end: int, strength: float, parts: str, lock: str,
                 lock_selected: bool, seed: int, tag_repaired: bool = True):
        if frame_end < frame_start:
            raise JobError(f"frame_end ({frame_end}) is before frame_start ({frame_start})")
        if frame_end - frame_start + 1 < 3:
            raise JobError(f"Clean needs at least 3 frames, got {frame_start}-{frame_end}")
        _check(P.CLEAN_STRENGTH, strength)
        try:
            part_joints = bone_maps.names_to_joints(parts)
        except ValueError as e:
            raise JobError(str(e)) from None
        if not part_joints:
            raise JobError("Nothing to clean: 'parts' is empty (e.g. 'body' or 'body,hands')")
        obj = self._setup(context, frame_start, frame_end)
        locked = locked_joints(obj, self.bone_map, lock, lock_selected)
        self.fill = [(j, self.bone_map[j]) for j in part_joints if j in self.bone_map and j not in locked]
        if not self.fill:
            raise JobError(f"Nothing to clean on '{obj.name}' ({self.preset.label}): no unlocked bone in "
                           f"{bone_maps.split_names(parts)}{_selection_hint(obj, lock_selected)}")
        self.locked = locked
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        # joints the rig cannot show stay at rest (they fold into their children when reading)
        keep = locked + [j for j in bone_maps.undriven_joints(self.bone_map) if j not in locked]
        self.args = {"clip": pose, "strength": float(strength), "parts": bone_maps.split_names(parts),
                     "lock": keep, "seed": int(seed)}
        self.tag = tag_repaired
        self.repaired, self.cuts = [], []
        self._seed_previous(obj)

    def keys_from_result(self, result: dict) -> list[kf.BoneKeys]:
        bones = dict(self.fill)
        # rows of the clip -> scene frames, on the bones written
        self.repaired = [dict(r, bone=bones[r["joint"]], first=int(self.frames[r["first"]]),
                              last=int(self.frames[r["last"]]))
                         for r in result.get("repaired", []) if r["joint"] in bones]
        self.cuts = [int(self.frames[c]) for c in result.get("cuts", [])]
        return super().keys_from_result(result)

    def apply(self, context, keys: list[kf.BoneKeys]) -> int:
        n = super().apply(context, keys)
        if self.tag:
            obj = self._armature()
            for r in self.repaired:
                kf.tag_keys(obj, r["bone"], self.modes[r["bone"]], range(r["first"], r["last"] + 1), REPAIRED_KEY_TYPE)
        return n

    def summary(self, n_keys: int) -> str:
        if not self.repaired:
            found = "no faults found"
        else:
            frames = {f for r in self.repaired for f in range(r["first"], r["last"] + 1)}
            bones = sorted({r["bone"] for r in self.repaired})
            found = (f"repaired {len(self.repaired)} fault(s) on {len(frames)} frame(s) of "
                     f"{', '.join(bones[:6])}{' ...' if len(bones) > 6 else ''}"
                     + (f" (keys tagged '{REPAIRED_KEY_TYPE}')" if self.tag else ""))
        if self.cuts:
            found += f"; cut(s) at frame {', '.join(map(str, self.cuts))}"
        return f"{super().summary(n_keys)}: {found}"


class VaryJob(_KeepUnwrittenJob):
    """``dposer.vary``: the current frame's pose -> ``vary`` (n) -> n poses of the body, jaw and hand bones (minus
    locked ones), keyed on the current frame of n new armatures in a grid (``RIGS``) or of n new actions (``ACTIONS``).
    Everything is built before anything is created; a failure while creating removes what was made."""

    op = "vary"
    verb = "varied"

    def __init__(self, context, count: int, strength: float, lock: str, lock_selected: bool, seed: int,
                 mode: str = "RIGS", spacing: float = 0.0):
        _check(P.VARY_COUNT, count)
        _check(P.VARY_STRENGTH, strength)
        if mode not in ("RIGS", "ACTIONS"):
            raise JobError(f"mode must be 'RIGS' or 'ACTIONS', got {mode!r}")
        obj = self._setup(context, None, None)
        locked = locked_joints(obj, self.bone_map, lock, lock_selected)
        allowed = _keyed_joints(_POSE_KEYS)
        self.fill = [(j, self.bone_map[j]) for j in rm.JOINT_NAMES
                     if j in allowed and j in self.bone_map and j not in locked]
        if not self.fill:
            raise JobError(f"Nothing to vary on '{obj.name}' ({self.preset.label}): every body, jaw and hand bone "
                           f"is locked or unmapped{_selection_hint(obj, lock_selected)}")
        self.count, self.mode, self.spacing = int(count), mode, float(spacing)
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        keep = locked + [j for j in bone_maps.undriven_joints(self.bone_map) if j not in locked]
        self.args = {"pose": pose, "n": self.count, "strength": float(strength), "lock": keep, "seed": int(seed)}
        self._seed_previous(obj)

    def keys_from_result(self, result: dict) -> list[list[kf.BoneKeys]]:
        aa = rm.joints_from_pose_dict(result)
        if aa.shape[0] != self.count or not np.all(np.isfinite(aa)):
            raise JobError(f"the backend returned {aa.shape[0]} variations, {self.count} were asked for")
        idx = [rm.JOINT_INDEX[j] for j, _ in self.fill]
        out = []
        for i in range(self.count):
            pose = self.aa.copy()
            pose[:, idx] = aa[i:i + 1, idx]
            out.append(self._keys_for(pose))
        return out

    def apply(self, context, variations: list[list[kf.BoneKeys]]) -> int:
        obj = self._armature()
        frame = context.scene.frame_current
        self.created: list[str] = []
        made_objects, made_actions, made_collections = [], [], []
        try:
            if self.mode == "RIGS":
                made = _make_variation_rigs(context, obj, variations, frame, self.spacing, made_objects,
                                            made_actions, made_collections)
            else:
                made = _make_variation_actions(obj, variations, made_actions)
        except Exception:
            for o in made_objects:
                bpy.data.objects.remove(o)
            for a in made_actions:
                bpy.data.actions.remove(a)
            for c in made_collections:
                bpy.data.collections.remove(c)
            raise
        self.created = made
        return sum(len(k.frames) * k.values.shape[1] for keys in variations for k in keys)

    def summary(self, n_keys: int) -> str:
        what = "armatures" if self.mode == "RIGS" else "actions"
        return (f"DPoser: {self.count} variations of '{self.obj_name}' ({self.preset.label}, {len(self.fill)} bones) "
                f"as new {what}: {', '.join(self.created[:3])}{', ...' if len(self.created) > 3 else ''}")


def _rig_spacing(obj) -> float:
    """Grid spacing for copies of an armature: 1.25 x the largest extent of its rest bones (world units)."""
    pts = np.array([list(b.head_local) + [1.0] for b in obj.data.bones]
                   + [list(b.tail_local) + [1.0] for b in obj.data.bones])
    world = pts @ np.array(obj.matrix_world).T
    extent = float(np.ptp(world[:, :3], axis=0).max())
    return 1.25 * extent if extent > 0 else 1.0


def _make_variation_rigs(context, obj, variations, frame, spacing, made_objects, made_actions, made_collections):
    """One copy of ``obj`` (sharing its armature data, with copies of its child objects and of its action) per
    variation, in a new collection, on a grid next to it; each keyed with its variation on ``frame``."""
    coll = bpy.data.collections.new(f"{obj.name} variations")
    made_collections.append(coll)
    context.scene.collection.children.link(coll)
    offsets = rm.grid_offsets(len(variations), spacing if spacing > 0 else _rig_spacing(obj))
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
        if action is None:
            made_actions.append(rig.animation_data.action)
        kf.set_current_rotation(rig, keys, frame)
        names.append(rig.name)
    return names


def _make_variation_actions(obj, variations, made_actions):
    """One new action per variation on ``obj`` (a copy of its action with the variation keyed on the current frame;
    fake user, so it is saved); the armature keeps its own action assigned."""
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

    _params: dict = {}  # property name -> params.Param, checked before any work (out of range: refused)
    _job = None
    _rid = None
    _timer = None
    _backend = None
    _cancel_requested = False

    def _checked_job(self, context) -> PoseJob:
        """The job, after refusing any property out of its declared range (a script's values are not clamped)."""
        for name, param in self._params.items():
            _check(param, getattr(self, name))
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
            job = self._checked_job(context)
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
        scene = context.scene
        obj = context.active_object
        rng = kf.action_frame_range(obj) if obj is not None and obj.type == "ARMATURE" else None
        # default: the whole action (a BVH import leaves the scene's range at 1-250 whatever the take's length)
        start0, end0 = rng if rng is not None else (scene.frame_start, scene.frame_end)
        start = self.frame_start if self.properties.is_property_set("frame_start") else start0
        end = self.frame_end if self.properties.is_property_set("frame_end") else end0
        return CleanJob(context, start, end, self.strength, self.parts, self.lock, self.lock_selected, self.seed,
                        self.tag_repaired)


class DPOSER_OT_vary(_JobOperator, bpy.types.Operator):
    """Make variations of the active armature's pose on the current frame with the DPoser-X prior: new armatures
    in a grid (a crowd) or new actions on this armature"""

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
    lock: StringProperty(name="Lock", default="", description=_LOCK_DESCRIPTION)
    lock_selected: BoolProperty(name="Lock selected bones", default=True, description=_LOCK_SELECTED_DESCRIPTION)
    seed: P.bpy_prop(P.SEED, "Seed")
    _params = {"count": P.VARY_COUNT, "strength": P.VARY_STRENGTH, "spacing": P.VARY_SPACING, "seed": P.SEED}

    def _job_from_props(self, context) -> VaryJob:
        return VaryJob(context, self.count, self.strength, self.lock, self.lock_selected, self.seed, self.mode,
                       self.spacing)


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
            return _report_exception(self, e)
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
            return _report_exception(self, e)
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
            return _report_exception(self, e)
        self.report({"INFO"}, f"DPoser backend {info.get('version')} (protocol {info.get('protocol')}) on "
                              f"{info.get('device')}, torch {info.get('torch')}; {status_text()}")
        return {"FINISHED"}


CLASSES = (DPOSER_OT_add_armature, DPOSER_OT_calibrate_rest, DPOSER_OT_show_zero_pose, DPOSER_OT_complete,
           DPOSER_OT_refine, DPOSER_OT_random_pose, DPOSER_OT_clean, DPOSER_OT_vary, DPOSER_OT_test_backend)


def register() -> None:
    from . import _register_class

    for cls in CLASSES:
        _register_class(cls)


def unregister() -> None:
    _Running.op = None
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
