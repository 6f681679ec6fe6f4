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


# ---------------------------------------------------------------------------------------------------------------
# The CMU "cgspeed" BVH layout, verbatim from ../shared/data/bvh/other_studios/cmu_cgspeed_example_278f.bvh (the
# hierarchy only): root Hips and the helper joints LHipJoint / RHipJoint at OFFSET 0 0 0, LowerBack (spine1) at the
# Hips origin, Neck / LeftShoulder at the Spine1 origin, Neck1 between Neck and Head, LeftFingerBase and LThumb at
# the hand's origin. Units: CMU ASF units (1/0.45 inch), Y up, +Z forward, channels Zrotation Yrotation Xrotation.
CGSPEED_HIERARCHY = """\
HIERARCHY
ROOT Hips
{
	OFFSET 0.00000 0.00000 0.00000
	CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
	JOINT LHipJoint
	{
		OFFSET 0 0 0
		CHANNELS 3 Zrotation Yrotation Xrotation
		JOINT LeftUpLeg
		{
			OFFSET 1.70593 -1.62653 0.87602
			CHANNELS 3 Zrotation Yrotation Xrotation
			JOINT LeftLeg
			{
				OFFSET 2.32330 -6.38322 0.00000
				CHANNELS 3 Zrotation Yrotation Xrotation
				JOINT LeftFoot
				{
					OFFSET 2.45016 -6.73177 0.00000
					CHANNELS 3 Zrotation Yrotation Xrotation
					JOINT LeftToeBase
					{
						OFFSET 0.13029 -0.35798 1.96980
						CHANNELS 3 Zrotation Yrotation Xrotation
						End Site
						{
							OFFSET 0.00000 -0.00000 1.01270
						}
					}
				}
			}
		}
	}
	JOINT RHipJoint
	{
		OFFSET 0 0 0
		CHANNELS 3 Zrotation Yrotation Xrotation
		JOINT RightUpLeg
		{
			OFFSET -1.80599 -1.62652 0.87602
			CHANNELS 3 Zrotation Yrotation Xrotation
			JOINT RightLeg
			{
				OFFSET -2.45375 -6.74162 0.00000
				CHANNELS 3 Zrotation Yrotation Xrotation
				JOINT RightFoot
				{
					OFFSET -2.45828 -6.75406 0.00000
					CHANNELS 3 Zrotation Yrotation Xrotation
					JOINT RightToeBase
					{
						OFFSET -0.13801 -0.37917 1.88456
						CHANNELS 3 Zrotation Yrotation Xrotation
						End Site
						{
							OFFSET -0.00000 -0.00000 0.97281
						}
					}
				}
			}
		}
	}
	JOINT LowerBack
	{
		OFFSET 0 0 0
		CHANNELS 3 Zrotation Yrotation Xrotation
		JOINT Spine
		{
			OFFSET 0.01003 2.00576 -0.14267
			CHANNELS 3 Zrotation Yrotation Xrotation
			JOINT Spine1
			{
				OFFSET 0.00908 2.01191 0.01660
				CHANNELS 3 Zrotation Yrotation Xrotation
				JOINT Neck
				{
					OFFSET 0 0 0
					CHANNELS 3 Zrotation Yrotation Xrotation
					JOINT Neck1
					{
						OFFSET -0.05849 1.60301 0.18934
						CHANNELS 3 Zrotation Yrotation Xrotation
						JOINT Head
						{
							OFFSET 0.01775 1.59435 -0.07960
							CHANNELS 3 Zrotation Yrotation Xrotation
							End Site
							{
								OFFSET 0.01210 1.70732 -0.05248
							}
						}
					}
				}
				JOINT LeftShoulder
				{
					OFFSET 0 0 0
					CHANNELS 3 Zrotation Yrotation Xrotation
					JOINT LeftArm
					{
						OFFSET 3.15315 1.26460 0.30667
						CHANNELS 3 Zrotation Yrotation Xrotation
						JOINT LeftForeArm
						{
							OFFSET 4.97694 -0.00000 -0.00000
							CHANNELS 3 Zrotation Yrotation Xrotation
							JOINT LeftHand
							{
								OFFSET 3.14391 -0.00000 -0.00000
								CHANNELS 3 Zrotation Yrotation Xrotation
								JOINT LeftFingerBase
								{
									OFFSET 0 0 0
									CHANNELS 3 Zrotation Yrotation Xrotation
									JOINT LeftHandIndex1
									{
										OFFSET 0.59358 -0.00000 -0.00000
										CHANNELS 3 Zrotation Yrotation Xrotation
										End Site
										{
											OFFSET 0.47856 -0.00000 -0.00000
										}
									}
								}
								JOINT LThumb
								{
									OFFSET 0 0 0
									CHANNELS 3 Zrotation Yrotation Xrotation
									End Site
									{
										OFFSET 0.48587 -0.00000 0.48587
									}
								}
							}
						}
					}
				}
				JOINT RightShoulder
				{
					OFFSET 0 0 0
					CHANNELS 3 Zrotation Yrotation Xrotation
					JOINT RightArm
					{
						OFFSET -3.25568 1.35581 0.18982
						CHANNELS 3 Zrotation Yrotation Xrotation
						JOINT RightForeArm
						{
							OFFSET -4.90473 -0.00000 0.00000
							CHANNELS 3 Zrotation Yrotation Xrotation
							JOINT RightHand
							{
								OFFSET -3.21621 0.00006 -0.00004
								CHANNELS 3 Zrotation Yrotation Xrotation
								JOINT RightFingerBase
								{
									OFFSET 0 0 0
									CHANNELS 3 Zrotation Yrotation Xrotation
									JOINT RightHandIndex1
									{
										OFFSET -0.62353 -0.00000 -0.00000
										CHANNELS 3 Zrotation Yrotation Xrotation
										End Site
										{
											OFFSET -0.50270 -0.00000 -0.00000
										}
									}
								}
								JOINT RThumb
								{
									OFFSET 0 0 0
									CHANNELS 3 Zrotation Yrotation Xrotation
									End Site
									{
										OFFSET -0.51038 -0.00000 0.51038
									}
								}
							}
						}
					}
				}
			}
		}
	}
}
"""

# Anatomical motion of the cgspeed skeleton: (joint, Euler axis, low, high) in degrees. Knees bend the shin back
# (+X), elbows bend the forearm forward (left about -Y, right about +Y: the arms lie along +-X at rest).
CGSPEED_MOTION = (("LeftUpLeg", "X", -70, 25), ("RightUpLeg", "X", -70, 25), ("LeftUpLeg", "Z", -5, 30),
                  ("RightUpLeg", "Z", -30, 5), ("LeftLeg", "X", 5, 110), ("RightLeg", "X", 5, 110),
                  ("LeftArm", "Z", -70, 40), ("RightArm", "Z", -40, 70), ("LeftArm", "Y", -40, 40),
                  ("RightArm", "Y", -40, 40), ("LeftForeArm", "Y", -120, -5), ("RightForeArm", "Y", 5, 120),
                  ("LowerBack", "X", -5, 20), ("Spine", "X", -5, 15), ("Spine1", "Y", -15, 15),
                  ("Neck1", "X", -15, 20), ("Head", "Y", -30, 30), ("LeftFoot", "X", -20, 20),
                  ("RightFoot", "X", -20, 20))


def cgspeed_bvh(frames: int = 40, seed: int = 0, order: str = "ZYX", unit_scale: float = 1.0, fps: float = 120.0,
                hierarchy: str = CGSPEED_HIERARCHY) -> str:
    """A take on the verbatim cgspeed hierarchy: frame 0 is the rest pose (every channel zero), the others draw the
    joints of :data:`CGSPEED_MOTION` uniformly in their ranges, plus up to 5 deg on every joint (helpers too) and a
    random heading. ``order``: every joint's rotation channel order (the file's is ZYX); ``unit_scale``: offsets
    and root position multiplied by it (5.644: centimetres); the result parses and runs the same forward
    kinematics for any order."""
    from dposer.formats import bvh as bvh_io

    n_channels = sum(int(ln.split()[1]) for ln in hierarchy.splitlines() if ln.split()[:1] == ["CHANNELS"])
    base = bvh_io.parse(hierarchy + f"MOTION\nFrames: 1\nFrame Time: 0.1\n{' 0' * n_channels}\n", "cgspeed")
    rng = np.random.default_rng(seed)
    names = base.names
    euler = np.zeros((frames, len(names), 3))  # per joint, intrinsic X, Y, Z angles
    euler[1:] = rng.uniform(-5, 5, (frames - 1, len(names), 3))
    for name, axis, lo, hi in CGSPEED_MOTION:
        euler[1:, names.index(name), "XYZ".index(axis)] = rng.uniform(lo, hi, frames - 1)
    euler[1:, 0, 1] = rng.uniform(-180, 180, frames - 1)  # heading about +Y
    root = np.zeros((frames, 3))
    root[:, 1] = 17.0
    root[1:] += rng.normal(size=(frames - 1, 3))
    lines = []
    for line in hierarchy.splitlines():
        words = line.split()
        if words and words[0] == "OFFSET":
            lead = line[:len(line) - len(line.lstrip())]
            line = lead + "OFFSET " + " ".join(f"{float(w) * unit_scale:.5f}" for w in words[1:])
        elif words and words[0] == "CHANNELS":
            lead = line[:len(line) - len(line.lstrip())]
            pos = ["Xposition", "Yposition", "Zposition"] if words[1] == "6" else []
            line = lead + f"CHANNELS {words[1]} " + " ".join(pos + [f"{a}rotation" for a in order])
        lines.append(line)
    cols = []
    for k in range(len(names)):
        R = Rotation.from_euler("XYZ", euler[:, k], degrees=True).as_matrix()  # any matrix; rewritten in ``order``
        e = Rotation.from_matrix(R).as_euler(order, degrees=True)
        cols.append(np.concatenate([root * unit_scale, e], 1) if k == 0 else e)
    motion = np.concatenate(cols, 1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / fps:.7f}"]
    lines += [" ".join(f"{x:.5f}" for x in row) for row in motion]
    return "\n".join(lines) + "\n"
