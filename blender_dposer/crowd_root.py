# SPDX-License-Identifier: GPL-3.0-or-later
"""The root motion of an animated rig for Variations: its pelvis bone's keyed location as an SMPL-X translation
(metres, SMPL-X axes) for the backend, which moves each variation's root so the feet planted in the take stay
planted; and each variation's root location keys back. Needs bpy (reads and writes F-curves)."""
from __future__ import annotations

import numpy as np

from . import keyframes as kf
from . import rig_math as rm
from dposer.spec.skeleton import JOINT_INDEX, REST_OFFSETS


def _leg_length(heads: dict) -> float:
    return float(np.linalg.norm(heads["knee"] - heads["hip"]) + np.linalg.norm(heads["ankle"] - heads["knee"]))


def rig_scale(obj, bone_map: dict) -> float | None:
    """Rig units per metre of the built-in skeleton: the mean ratio of the rig's rest leg lengths (hip -> knee ->
    ankle bone heads, armature space) to the built-in skeleton's; None when a leg bone is unmapped."""
    ratios = []
    for side in ("left", "right"):
        names = {j: bone_map.get(f"{side}_{j}") for j in ("hip", "knee", "ankle")}
        if None in names.values() or any(b not in obj.data.bones for b in names.values()):
            return None
        heads = {j: np.array(obj.data.bones[b].head_local, dtype=np.float64) for j, b in names.items()}
        builtin = sum(float(np.linalg.norm(REST_OFFSETS[JOINT_INDEX[f"{side}_{j}"]])) for j in ("knee", "ankle"))
        ratios.append(_leg_length(heads) / builtin)
    return float(np.mean(ratios))


class RootMotion:
    """The pelvis bone's location keys over ``frames`` as SMPL-X translations, and back."""

    def __init__(self, bone: str, frames: np.ndarray, location: np.ndarray, rest: np.ndarray, C: np.ndarray,
                 scale: float):
        self.bone, self.frames, self.location = bone, frames, location
        self.rest, self.C, self.scale = rest, C, scale
        self.transl = rm.location_to_transl(location, rest, C, scale)  # (F, 3)

    @staticmethod
    def read(obj, bone_map: dict, C: np.ndarray, frames: np.ndarray) -> "RootMotion | None":
        """The rig's root motion, or None when its pelvis is unmapped, its location is not keyed or its legs
        cannot give a scale (then the variations keep the original's root locations)."""
        bone = bone_map.get("pelvis")
        scale = rig_scale(obj, bone_map)
        if bone is None or scale is None or scale <= 0:
            return None
        ch = kf.Channels(obj)
        curves = [ch.find(f'pose.bones["{bone}"].location', i) for i in range(3)]
        if any(fc is None for fc in curves):
            return None
        location = np.stack([kf.sample_fcurve(fc, frames) for fc in curves], -1)
        rest = np.array(obj.data.bones[bone].matrix_local, dtype=np.float64)[:3, :3]
        return RootMotion(bone, np.asarray(frames, dtype=np.float64), location, rest, C, scale)

    def location_for(self, transl: np.ndarray) -> np.ndarray:
        """Location keys (F, 3) for a variation's translations (F, 3): the original's plus the change."""
        change = np.asarray(transl, dtype=np.float64) - self.transl
        return self.location + rm.transl_to_location(change, self.rest, self.C, self.scale)


def write_location_keys(obj, bone: str, frames: np.ndarray, values: np.ndarray) -> int:
    """Key ``bone``'s location (F, 3) on ``frames`` in ``obj``'s action (existing keys on those frames replaced)."""
    ch = kf.Channels(obj, create=True)
    dp = f'pose.bones["{bone}"].location'
    return sum(kf.write_channel(ch.ensure(dp, i, group=bone), frames, values[:, i]) for i in range(3))
