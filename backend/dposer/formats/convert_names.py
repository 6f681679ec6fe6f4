"""Which BVH joint is which SMPL-X body joint, for :mod:`dposer.formats.convert`: the bone-map presets of :mod:`dposer.spec.bone_maps` (the one
table of rig and BVH bone names) ranked on a take's joint names, joints placed on an End Site, and the chest
found where the arms branch. No NumPy, no torch."""
from __future__ import annotations

from . import bvh as bvh_io
from ..spec import layout

BODY = frozenset(layout.JOINT_NAMES[:22])

# Joints every take must map (the rest is optional).
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
# Joints that may sit on their parent's End Site when the take has no joint for them (a forearm that ends in an
# End Site gives the wrist's place): SMPL-X joint -> its SMPL-X parent.
END_SITE_JOINTS = {"left_wrist": "left_elbow", "right_wrist": "right_elbow", "left_ankle": "left_knee",
                   "right_ankle": "right_knee", "head": "neck"}


def _bone_maps():
    """The one table of rig / BVH bone names (:mod:`dposer.spec.bone_maps`)."""
    from ..spec import bone_maps

    return bone_maps


def presets() -> list[str]:
    """Ids of the name presets a take can be read with (``--skeleton``)."""
    return list(_bone_maps().PRESETS)


def body_map(names: list[str], preset: str | None = None,
             ends: frozenset[str] = frozenset()) -> tuple[str, dict[str, str]]:
    """(preset id, {SMPL-X body joint: BVH joint name}) for a take's joint names; the best-matching preset unless
    one is named. ``ends``: names of the joints that end in an End Site (no child joint): a required joint of
    :data:`END_SITE_JOINTS` may sit on its parent's End Site. Raises BvhError when a required joint is missing."""
    bm = _bone_maps()
    if preset is not None and preset not in bm.PRESETS:
        raise ValueError(f"unknown skeleton preset {preset!r}; known: {', '.join(bm.PRESETS)}")
    candidates = [bm.PRESETS[preset]] if preset else list(bm.PRESETS.values())
    body_presets = [bm.Preset(p.id, p.label, {j: b for j, b in p.bones.items() if j in BODY},
                              extra_bones=p.extra_bones) for p in candidates]
    best = bm.rank_presets(names, body_presets)[0]
    missing = [j for j in REQUIRED if j not in best.bone_map
               and not (j in END_SITE_JOINTS and best.bone_map.get(END_SITE_JOINTS[j]) in ends)]
    if missing:
        raise bvh_io.BvhError(
            f"cannot map the take's joints to SMPL-X: the best name preset ({best.preset.id}) finds no joint for "
            f"{', '.join(missing)} among the file's joints ({', '.join(names)}).")
    return best.preset.id, dict(best.bone_map)


def chest_at_branch(take_bvh: bvh_io.Bvh, bone_map: dict[str, str]) -> dict[str, str]:
    """The bone map with the BVH joint that the collars (or, without collars, the upper arms) branch from mapped
    to spine3 (the chest) when no joint is: a name preset's spine2 or spine1 may be that joint (the ASF-named CMU
    takes branch the arms from Chest2)."""
    if "spine3" in bone_map:
        return bone_map
    arms = [bone_map.get(f"{s}_collar") or bone_map.get(f"{s}_shoulder") for s in ("left", "right")]
    if None in arms:
        return bone_map
    parents = {take_bvh.joints[take_bvh.joints[take_bvh.index(a)].parent].name for a in arms}
    for j in ("spine2", "spine1"):
        if parents == {bone_map.get(j)}:
            out = {k: v for k, v in bone_map.items() if k != j}
            out["spine3"] = bone_map[j]
            return out
    return bone_map
