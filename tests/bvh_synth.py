"""Write small BVH takes from known SMPL-X body poses (T-pose rest = the built-in skeleton), for the convert tests."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from dposer.spec import layout
from dposer.spec.skeleton import REST_OFFSETS

NB = 22
PARENT = layout.PARENTS[:NB]

CMU_NAMES = {"pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck",
             "head": "Head"}
for side, s in (("left", "Left"), ("right", "Right")):
    CMU_NAMES.update({f"{side}_hip": f"{s}UpLeg", f"{side}_knee": f"{s}Leg", f"{side}_ankle": f"{s}Foot",
                      f"{side}_foot": f"{s}ToeBase", f"{side}_collar": f"{s}Shoulder", f"{side}_shoulder": f"{s}Arm",
                      f"{side}_elbow": f"{s}ForeArm", f"{side}_wrist": f"{s}Hand"})
MIXAMO_NAMES = {"pelvis": "mixamorig:Hips", "spine1": "mixamorig:Spine", "spine2": "mixamorig:Spine1",
                "spine3": "mixamorig:Spine2", "neck": "mixamorig:Neck", "head": "mixamorig:Head"}
for side, s in (("left", "Left"), ("right", "Right")):
    MIXAMO_NAMES.update({f"{side}_{j}": f"mixamorig:{s}{b}" for j, b in (
        ("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"), ("foot", "ToeBase"), ("collar", "Shoulder"),
        ("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"))})
# CMU's extra joints: (name, SMPL-X joint it sits above) - a zero-length helper joint between parent and joint
CMU_EXTRA = {"left_hip": "LHipJoint", "right_hip": "RHipJoint"}


def synth_bvh(body_pose: np.ndarray, global_orient: np.ndarray, trans: np.ndarray, names: dict[str, str],
              unit: float = 0.01, up: str = "y", extra: dict[str, str] | None = None, fps: float = 30.0) -> str:
    """BVH text of poses (F, 63) on the built-in skeleton; ``unit`` metres per file unit; ``up`` 'y' or 'z'
    (Z-up world: every offset and rotation turned by Rx(+90)). ``extra``: helper joints (no rotation) inserted
    above the named SMPL-X joints."""
    F = len(body_pose)
    C = np.eye(3) if up == "y" else Rotation.from_euler("x", 90, degrees=True).as_matrix()
    local = np.concatenate([global_orient[:, None], body_pose.reshape(F, 21, 3)], 1)
    R = Rotation.from_rotvec(local.reshape(-1, 3)).as_matrix().reshape(F, NB, 3, 3)
    R = C @ R @ C.T  # the same rotations in the Z-up world's axes
    R[:, 0] = C @ Rotation.from_rotvec(global_orient).as_matrix() @ C.T
    offsets = (REST_OFFSETS[:NB] @ C.T) / unit
    root_pos = ((REST_OFFSETS[0] + trans) @ C.T) / unit
    extra = extra or {}
    children = {j: [c for c in range(NB) if PARENT[c] == j] for j in range(NB)}
    lines = ["HIERARCHY"]
    order: list[tuple[str, int | None]] = []  # channel blocks: (kind, smplx joint or None for a helper)

    def fmt(v):
        return " ".join(f"{x:.6f}" for x in v)

    def emit(j: int, depth: int):
        nonlocal lines
        ind = "  " * depth
        name = layout.JOINT_NAMES[j]
        if j == 0:
            lines.append(f"ROOT {names[name]}")
        else:
            if name in extra:  # helper joint carrying the whole offset; the joint itself sits at its origin
                lines += [f"{ind}JOINT {extra[name]}", f"{ind}{{", f"{ind}  OFFSET {fmt(offsets[j])}",
                          f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation"]
                order.append(("helper", None))
                depth += 1
                ind = "  " * depth
                lines += [f"{ind}JOINT {names[name]}", f"{ind}{{", f"{ind}  OFFSET 0 0 0"]
            else:
                lines += [f"{ind}JOINT {names[name]}", f"{ind}{{", f"{ind}  OFFSET {fmt(offsets[j])}"]
        if j == 0:
            lines += ["{", f"  OFFSET {fmt(offsets[0])}",
                      "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]
            order.append(("root", 0))
        else:
            lines.append(f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation")
            order.append(("rot", j))
        kids = [c for c in children[j] if layout.JOINT_NAMES[c] in names]
        for c in kids:
            emit(c, depth + 1)
        if not kids:
            lines += [f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {fmt(np.array([0.0, 0.05, 0.0]) @ C.T / unit)}",
                      f"{ind}  }}"]
        lines.append(f"{ind}}}")
        if layout.JOINT_NAMES[j] in extra and j:
            lines.append("  " * (depth - 1) + "}")

    emit(0, 0)
    cols = []
    for kind, j in order:
        if kind == "helper":
            cols.append(np.zeros((F, 3)))
            continue
        eul = Rotation.from_matrix(R[:, j]).as_euler("ZXY", degrees=True)
        cols.append(np.concatenate([root_pos, eul], 1) if kind == "root" else eul)
    motion = np.concatenate(cols, 1)
    lines += ["MOTION", f"Frames: {F}", f"Frame Time: {1.0 / fps:.6f}"]
    lines += [" ".join(f"{x:.6f}" for x in row) for row in motion]
    return "\n".join(lines) + "\n"
