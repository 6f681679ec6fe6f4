"""Bone-map presets (SMPL-X joint -> rig bone name) and their auto-detection. No bpy.

Presets: the official SMPL-X add-on rig (``left_eye_smplhf``), the Meshcapade SMPL-X rig (``left_eye``), Mixamo
(``mixamorig:`` prefix, fingers), Rigify FK controls, CMU BVH (cgspeed naming) and Bandai Namco BVH, both as
Blender's BVH importer names them, and SMPL FBX (``m_avg_*``). Names are matched case-insensitively after
stripping namespaces/prefixes (``mixamorig1:``, ``Armature|``, ``ValveBiped_``, ``Bip01_``, ``DEF-``,
``CC_Base_``; blender.md section 2.1). A preset may lack joints (BVH: no fingers or jaw): :func:`undriven_joints`
lists what the add-on cannot drive so it can say so, and those joints are what "Complete hands" fills in.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .layout import FINGERS
from .skeleton import JOINT_INDEX, JOINT_NAMES, MODELLED_JOINTS


@dataclass(frozen=True)
class Preset:
    """A named bone map. ``bones``: SMPL-X joint -> bone name as the rig spells it."""

    id: str
    label: str
    bones: Mapping[str, str]
    description: str = ""
    warnings: tuple[str, ...] = ()
    # bones typical of the rig that are deliberately left unmapped (root, twist, metacarpal, BVH helper joints)
    extra_bones: tuple[str, ...] = ()
    # a different map for *reading* the evaluated pose (Rigify: DEF bones follow IK as well as FK)
    read_bones: Mapping[str, str] | None = None
    # custom properties to set before FK keys show: {bone: (property, value)} (Rigify IK_FK switches)
    fk_switches: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    # bones use Euler rotation modes (BVH imports): read and write each bone in its own mode
    euler: bool = False
    # the rig's rest pose is far from the SMPL-X zero pose: jobs refuse to run until the rig is calibrated
    needs_calibration: bool = False
    # the rest pose is close to the zero pose but not equal (bone rolls, A/T-pose details): jobs run uncalibrated
    # with a warning that calibration improves the result
    calibration_advised: bool = False

    @property
    def lacks(self) -> tuple[str, ...]:
        """Modelled SMPL-X joints this preset has no bone for."""
        return tuple(j for j in MODELLED_JOINTS if j not in self.bones)


def _side_map(template: Mapping[str, str], left: str, right: str) -> dict[str, str]:
    """Expand {'left_x': 'pattern with {s}'} for both sides; other keys are copied."""
    out = {}
    for j, name in template.items():
        if j.startswith("left_"):
            out[j] = name.format(s=left)
            out["right_" + j[5:]] = name.format(s=right)
        else:
            out[j] = name
    return out


def _finger_map(pattern: str, left: str, right: str, thumb: str | None = None) -> dict[str, str]:
    """Fingers 1-3 of both hands; ``pattern`` has {s} (side), {F} (finger), {f} (finger, lower case), {n} (1-3)."""
    out = {}
    for side, s in (("left", left), ("right", right)):
        for finger in FINGERS:
            p = thumb if (finger == "thumb" and thumb) else pattern
            for n in (1, 2, 3):
                out[f"{side}_{finger}{n}"] = p.format(s=s, F=finger.capitalize(), f=finger, n=n)
    return out


# -- SMPL-X -------------------------------------------------------------------------------------------------

SMPLX_OFFICIAL = Preset(
    id="smplx",
    label="SMPL-X (official add-on)",
    bones={j: j for j in JOINT_NAMES},
    description="SMPL-X for Blender (MPI-IS): 55 bones named as vchoutas/smplx plus 'root'; bones along +Z, roll 0, "
                "so a bone's quaternion is the SMPL-X axis-angle.",
    extra_bones=("root",),
)

SMPLX_MESHCAPADE = Preset(
    id="smplx_meshcapade",
    label="SMPL-X (Meshcapade add-on)",
    bones={**{j: j for j in JOINT_NAMES}, "left_eye_smplhf": "left_eye", "right_eye_smplhf": "right_eye"},
    description="Meshcapade SMPL_blender_addon: eye bones 'left_eye'/'right_eye'; Y-up armature space in "
                "centimetres (object rotated X 90 deg, scale 0.01).",
    extra_bones=("root",),
)

# -- Mixamo -------------------------------------------------------------------------------------------------

MIXAMO = Preset(
    id="mixamo",
    label="Mixamo",
    bones={
        **_side_map({
            "pelvis": "mixamorig:Hips",
            "spine1": "mixamorig:Spine", "spine2": "mixamorig:Spine1", "spine3": "mixamorig:Spine2",
            "neck": "mixamorig:Neck", "head": "mixamorig:Head",
            "left_hip": "mixamorig:{s}UpLeg", "left_knee": "mixamorig:{s}Leg", "left_ankle": "mixamorig:{s}Foot",
            "left_foot": "mixamorig:{s}ToeBase",
            "left_collar": "mixamorig:{s}Shoulder", "left_shoulder": "mixamorig:{s}Arm",
            "left_elbow": "mixamorig:{s}ForeArm", "left_wrist": "mixamorig:{s}Hand",
            "left_eye_smplhf": "mixamorig:{s}Eye",
        }, "Left", "Right"),
        **_finger_map("mixamorig:{s}Hand{F}{n}", "Left", "Right"),
    },
    description="Mixamo FBX (prefix 'mixamorig:', or 'mixamorig1:' ... for further characters); T-pose rest, "
                "fingers straight. The armature object usually carries rot X 90 deg and scale 0.01 (cm): include the "
                "object matrix in C.",
    extra_bones=("mixamorig:HeadTop_End", "mixamorig:LeftToe_End", "mixamorig:RightToe_End"),
    calibration_advised=True,
)

# -- Rigify (FK controls) ------------------------------------------------------------------------------------

_RIGIFY_FK = {
    **_side_map({
        "pelvis": "torso",
        "spine1": "spine_fk.001", "spine2": "spine_fk.002", "spine3": "spine_fk.003",
        "neck": "neck", "head": "head", "jaw": "jaw_master",
        "left_hip": "thigh_fk{s}", "left_knee": "shin_fk{s}", "left_ankle": "foot_fk{s}", "left_foot": "toe_fk{s}",
        "left_collar": "shoulder{s}", "left_shoulder": "upper_arm_fk{s}", "left_elbow": "forearm_fk{s}",
        "left_wrist": "hand_fk{s}",
    }, ".L", ".R"),
    **_finger_map("f_{f}.0{n}{s}", ".L", ".R", thumb="thumb.0{n}{s}"),
}
_RIGIFY_DEF = {
    **_side_map({
        "pelvis": "DEF-spine",
        "spine1": "DEF-spine.001", "spine2": "DEF-spine.002", "spine3": "DEF-spine.003",
        "neck": "DEF-spine.004", "head": "DEF-spine.006", "jaw": "DEF-jaw",
        "left_hip": "DEF-thigh{s}", "left_knee": "DEF-shin{s}", "left_ankle": "DEF-foot{s}", "left_foot": "DEF-toe{s}",
        "left_collar": "DEF-shoulder{s}", "left_shoulder": "DEF-upper_arm{s}", "left_elbow": "DEF-forearm{s}",
        "left_wrist": "DEF-hand{s}",
    }, ".L", ".R"),
    **_finger_map("DEF-f_{f}.0{n}{s}", ".L", ".R", thumb="DEF-thumb.0{n}{s}"),
}
RIGIFY = Preset(
    id="rigify",
    label="Rigify (FK controls)",
    bones=_RIGIFY_FK,
    description="A generated Rigify human rig: keys go to the FK controls (quaternion); the evaluated pose is read "
                "from the DEF bones, which follow IK as well.",
    warnings=(
        "Rigify arms and legs default to IK: set IK_FK = 1.0 (FK) on upper_arm_parent.L/R and thigh_parent.L/R and "
        "key it, or the FK keys written here have no visible effect.",
        "Never write DEF bones (they carry Copy Transforms/Stretch To constraints); FK-to-IK snapping is left to "
        "Rigify's own snapping operators.",
    ),
    extra_bones=("root", "hips", "chest", "upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L",
                 "thigh_parent.R", "MCH-torso.parent"),
    read_bones=_RIGIFY_DEF,
    fk_switches={b: ("IK_FK", 1.0) for b in ("upper_arm_parent.L", "upper_arm_parent.R",
                                             "thigh_parent.L", "thigh_parent.R")},
)

# -- BVH skeletons as Blender's BVH importer names them --------------------------------------------------------

CMU_BVH = Preset(
    id="cmu_bvh",
    label="CMU BVH (cgspeed)",
    bones={
        **_side_map({
            "pelvis": "Hips",
            "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck", "head": "Head",
            "left_hip": "{s}UpLeg", "left_knee": "{s}Leg", "left_ankle": "{s}Foot", "left_foot": "{s}ToeBase",
            "left_collar": "{s}Shoulder", "left_shoulder": "{s}Arm", "left_elbow": "{s}ForeArm", "left_wrist": "{s}Hand",
            "left_index1": "{s}HandIndex1",
        }, "Left", "Right"),
        "left_thumb1": "LThumb", "right_thumb1": "RThumb",
    },
    description="CMU mocap BVH (cgspeed conversion): 31 joints, Euler rotation modes; one finger bone "
                "(HandIndex1 after FingerBase) and a thumb. Units: inches x (1/0.45).",
    warnings=("CMU BVH has no real fingers: 'Complete hands' fills them in, but only index1 and thumb1 have "
              "bones to write to.",),
    extra_bones=("LHipJoint", "RHipJoint", "Neck1", "LeftFingerBase", "RightFingerBase"),
    euler=True,
)

# The ASF/AMC limb names (LeftShoulder = the upper arm), shared by the two ASF-style presets below, which differ
# in their spines (and so in which takes they match best).
_ASF_LIMBS = {
    "left_hip": "{s}Hip", "left_knee": "{s}Knee", "left_ankle": "{s}Ankle", "left_foot": "{s}Toe",
    "left_collar": "{s}Collar", "left_shoulder": "{s}Shoulder", "left_elbow": "{s}Elbow", "left_wrist": "{s}Wrist",
}

CMU_ASF_BVH = Preset(
    id="cmu_asf_bvh",
    label="CMU BVH (ASF-style names)",
    bones=_side_map({
        "pelvis": "Hips",
        "spine1": "Chest", "spine2": "Chest2", "spine3": "Chest3", "neck": "Neck", "head": "Head",
        **_ASF_LIMBS,
    }, "Left", "Right"),
    description="CMU mocap BVH converted with ASF-style joint names (LeftHip, LeftKnee, LeftCollar, LeftShoulder = "
                "the upper arm, LeftElbow, LeftWrist); Euler rotation modes; no fingers.",
    warnings=("This CMU BVH has no fingers: 'Complete hands' fills them in, but there are no bones to write to.",),
    extra_bones=("LeftFingerBase", "RightFingerBase", "Neck1"),
    euler=True,
    calibration_advised=True,
)

ASF_BVH = Preset(
    id="asf_bvh",
    label="ASF-style BVH (LeftHip / LeftCollar)",
    bones=_side_map({"pelvis": "Hips", "spine1": "Spine", "spine3": "Chest", "neck": "Neck", "head": "Head",
                     **_ASF_LIMBS}, "Left", "Right"),
    description="BVH skeletons named after the ASF/AMC joints (e.g. the m21 / Xia style takes): LeftHip, LeftKnee, "
                "LeftAnkle, LeftCollar, and LeftShoulder = the upper arm (in CMU / Mixamo naming 'LeftShoulder' "
                "is the collar: the preset with more matching names wins).",
    extra_bones=("LHipJoint", "RHipJoint"),
    euler=True,
)

BANDAI_BVH = Preset(
    id="bandai_bvh",
    label="Bandai Namco BVH",
    bones=_side_map({
        "pelvis": "Hips",
        "spine1": "Spine", "spine3": "Chest", "neck": "Neck", "head": "Head",
        "left_hip": "UpperLeg{s}", "left_knee": "LowerLeg{s}", "left_ankle": "Foot{s}", "left_foot": "Toes{s}",
        "left_collar": "Shoulder{s}", "left_shoulder": "UpperArm{s}", "left_elbow": "LowerArm{s}",
        "left_wrist": "Hand{s}",
    }, "_L", "_R"),
    description="Bandai Namco Research Motion dataset BVH: 22 joints under 'joint_Root', centimetres, Euler "
                "(ZXY channels); two spine segments (Spine, Chest = spine1, spine3). Its rest pose has every bone along "
                "its local +X, so it needs a rest calibration before anything is copied.",
    warnings=("Bandai Namco BVH has no fingers and no jaw: 'Complete hands' can fill them in, but there are no bones "
              "to write them to.",
              "The rest pose is not a T-pose: calibrate (pose the rig in the SMPL-X zero pose) before use.",),
    extra_bones=("joint_Root",),
    euler=True,
    needs_calibration=True,
)

METARIG_BVH = Preset(
    id="metarig_bvh",
    label="Blender metarig BVH (pelvis, spine.001, upper_arm.L)",
    bones=_side_map({
        "pelvis": "pelvis", "spine1": "spine", "spine3": "spine.001", "neck": "neck", "head": "face",
        "left_hip": "thigh{s}", "left_knee": "shin{s}", "left_ankle": "foot{s}", "left_foot": "toe{s}",
        "left_collar": "shoulder{s}", "left_shoulder": "upper_arm{s}", "left_elbow": "forearm{s}",
        "left_wrist": "hand{s}",
    }, ".L", ".R"),
    description="BVH takes on a skeleton with Blender human-metarig bone names under a 'pelvis' root (e.g. the "
                "ReActIdle idle takes): spine, spine.001 (the chest the arms branch from), neck, face; the hands "
                "may be End Sites of the forearms.",
    extra_bones=("pelvis.L", "pelvis.R"),
    euler=True,
)

# -- SMPL FBX -----------------------------------------------------------------------------------------------

SMPL_FBX = Preset(
    id="smpl_fbx",
    label="SMPL FBX (m_avg_* / f_avg_*)",
    bones=_side_map({
        "pelvis": "m_avg_Pelvis",
        "spine1": "m_avg_Spine1", "spine2": "m_avg_Spine2", "spine3": "m_avg_Spine3",
        "neck": "m_avg_Neck", "head": "m_avg_Head",
        "left_hip": "m_avg_{s}_Hip", "left_knee": "m_avg_{s}_Knee", "left_ankle": "m_avg_{s}_Ankle",
        "left_foot": "m_avg_{s}_Foot", "left_collar": "m_avg_{s}_Collar", "left_shoulder": "m_avg_{s}_Shoulder",
        "left_elbow": "m_avg_{s}_Elbow", "left_wrist": "m_avg_{s}_Wrist",
    }, "L", "R"),
    description="SMPL (not -X) FBX rigs; female rigs use the f_avg_ prefix (matched after prefix stripping). SMPL has "
                "one hand joint (L_Hand/R_Hand), no fingers.",
    extra_bones=("m_avg_L_Hand", "m_avg_R_Hand", "m_avg_root"),
)

PRESETS: dict[str, Preset] = {p.id: p for p in (SMPLX_OFFICIAL, SMPLX_MESHCAPADE, MIXAMO, RIGIFY, CMU_BVH,
                                                CMU_ASF_BVH, ASF_BVH, BANDAI_BVH, METARIG_BVH, SMPL_FBX)}


# ---------------------------------------------------------------------------------------------------------
# Name normalisation and detection.

_NAMESPACE = re.compile(r"^.*[:|]")  # FBX namespaces: "mixamorig:", "mixamorig1:", "Armature|", "Character1:"
_PREFIXES = ("valvebiped_", "valvebiped.", "bip01_", "bip_01_", "def_", "cc_base_", "m_avg_", "f_avg_")


def normalize_name(name: str) -> str:
    """Case-insensitive key of a bone name: namespace and known prefixes stripped, '-'/space -> '_'.

    ``'mixamorig1:LeftHand'`` -> ``'lefthand'``, ``'DEF-thigh.L'`` -> ``'thigh.l'``, ``'f_avg_L_Hip'`` -> ``'l_hip'``,
    ``'ValveBiped.Bip01_Pelvis'`` (Source engine) -> ``'pelvis'``.
    """
    n = _NAMESPACE.sub("", name.strip())
    n = re.sub(r"[\s\-]+", "_", n).lower()
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if n.startswith(p) and len(n) > len(p):
                n = n[len(p):]
                changed = True
    return n


def resolve(bones: Mapping[str, str], rig_bones: Iterable[str]) -> dict[str, str]:
    """Map preset bone names onto a rig's actual names: exact match first, then case-insensitive, then after
    :func:`normalize_name`. Returns {SMPL-X joint: rig bone name} for the joints found; a rig bone is used once."""
    rig_bones = list(rig_bones)
    exact = set(rig_bones)
    lower: dict[str, str] = {}
    norm: dict[str, str] = {}
    for b in rig_bones:
        lower.setdefault(b.lower(), b)
        norm.setdefault(normalize_name(b), b)
    out: dict[str, str] = {}
    used: set[str] = set()
    for joint, name in bones.items():
        for cand in (name if name in exact else None, lower.get(name.lower()), norm.get(normalize_name(name))):
            if cand is not None and cand not in used:
                out[joint] = cand
                used.add(cand)
                break
    return out


# Limb chains, proximal to distal: each bone's parent in the rig must be the bone of the joint before it.
LIMB_CHAINS = tuple((f"{s}_collar", f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist") for s in ("left", "right")) + \
    tuple((f"{s}_hip", f"{s}_knee", f"{s}_ankle", f"{s}_foot") for s in ("left", "right"))


def fix_limb_chains(bone_map: Mapping[str, str], parents: Mapping[str, str | None]) -> dict[str, str]:
    """Correct a name-based map with the rig's hierarchy: when a limb joint has no bone but the joint above it got
    the direct parent of the joint below it, the names put that bone one level too high. E.g. an arm whose
    'LeftShoulder' bone is the direct parent of the elbow bone is the upper arm, not the collar (CMU BVH with
    ASF-style names: LeftCollar / LeftShoulder / LeftElbow), whatever the preset's names say. The bone moves down
    to the joint it drives; the joint it leaves has no bone (a partial map, which the Detection reports). Bones
    are never guessed for joints the names did not map."""
    out = dict(bone_map)
    for chain in LIMB_CHAINS:
        for i in range(len(chain) - 1, 1, -1):
            below, joint, above = chain[i], chain[i - 1], chain[i - 2]
            if below in out and joint not in out and above in out and parents.get(out[below]) == out[above]:
                out[joint] = out.pop(above)
    return out


@dataclass(frozen=True)
class Detection:
    preset: Preset
    bone_map: dict[str, str]  # SMPL-X joint -> the rig's actual bone name
    matched: int  # preset bones found on the rig
    coverage: float  # matched / number of preset bones
    missing_bones: tuple[str, ...]  # preset bone names not found on the rig

    @property
    def undriven(self) -> tuple[str, ...]:
        """Modelled SMPL-X joints without a bone on this rig (the preset lacks them or the rig misses them)."""
        return undriven_joints(self.bone_map)

    @property
    def missing_joints(self) -> tuple[str, ...]:
        """Joints the preset maps but this rig has no bone for: the map is partial, these are not driven."""
        return tuple(j for j in JOINT_NAMES if j in self.preset.bones and j not in self.bone_map)

    def warnings(self, calibrated: bool) -> list[str]:
        """What the artist must know before a job runs on this rig: a partial map (and which joints it misses),
        and a rig used uncalibrated where calibration matters."""
        out = []
        if self.missing_joints:
            out.append(f"partial bone map ({self.preset.label}): no bone for "
                       f"{summarize_joints(self.missing_joints)}; those joints are not read or written")
        if not calibrated and self.preset.calibration_advised:
            out.append(f"{self.preset.label} rig used uncalibrated: its rest pose is taken as the SMPL-X zero pose; "
                       "pose it in a T-pose (palms down, flat hands) and click Calibrate Rest for exact results")
        return out


def rank_presets(rig_bones: Iterable[str], presets: Iterable[Preset] | None = None,
                 parents: Mapping[str, str | None] | None = None) -> list[Detection]:
    """Every preset scored against a rig's bone names, best first (most bones found, then coverage). With the rig's
    ``parents`` ({bone: parent bone or None}), each map's limbs are corrected by :func:`fix_limb_chains`."""
    rig_bones = list(rig_bones)
    norm_rig = {normalize_name(b) for b in rig_bones}
    out = []
    for p in (PRESETS.values() if presets is None else presets):
        bone_map = resolve(p.bones, rig_bones)
        if parents is not None:
            bone_map = fix_limb_chains(bone_map, parents)
        missing = tuple(b for j, b in p.bones.items() if j not in bone_map)
        extra = sum(normalize_name(b) in norm_rig for b in p.extra_bones)
        det = Detection(p, bone_map, len(bone_map), len(bone_map) / len(p.bones), missing)
        out.append((len(bone_map), det.coverage, extra, det))
    out.sort(key=lambda t: t[:3], reverse=True)
    return [t[3] for t in out]


def detect_preset(rig_bones: Iterable[str], min_matched: int = 5, min_coverage: float = 0.3,
                  parents: Mapping[str, str | None] | None = None) -> Detection | None:
    """Best preset for a rig from its bone names, or None when nothing matches well enough.

    Scoring: the number of preset bones found (case-insensitive, prefixes stripped), then the coverage (fraction of
    the preset found), then how many of the preset's typical unmapped bones are present (e.g. 'root', 'LHipJoint').
    """
    ranked = rank_presets(rig_bones, parents=parents)
    if not ranked:
        return None
    best = ranked[0]
    if best.matched < min_matched or best.coverage < min_coverage:
        return None
    return best


def detection_for(preset_id: str, rig_bones: Iterable[str], min_matched: int = 5,
                  min_coverage: float = 0.3, parents: Mapping[str, str | None] | None = None) -> Detection:
    """The :class:`Detection` of one named preset on a rig (a preset the user chose instead of auto-detection).
    Raises ValueError for an unknown preset id, or a preset the rig matches less than :func:`detect_preset` needs."""
    if preset_id not in PRESETS:
        raise ValueError(f"unknown bone-map preset {preset_id!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[preset_id]
    det = rank_presets(rig_bones, [preset], parents)[0]
    if det.matched < min(min_matched, len(preset.bones)) or det.coverage < min_coverage:
        raise ValueError(f"the rig has only {det.matched} of the {len(preset.bones)} bones of the preset "
                         f"'{preset.label}'")
    return det


def undriven_joints(bone_map: Mapping[str, str], modelled_only: bool = True) -> tuple[str, ...]:
    """SMPL-X joints the bone map does not drive, in SMPL-X order (only those DPoser-X models by default: the pelvis
    and eyes are not modelled). The add-on marks them unknown; e.g. "Complete hands" fills the fingers in."""
    pool = MODELLED_JOINTS if modelled_only else JOINT_NAMES
    return tuple(j for j in pool if j not in bone_map)


def summarize_joints(joints: Iterable[str]) -> str:
    """Short human-readable list: whole hands collapse to 'left fingers (15)' etc."""
    joints = [j for j in JOINT_NAMES if j in set(joints)]
    parts = []
    for side in ("left", "right"):
        fingers = [f"{side}_{f}{n}" for f in FINGERS for n in (1, 2, 3)]
        if all(f in joints for f in fingers):
            parts.append(f"{side} fingers (15)")
            joints = [j for j in joints if j not in fingers]
    return ", ".join(parts + joints)


def validate_bone_map(bone_map: Mapping[str, str], rig_bones: Iterable[str] | None = None) -> list[str]:
    """Problems of a (user-edited) bone map: unknown SMPL-X joints, bones missing from the rig, a bone used twice."""
    problems = []
    for j in bone_map:
        if j not in JOINT_INDEX:
            problems.append(f"unknown SMPL-X joint {j!r}")
    if rig_bones is not None:
        names = set(rig_bones)
        for j, b in bone_map.items():
            if b not in names:
                problems.append(f"{j}: bone {b!r} is not in the rig")
    seen: dict[str, str] = {}
    for j, b in bone_map.items():
        if b in seen:
            problems.append(f"bone {b!r} is mapped to both {seen[b]} and {j}")
        seen.setdefault(b, j)
    return problems


def bone_map_to_json(bone_map: Mapping[str, str], preset_id: str | None = None) -> str:
    """Serialise a bone map (for a custom property or a text block on the armature)."""
    ordered = {j: bone_map[j] for j in JOINT_NAMES if j in bone_map}
    return json.dumps({"version": 1, "preset": preset_id, "bones": ordered}, indent=1)


def bone_map_from_json(text: str) -> tuple[dict[str, str], str | None]:
    """Inverse of :func:`bone_map_to_json`; raises ValueError on anything malformed."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"bone map is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("bones"), dict):
        raise ValueError("bone map must be an object {version: 1, preset, bones: {joint: bone}}")
    bones = data["bones"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in bones.items()):
        raise ValueError("bone map entries must be strings")
    problems = validate_bone_map(bones)
    if problems:
        raise ValueError("; ".join(problems))
    return dict(bones), data.get("preset")
