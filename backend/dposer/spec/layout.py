"""SMPL-X joint table and the 256-D whole-body pose vector.

Vector layout (axis-angle, radians, joint-local rotations, no root):
    [body 63 | left hand 45 | right hand 45 | jaw 3 | expression 100]
Hands are absolute (zero = flat hand). The left hand is stored in its own (left) convention here;
the model mirrors it into right-hand convention internally (see ``mirror_hand``).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)
NUM_JOINTS = len(JOINT_NAMES)  # 55

PARENTS = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# The largest axis-angle component accepted in input poses (radians). A joint rotation needs at most pi; poses
# beyond 4 pi are degrees, or garbage, not radians.
MAX_ROTATION = 4 * np.pi

FINGERS = ("index", "middle", "pinky", "ring", "thumb")

# Parts of the whole-body vector: name -> (start, stop). The order is the model's part order.
PARTS = ("body", "left_hand", "right_hand", "face")
PART_SLICES = {
    "body": slice(0, 63),
    "left_hand": slice(63, 108),
    "right_hand": slice(108, 153),
    "face": slice(153, 256),
}
DIM = 256
# The six SMPL-X keys and where they live in the vector (global_orient is never modelled).
KEY_SLICES = {
    "body_pose": slice(0, 63),
    "left_hand_pose": slice(63, 108),
    "right_hand_pose": slice(108, 153),
    "jaw_pose": slice(153, 156),
    "expression": slice(156, 256),
}
# Both hands, one contiguous block (left then right).
HANDS = slice(PART_SLICES["left_hand"].start, PART_SLICES["right_hand"].stop)
POSE_KEYS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "expression")
KEY_PART = {"body_pose": "body", "left_hand_pose": "left_hand", "right_hand_pose": "right_hand",
            "jaw_pose": "face", "expression": "face"}

# Joints that own three dims of the vector, in vector order (body 1..21, left fingers, right fingers, jaw).
VECTOR_JOINTS = tuple(JOINT_NAMES[1:22]) + tuple(JOINT_NAMES[25:40]) + tuple(JOINT_NAMES[40:55]) + ("jaw",)
_JOINT_OFFSET = {name: 3 * i for i, name in enumerate(VECTOR_JOINTS)}
_JOINT_OFFSET["jaw"] = 153


def _fingers(side: str, finger: str) -> tuple[str, ...]:
    return tuple(f"{side}_{finger}{k}" for k in (1, 2, 3))


def _groups() -> dict[str, tuple[str, ...]]:
    g = {
        "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
        "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
        "left_arm": ("left_collar", "left_shoulder", "left_elbow", "left_wrist"),
        "right_arm": ("right_collar", "right_shoulder", "right_elbow", "right_wrist"),
        "trunk": ("spine1", "spine2", "spine3", "left_shoulder", "right_shoulder"),
        "spine": ("spine1", "spine2", "spine3"),
        "head_neck": ("neck", "head"),
        "wrists": ("left_wrist", "right_wrist"),
    }
    g["legs"] = g["left_leg"] + g["right_leg"]
    g["arms"] = g["left_arm"] + g["right_arm"]
    for side in ("left", "right"):
        for finger in FINGERS:
            g[f"{side}_{finger}"] = _fingers(side, finger)
        g[f"{side}_fingers"] = tuple(j for f in FINGERS for j in _fingers(side, f))
    g["hands"] = g["left_fingers"] + g["right_fingers"]
    return g


GROUPS = _groups()


def names_to_dims(names: Iterable[str] | str) -> np.ndarray:
    """Indices into the 256-D vector covered by part, group, joint or key names.

    Accepts a comma-separated string or a list. Part names: body, left_hand, right_hand, face (jaw +
    expression); also 'hands', 'all', 'jaw', 'expression', the pose keys, any group in ``GROUPS`` and
    any SMPL-X joint that the vector holds. Unknown names raise ``ValueError`` listing them.
    """
    if isinstance(names, str):
        names = [n for n in (s.strip() for s in names.split(",")) if n]
    elif isinstance(names, (list, tuple, set, frozenset)) and all(isinstance(n, str) for n in names):
        names = list(names)
    else:
        raise ValueError(f"names must be a comma-separated string or a list of strings (e.g. 'right_hand' or "
                         f"['left_leg']; [] for none), got {type(names).__name__}")
    dims: list[int] = []
    unknown = []
    for name in names:
        if name == "all":
            dims.extend(range(DIM))
        elif name in PART_SLICES:
            dims.extend(range(DIM)[PART_SLICES[name]])
        elif name in KEY_SLICES:
            dims.extend(range(DIM)[KEY_SLICES[name]])
        elif name in GROUPS:
            for j in GROUPS[name]:
                dims.extend(range(_JOINT_OFFSET[j], _JOINT_OFFSET[j] + 3))
        elif name in _JOINT_OFFSET:
            dims.extend(range(_JOINT_OFFSET[name], _JOINT_OFFSET[name] + 3))
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(repr(u[:40] + "..." if len(u) > 40 else u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(f"unknown part/group/joint name(s): {shown}{more}; "
                         f"parts: {', '.join(PARTS)}, groups: {', '.join(sorted(GROUPS))}, "
                         f"or an SMPL-X joint name such as 'right_pinky1'")
    return np.unique(np.asarray(dims, dtype=np.int64))


def dim_mask(names: Iterable[str] | str) -> np.ndarray:
    """Boolean (256,) mask that is True on the dims named by ``names``."""
    mask = np.zeros(DIM, dtype=bool)
    mask[names_to_dims(names)] = True
    return mask


def part_mask_from_dims(dims_present: np.ndarray) -> np.ndarray:
    """(..., 4) part mask: a part counts as present when all its dims are present."""
    dims_present = np.asarray(dims_present, dtype=bool)
    return np.stack([dims_present[..., PART_SLICES[p]].all(-1) for p in PARTS], axis=-1)


def part_mask_from_names(parts: Iterable[str] | str | None) -> np.ndarray:
    """(4,) bool over PARTS from part names (a list or comma-separated string); None or empty = all parts."""
    if parts is None or (isinstance(parts, str) and not parts.strip()):
        return np.ones(len(PARTS), dtype=bool)
    names = [p.strip() for p in parts.split(",")] if isinstance(parts, str) else list(parts)
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; parts are {', '.join(PARTS)}")
    return np.array([p in names for p in PARTS])


def dims_from_part_mask(part_mask: np.ndarray) -> np.ndarray:
    """Expand a (..., 4) part mask to a (..., 256) dim mask."""
    part_mask = np.asarray(part_mask, dtype=bool)
    out = np.zeros(part_mask.shape[:-1] + (DIM,), dtype=bool)
    for i, p in enumerate(PARTS):
        out[..., PART_SLICES[p]] = part_mask[..., i : i + 1]
    return out


def vectors_to_dict(vectors, global_orient=None, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """(..., 256) vectors -> the six SMPL-X keys as float32 arrays (copies): ``global_orient`` (..., 3) as given,
    zeros when None. ``keys``: only these keys (default all six). The inverse of :func:`dict_to_vectors`."""
    v = np.asarray(vectors, dtype=np.float32)
    keys = POSE_KEYS if keys is None else tuple(keys)
    unknown = [k for k in keys if k not in POSE_KEYS]
    if unknown:
        raise ValueError(f"unknown pose key(s) {unknown}; keys are {', '.join(POSE_KEYS)}")
    out = {}
    if "global_orient" in keys:
        out["global_orient"] = (np.zeros(v.shape[:-1] + (3,), np.float32) if global_orient is None
                                else np.asarray(global_orient).astype(np.float32))
    for key, sl in KEY_SLICES.items():
        if key in keys:
            out[key] = v[..., sl].copy()
    return out


def dict_to_vectors(poses, base=None) -> np.ndarray:
    """A dict of SMPL-X keys -> (..., 256) float32 vectors: the keys present written into a copy of ``base``
    (..., 256) or into zeros; ``global_orient`` and other keys are ignored. The inverse of :func:`vectors_to_dict`."""
    if base is None:
        rows = [np.shape(poses[k]) for k in KEY_SLICES if k in poses]
        if not rows:
            raise ValueError(f"no pose key among {sorted(poses)}; expected some of {list(KEY_SLICES)}")
        v = np.zeros(rows[0][:-1] + (DIM,), np.float32)
    else:
        v = np.array(base, copy=True)
    for key, sl in KEY_SLICES.items():
        if key in poses:
            v[..., sl] = poses[key]
    return v


def mirror_hand(hand):
    """Mirror a hand pose between left and right conventions: (x, y, z) -> (x, -y, -z) per joint.

    Works on numpy arrays and torch tensors of shape (..., 45); it is its own inverse.
    """
    sign = np.tile(np.array([1.0, -1.0, -1.0], dtype=np.float32), 15)
    if isinstance(hand, np.ndarray):
        return hand * sign.astype(hand.dtype)
    return hand * hand.new_tensor(sign)


def mirrored_hand(vectors, side: str):
    """The hand in slot ``side`` ('left_hand' or 'right_hand') of (..., 256) vectors (numpy or torch), mirrored
    into the other side's convention (..., 45): ready to be written into the other slot, or pooled with its
    hands. The one way hand rows change sides (see :func:`mirror_hand`)."""
    if side not in ("left_hand", "right_hand"):
        raise ValueError(f"side must be 'left_hand' or 'right_hand', got {side!r}")
    return mirror_hand(vectors[..., PART_SLICES[side]])


def joint_vector_slice(name: str) -> slice:
    """Slice of the 256-D vector holding joint ``name``'s axis-angle."""
    o = _JOINT_OFFSET[name]
    return slice(o, o + 3)


def _body_mirror_permutation() -> np.ndarray:
    body = VECTOR_JOINTS[:21]
    perm = []
    for name in body:
        other = ("right" + name[4:]) if name.startswith("left") else ("left" + name[5:]) if name.startswith("right") else name
        perm.append(body.index(other))
    return np.asarray(perm)


_BODY_MIRROR = _body_mirror_permutation()


def mirror_pose(vec: np.ndarray) -> np.ndarray:
    """Left-right mirror image of whole-body vectors (N, 256) across the body's sagittal plane.

    Left and right joints swap and every rotation (x, y, z) becomes (x, -y, -z); the hands swap slots
    (a mirrored right hand is a left hand). Expression coefficients are copied unchanged (FLAME's expression
    space has no known mirror map), so callers should treat a mirrored face as approximate.
    """
    v = np.asarray(vec)
    out = v.copy()
    body, left, right = PART_SLICES["body"], PART_SLICES["left_hand"], PART_SLICES["right_hand"]
    jaw = KEY_SLICES["jaw_pose"]
    flip = np.array([1.0, -1.0, -1.0], dtype=v.dtype)
    out[:, body] = (v[:, body].reshape(-1, 21, 3)[:, _BODY_MIRROR] * flip).reshape(-1, body.stop - body.start)
    out[:, left] = mirrored_hand(v, "right_hand")
    out[:, right] = mirrored_hand(v, "left_hand")
    out[:, jaw] = v[:, jaw] * flip
    return out


# Hinge joints: the local axis about which each bends forward (flexion is a positive rotation about it) and how far
# it may bend backwards (radians). Measured on the AMASS training poses (body_poses_10k): the knees' x and the
# elbows' -y / +y hold the flexion; 99.5% of poses bend backwards by less than 0.2 rad (knee) / 0.05 rad (elbow).
HINGE_AXES = {"left_knee": (1.0, 0.0, 0.0), "right_knee": (1.0, 0.0, 0.0),
              "left_elbow": (0.0, -1.0, 0.0), "right_elbow": (0.0, 1.0, 0.0)}
HYPEREXTENSION_LIMIT = {"left_knee": 0.3, "right_knee": 0.3, "left_elbow": 0.25, "right_elbow": 0.25}
