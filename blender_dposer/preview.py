# SPDX-License-Identifier: GPL-3.0-or-later
"""Preview of Complete's K hypotheses before accepting one. Needs bpy.

``dposer.complete`` with ``preview`` on and ``hypotheses`` > 1 writes hypothesis 1 (the most plausible) and stores
a preview on the armature object (custom property ``dposer_preview``, JSON): the keys of every hypothesis (at most
:data:`MAX_PREVIEW_POSES` hypotheses x frames), which one is shown, the rotation values before the run, and the
name of a backup copy of the armature's action made before the run (a hidden action with a fake user, so a long
mocap take costs no JSON). Then:

- ``dposer.preview_next`` / ``dposer.preview_previous``: show the next / previous hypothesis (keys rewritten);
- ``dposer.preview_accept``: keep the shown hypothesis, drop the preview;
- ``dposer.preview_cancel``: put the original keys back exactly (every key attribute), drop the preview.

Each is one undo step. While a preview is pending, the other DPoser jobs refuse to run on that armature.
"""
from __future__ import annotations

import json

import bpy
import numpy as np

from . import keyframes as kf
from .rig_profile import JobError

PREVIEW_PROP = "dposer_preview"
MAX_PREVIEW_POSES = 2000  # hypotheses x frames kept for a preview


def has_preview(obj) -> bool:
    return obj is not None and PREVIEW_PROP in obj


def load(obj) -> dict:
    if not has_preview(obj):
        raise JobError(f"'{obj.name}' has no pending DPoser preview")
    return json.loads(str(obj[PREVIEW_PROP]))


def start(obj, hypotheses: list[list[kf.BoneKeys]], scores, frame: float, mean_first: bool = False) -> int:
    """Back up the action, write hypothesis 0, store the preview; returns the keys written. On an error the backup
    is removed again (the caller leaves the keys as they were: nothing is written before the backup exists).
    ``mean_first``: entry 0 is the best estimate (the mean of the others), labelled so in the panel."""
    bones = [k.bone for k in hypotheses[0]]
    ad = obj.animation_data
    action = ad.action if ad is not None else None
    backup = None
    if action is not None:
        backup = action.copy()
        backup.name = f".dposer_preview_backup {obj.name}"
        backup.use_fake_user = True
    state = {
        "action": None if action is None else action.name,
        "backup": None if backup is None else backup.name,
        "bones": bones,
        "current": kf.rotation_values_now(obj, bones),
        "index": 0,
        "mean_first": bool(mean_first),
        "frame": float(frame),
        "scores": np.asarray(scores, dtype=np.float64).tolist(),
        "hypotheses": [[{"bone": k.bone, "mode": k.mode, "frames": np.asarray(k.frames).tolist(),
                         "values": np.asarray(k.values).tolist()} for k in keys] for keys in hypotheses],
    }
    try:
        n = _show(obj, state, 0)
    except Exception:
        if backup is not None:
            bpy.data.actions.remove(backup)
        raise
    obj[PREVIEW_PROP] = json.dumps(state)
    return n


def _keys(state: dict, index: int) -> list[kf.BoneKeys]:
    return [kf.BoneKeys(k["bone"], k["mode"], np.asarray(k["frames"]), np.asarray(k["values"]))
            for k in state["hypotheses"][index]]


def _show(obj, state: dict, index: int) -> int:
    keys = _keys(state, index)
    missing = [k.bone for k in keys if k.bone not in obj.pose.bones]
    if missing:
        raise JobError(f"bones vanished from '{obj.name}': {', '.join(missing)}")
    n = kf.write_rotation_keys(obj, keys)
    kf.set_current_rotation(obj, keys, state["frame"])
    obj.update_tag()
    return n


def step(obj, delta: int) -> tuple[int, int]:
    """Show the hypothesis ``delta`` away (cyclic); returns (shown index, count)."""
    state = load(obj)
    count = len(state["hypotheses"])
    state["index"] = (state["index"] + delta) % count
    _show(obj, state, state["index"])
    obj[PREVIEW_PROP] = json.dumps(state)
    return state["index"], count


def _remove_backup(state: dict) -> None:
    backup = bpy.data.actions.get(state["backup"]) if state["backup"] else None
    if backup is not None:
        bpy.data.actions.remove(backup)


def accept(obj) -> int:
    state = load(obj)
    _remove_backup(state)
    del obj[PREVIEW_PROP]
    return state["index"]


def cancel(obj) -> None:
    """The original keys back exactly (from the backup action), or no action when there was none."""
    state = load(obj)
    ad = obj.animation_data
    if state["action"] is None:
        if ad is not None and ad.action is not None:
            made = ad.action
            ad.action = None
            if made.users == 0:
                bpy.data.actions.remove(made)
    else:
        backup = bpy.data.actions.get(state["backup"]) if state["backup"] else None
        if backup is None:
            raise JobError(f"the backup action '{state['backup']}' of the preview is gone: undo instead")
        kf.restore_rotation_channels(obj, backup, state["bones"])
        _remove_backup(state)
    kf.set_rotation_values(obj, state["current"])
    obj.update_tag()
    del obj[PREVIEW_PROP]


def status(obj) -> str | None:
    """Panel line: 'Hypothesis 2/8 (score 0.0123)' or, for a best-estimate entry, 'Best estimate: mean of 8
    hypotheses'; None without a preview."""
    if not has_preview(obj):
        return None
    state = load(obj)
    i, count = state["index"], len(state["hypotheses"])
    if state.get("mean_first"):
        if i == 0:
            return f"Best estimate: mean of {count - 1} hypotheses"
        i, count = i - 1, count - 1
    scores = np.asarray(state["scores"])[1:] if state.get("mean_first") else np.asarray(state["scores"])
    score = f" (score {scores[i].mean():.4g})" if scores.ndim >= 1 and len(scores) > i else ""
    return f"Hypothesis {i + 1}/{count}{score}"


class _PreviewOperator:
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not has_preview(context.active_object):
            cls.poll_message_set("The active object has no pending DPoser preview (Complete with Preview)")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        try:
            message = self.run(obj)
        except Exception as e:  # noqa: BLE001 - reported; the preview is kept
            self.report({"ERROR"}, f"DPoser: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"DPoser: {message}")
        return {"FINISHED"}


class DPOSER_OT_preview_next(_PreviewOperator, bpy.types.Operator):
    """Show the next completion hypothesis"""

    bl_idname = "dposer.preview_next"
    bl_label = "Next Hypothesis"

    def run(self, obj) -> str:
        i, n = step(obj, 1)
        return f"hypothesis {i + 1}/{n}"


class DPOSER_OT_preview_previous(_PreviewOperator, bpy.types.Operator):
    """Show the previous completion hypothesis"""

    bl_idname = "dposer.preview_previous"
    bl_label = "Previous Hypothesis"

    def run(self, obj) -> str:
        i, n = step(obj, -1)
        return f"hypothesis {i + 1}/{n}"


class DPOSER_OT_preview_accept(_PreviewOperator, bpy.types.Operator):
    """Keep the shown completion hypothesis"""

    bl_idname = "dposer.preview_accept"
    bl_label = "Accept"

    def run(self, obj) -> str:
        return f"accepted hypothesis {accept(obj) + 1}"


class DPOSER_OT_preview_cancel(_PreviewOperator, bpy.types.Operator):
    """Drop the completion and put the original keys back exactly"""

    bl_idname = "dposer.preview_cancel"
    bl_label = "Cancel"

    def run(self, obj) -> str:
        cancel(obj)
        return "preview cancelled, original keys restored"


CLASSES = (DPOSER_OT_preview_next, DPOSER_OT_preview_previous, DPOSER_OT_preview_accept, DPOSER_OT_preview_cancel)
