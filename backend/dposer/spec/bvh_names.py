"""BVH hierarchies with their joints named as Blender's BVH importer (io_anim_bvh) names the bones (a repeated name
gets ``.001``, ``.002``...), so the bone-map presets of :mod:`.bone_maps` can be matched against a BVH file before it
is imported. No bpy, no NumPy."""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class BvhJoint:
    name: str  # bone name as Blender's importer creates it
    parent: int  # index into the joint list, -1 for the root
    offset: tuple[float, float, float]
    channels: tuple[str, ...]
    end_site: tuple[float, float, float] | None = None

    @property
    def rotation_mode(self) -> str:
        """The pose bone's ``rotation_mode`` after import with rotation 'Native': the rotation channels in file
        order (``Zrotation Xrotation Yrotation`` -> ``'ZXY'``)."""
        return "".join(c[0].upper() for c in self.channels if c.lower().endswith("rotation")) or "XYZ"

    @property
    def euler_order(self) -> str:
        """Blender Euler order whose matrix equals the BVH channel rotation (the importer reverses the string):
        ``Zrotation Xrotation Yrotation`` means ``Rz @ Rx @ Ry`` = Blender ``'YXZ'``."""
        return self.rotation_mode[::-1]


def parse_bvh_hierarchy(text: str) -> list[BvhJoint]:
    """The HIERARCHY section of a BVH file: joints in file order with parents, offsets, channels and end sites.

    Names follow io_anim_bvh: a multi-word name is joined with '_', and a repeated name gets '.001', '.002'...
    """
    tokens_lines = [ln.split() for ln in text.splitlines()]
    joints: list[dict] = []
    stack: list[int | None] = []
    names: set[str] = set()
    i = 0
    pending_end = False
    while i < len(tokens_lines):
        t = tokens_lines[i]
        i += 1
        if not t:
            continue
        head = t[0].lower()
        if head == "motion":
            break
        if head in ("root", "joint"):
            name = "_".join(t[1:]) if len(t) > 1 else f"joint{len(joints)}"
            base, k = name, 1
            while name in names:
                name = f"{base}.{k:03d}"
                k += 1
            names.add(name)
            parent = next((s for s in reversed(stack) if s is not None), -1) if stack else -1
            joints.append({"name": name, "parent": parent, "offset": (0.0, 0.0, 0.0), "channels": (), "end": None})
            stack.append(len(joints) - 1)
            pending_end = False
        elif head == "end":
            stack.append(None)
            pending_end = True
        elif head == "offset" and stack:
            off = tuple(float(x) for x in t[1:4])
            if pending_end and stack[-1] is None:
                owner = next((s for s in reversed(stack) if s is not None), None)
                if owner is not None:
                    joints[owner]["end"] = off
            elif stack[-1] is not None:
                joints[stack[-1]]["offset"] = off
        elif head == "channels" and stack and stack[-1] is not None:
            joints[stack[-1]]["channels"] = tuple(t[2:2 + int(t[1])])
        elif head == "}" and stack:
            stack.pop()
            pending_end = False
    return [BvhJoint(j["name"], j["parent"], j["offset"], j["channels"], j["end"]) for j in joints]


def bvh_bone_names(text: str) -> list[str]:
    """Bone names Blender's BVH importer would create for this file."""
    return [j.name for j in parse_bvh_hierarchy(text)]
