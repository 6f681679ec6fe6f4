# SPDX-License-Identifier: GPL-3.0-or-later
"""The pose jobs behind the operators: one :class:`PoseJob` subclass per operator (complete, refine, random pose,
clean, vary) validates the request, snapshots the pose through the rig's bone map and calibration, builds the one
backend request and turns the result into new keys. Nothing here writes to the scene before the job's ``apply``.
Needs bpy (the jobs read the scene); the operator classes that drive them are in :mod:`.operators`."""
from __future__ import annotations

import bpy
import numpy as np

from dposer.spec import bone_maps
from dposer.spec import protocol
from dposer.spec import skeleton

from . import channel_keys
from . import crowd
from . import crowd_root
from . import crowd_time
from . import keyframes as kf
from . import params as P
from . import preview
from . import rig_profile as rp
from . import rig_math as rm
from .rig_profile import JobError, detect_rig, retarget_for, rig_from_object  # noqa: F401

MAX_FRAMES = protocol.MAX_POSES  # frames per request of the per-frame jobs (refine, random pose)
MAX_CLEAN_FRAMES = protocol.MAX_FRAMES  # frames per clip (clean, complete over a range)
REPAIRED_KEY_TYPE = "EXTREME"  # keyframe type Clean gives the keys it repaired (its own colour in the Dope Sheet)


def check_param(param: P.Param, value) -> None:
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
    keep_other_handles = False  # keys on frames not written keep their handles exactly (kf.write_rotation_keys)

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
        n = kf.write_rotation_keys(obj, keys, self.keep_other_handles)
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
        names = skeleton.split_names(parts)
        if not names:
            raise JobError("Nothing to complete: 'parts' is empty (e.g. 'right_hand' or 'left_hand,right_hand')")
        try:
            fill = skeleton.names_to_joints(names)
        except ValueError as e:
            raise JobError(str(e)) from None
        rig, det = detect_rig(obj)
        self.fill = [(j, det.bone_map[j]) for j in fill if j in det.bone_map]
        if not self.fill:
            raise JobError(f"The rig '{obj.name}' ({det.preset.label}) has no bones for {', '.join(names)}: use "
                           "SMPL-X Armature from Take (dposer.take_to_smplx) to add an SMPL-X armature keyed with its "
                           "motion, and complete that one")
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
        check_param(P.REFINE_STRENGTH, strength)
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
    for name in skeleton.split_names(lock):
        if name in bone_joint:
            found.add(bone_joint[name])
            continue
        try:
            found.update(skeleton.names_to_joints([name]))
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


def clean_frame_range(context) -> tuple[int, int]:
    """The frames Clean works on when none are given: the active armature's whole action (a BVH import leaves the
    scene's range at 1-250 whatever the take's length), else the scene's range."""
    scene = context.scene
    obj = context.active_object
    rng = kf.action_frame_range(obj) if obj is not None and obj.type == "ARMATURE" else None
    return rng if rng is not None else (scene.frame_start, scene.frame_end)


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
        check_param(P.CLEAN_STRENGTH, strength)
        try:
            part_joints = skeleton.names_to_joints(parts)
        except ValueError as e:
            raise JobError(str(e)) from None
        if not part_joints:
            raise JobError("Nothing to clean: 'parts' is empty (e.g. 'body' or 'body,hands')")
        obj = self._setup(context, frame_start, frame_end)
        locked = locked_joints(obj, self.bone_map, lock, lock_selected)
        self.fill = [(j, self.bone_map[j]) for j in part_joints if j in self.bone_map and j not in locked]
        if not self.fill:
            raise JobError(f"Nothing to clean on '{obj.name}' ({self.preset.label}): no unlocked bone in "
                           f"{skeleton.split_names(parts)}{_selection_hint(obj, lock_selected)}")
        self.locked = locked
        self.kept_bones = set(_selected_bones(obj)) if lock_selected and obj.mode == "POSE" else set()
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        # joints the rig cannot show stay at rest (they fold into their children when reading)
        keep = locked + [j for j in bone_maps.undriven_joints(self.bone_map) if j not in locked]
        self.args = {"clip": pose, "strength": float(strength), "parts": skeleton.split_names(parts),
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
        obj = self._armature()
        # every animated bone cleaned in its own curves (read before any key is written); its repairs win over the
        # prior's keys on their frames
        render = context.scene.render
        keep = {self.bone_map[j] for j in self.locked if j in self.bone_map} | self.kept_bones
        more, repaired = channel_keys.clean_bones(obj, int(self.frames[0]), int(self.frames[-1]),
                                                  float(render.fps) / float(render.fps_base or 1.0), exclude=keep)
        n = super().apply(context, keys)
        n += kf.write_rotation_keys(obj, more)  # after the prior's keys: the channel cleaner's win on their frames
        kf.set_current_rotation(obj, more, context.scene.frame_current)
        overwritten = {k.bone: set(np.asarray(k.frames).astype(int).tolist()) for k in more}
        self.repaired = [r for r in self.repaired if not set(range(r["first"], r["last"] + 1))
                         <= overwritten.get(r["bone"], set())] + repaired
        if self.tag:
            for r in self.repaired:
                kf.tag_keys(obj, r["bone"], obj.pose.bones[r["bone"]].rotation_mode, range(r["first"], r["last"] + 1),
                            REPAIRED_KEY_TYPE)
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
    """``dposer.vary``: on a rig with an action, the motion over the action's frame range (or ``frame_start`` ..
    ``frame_end``) -> ``vary`` with ``clip`` -> n varied motions keyed on every frame; on a rig without one, the
    current frame's pose -> n poses keyed on the current frame. The body, jaw and hand bones (minus locked ones) are
    written, on n new armatures in a grid (``RIGS``) or n new actions (``ACTIONS``), each delayed by its start
    offset (:func:`.crowd_time.start_offsets`). Everything is built before anything is created; a failure while
    creating removes what was made."""

    op = "vary"
    verb = "varied"
    max_frames = MAX_CLEAN_FRAMES  # an animated rig's range is varied as one clip (the server's clip limit)

    def __init__(self, context, count: int, strength: float, lock: str, lock_selected: bool, seed: int,
                 mode: str = "RIGS", spacing: float = 0.0, start_offset: int = 0, frame_start: int | None = None,
                 frame_end: int | None = None):
        check_param(P.VARY_COUNT, count)
        check_param(P.VARY_STRENGTH, strength)
        check_param(P.VARY_START_OFFSET, start_offset)
        if mode not in ("RIGS", "ACTIONS"):
            raise JobError(f"mode must be 'RIGS' or 'ACTIONS', got {mode!r}")
        obj = active_armature(context)
        action_range = kf.action_frame_range(obj)
        if frame_start is None and frame_end is None and action_range is not None and action_range[1] > action_range[0]:
            frame_start, frame_end = action_range  # an animated rig: vary its whole motion
        obj = self._setup(context, frame_start, frame_end)
        locked = locked_joints(obj, self.bone_map, lock, lock_selected)
        allowed = _keyed_joints(_POSE_KEYS)
        self.fill = [(j, self.bone_map[j]) for j in rm.JOINT_NAMES
                     if j in allowed and j in self.bone_map and j not in locked]
        if not self.fill:
            raise JobError(f"Nothing to vary on '{obj.name}' ({self.preset.label}): every body, jaw and hand bone "
                           f"is locked or unmapped{_selection_hint(obj, lock_selected)}")
        self.count, self.mode, self.spacing = int(count), mode, float(spacing)
        self.offsets = crowd_time.start_offsets(self.count, int(start_offset), int(seed))
        pose = rm.pose_dict_from_joints(self.aa, joints=self.retarget.mapped_joints)
        keep = locked + [j for j in bone_maps.undriven_joints(self.bone_map) if j not in locked]
        self.args = {"pose": pose, "n": self.count, "strength": float(strength), "lock": keep, "seed": int(seed)}
        self.root = None
        if len(self.frames) > 1:  # a range is a take: varied as one motion; its root moves so feet stay planted
            render = context.scene.render
            self.args.update(clip=True, fps=float(render.fps) / float(render.fps_base or 1.0))
            self.root = crowd_root.RootMotion.read(obj, self.bone_map, self.retarget.C, self.frames)
            if self.root is not None:
                pose["trans"] = self.root.transl
        self.root_locations = None
        self._seed_previous(obj)

    def keys_from_result(self, result: dict) -> list[list[kf.BoneKeys]]:
        """Keys of each variation: (n, frames, width) arrays over a range, (n, width) for one pose."""
        arrays = {k: np.asarray(v) for k, v in result.items() if k in rm.KEY_JOINTS}
        n = len(next(iter(arrays.values()))) if arrays else 0
        if n != self.count:
            raise JobError(f"the backend returned {n} variations, {self.count} were asked for")
        idx = [rm.JOINT_INDEX[j] for j, _ in self.fill]
        out = []
        for i in range(self.count):
            one = {k: (v[i] if v.ndim == 3 else v[i:i + 1]) for k, v in arrays.items()}
            aa = rm.joints_from_pose_dict(one)
            if not np.all(np.isfinite(aa)):
                raise JobError("the backend returned a variation with non-finite values")
            pose = self.aa.copy()
            pose[:, idx] = aa[:, idx]
            out.append(self._keys_for(pose))
        if self.root is not None and "trans" in result:
            trans = np.asarray(result["trans"], dtype=np.float64)
            if trans.shape != (self.count, len(self.frames), 3) or not np.all(np.isfinite(trans)):
                raise JobError(f"the backend returned translations of shape {trans.shape}")
            self.root_locations = [(self.root.bone, self.frames, self.root.location_for(t)) for t in trans]
        return out

    def apply(self, context, variations: list[list[kf.BoneKeys]]) -> int:
        obj = self._armature()
        frame = context.scene.frame_current
        self.created: list[str] = []
        made_objects, made_actions, made_collections = [], [], []
        try:
            if self.mode == "RIGS":
                made = crowd.make_variation_rigs(context, obj, variations, frame, self.spacing, made_objects,
                                                 made_actions, made_collections, self.offsets, self.root_locations)
            else:
                made = crowd.make_variation_actions(obj, variations, made_actions, self.offsets, self.root_locations)
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
        motion = "" if len(self.frames) == 1 else f", frames {int(self.frames[0])}-{int(self.frames[-1])}"
        starts = f", start offsets {min(self.offsets)}-{max(self.offsets)} frames" if max(self.offsets) else ""
        more = ", ..." if len(self.created) > 3 else ""
        return (f"DPoser: {self.count} variations of '{self.obj_name}' ({self.preset.label}, {len(self.fill)} bones"
                f"{motion}{starts}) as new {what}: {', '.join(self.created[:3])}{more}")
