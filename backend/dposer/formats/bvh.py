"""BVH motion files: a strict parser (hierarchy + motion) and forward kinematics. NumPy + SciPy, no torch.

Conventions (the Biovision format as common exporters write it):

- A joint's ``CHANNELS`` list its per-frame values in file order. Rotation channels compose left to right as
  *intrinsic* rotations: ``Zrotation Xrotation Yrotation`` is ``Rz @ Rx @ Ry`` (SciPy ``from_euler('ZXY')``,
  upper case = intrinsic), in degrees.
- A joint with position channels takes them as its translation from the parent (they replace ``OFFSET`` on the
  axes they name: the root's absolute position, and e.g. Bandai Namco's per-joint channels, which repeat the
  offsets); a joint without takes its ``OFFSET``.
- In the rest pose (all channels zero) every joint's frame is parallel to the world frame.
- Joint names follow Blender's importer (io_anim_bvh): a multi-word name is joined with ``_`` and a repeated name
  gets ``.001``, ``.002``..., so the add-on's bone-map presets (``dposer.spec.bone_maps``) match them.

Anything malformed raises :class:`BvhError` naming the problem (and the line, where there is one).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

_CHANNELS = ("xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation")


class BvhError(ValueError):
    """A malformed or unusable BVH file."""


@dataclass(frozen=True)
class Joint:
    name: str
    parent: int  # index into Bvh.joints, -1 for the root
    offset: tuple[float, float, float]
    channels: tuple[str, ...]  # as written in the file, e.g. ('Zrotation', 'Xrotation', 'Yrotation')
    end_site: tuple[float, float, float] | None = None  # offset of the End Site, if the joint has one

    @property
    def rotation_order(self) -> str:
        """Intrinsic Euler order of the rotation channels, e.g. 'ZXY' ('' when the joint has none)."""
        return "".join(c[0].upper() for c in self.channels if c.lower().endswith("rotation"))


@dataclass(frozen=True)
class Bvh:
    joints: tuple[Joint, ...]
    frame_time: float  # seconds
    motion: np.ndarray  # (F, C) channel values, file order, degrees / file units

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(name)

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local rotations (F, J, 3, 3) and translations from the parent (F, J, 3)."""
        F = self.num_frames
        rot = np.empty((F, len(self.joints), 3, 3))
        trans = np.empty((F, len(self.joints), 3))
        col = 0
        for k, j in enumerate(self.joints):
            cols = {c.lower(): col + i for i, c in enumerate(j.channels)}
            col += len(j.channels)
            trans[:, k] = j.offset
            for axis in range(3):
                c = cols.get("xyz"[axis] + "position")
                if c is not None:
                    trans[:, k, axis] = self.motion[:, c]
            order = j.rotation_order
            if order:
                angles = self.motion[:, [cols[a.lower() + "rotation"] for a in order]]
                rot[:, k] = Rotation.from_euler(order, angles, degrees=True).as_matrix()
            else:
                rot[:, k] = np.eye(3)
        return rot, trans

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and world positions (F, J, 3) of every joint, in file units."""
        rot, trans = self.local_transforms()
        glob = np.empty_like(rot)
        pos = np.empty_like(trans)
        for k, j in enumerate(self.joints):
            if j.parent < 0:
                glob[:, k] = rot[:, k]
                pos[:, k] = trans[:, k]
            else:
                gp = glob[:, j.parent]
                glob[:, k] = gp @ rot[:, k]
                pos[:, k] = pos[:, j.parent] + np.einsum("fij,fj->fi", gp, trans[:, k])
        return glob, pos


def _number(tok: str, line: int) -> float:
    try:
        return float(tok)
    except ValueError:
        raise BvhError(f"line {line}: expected a number, got {tok!r}") from None


def parse(text: str, source: str = "<string>") -> Bvh:
    """Parse BVH text. ``source`` names the file in error messages."""
    def fail(msg: str, line: int | None = None):
        where = f"{source}, line {line}" if line else source
        raise BvhError(f"{where}: {msg}")

    # (token, line number) pairs of the hierarchy; the motion section is read by lines.
    lines = text.splitlines()
    motion_line = next((i for i, ln in enumerate(lines) if ln.strip().upper() == "MOTION"), None)
    if motion_line is None:
        fail("no MOTION section (is this a BVH file?)")
    toks = [(t, i + 1) for i, ln in enumerate(lines[:motion_line]) for t in ln.split()]
    if not toks or toks[0][0].upper() != "HIERARCHY":
        fail("a BVH file starts with HIERARCHY")
    joints: list[dict] = []
    names: set[str] = set()
    stack: list[int | None] = []  # joint index, or None inside an End Site
    pos = 1
    expect_brace = False
    while pos < len(toks):
        tok, ln = toks[pos]
        key = tok.upper()
        pos += 1
        if expect_brace:
            if tok != "{":
                fail(f"expected '{{', got {tok!r}", ln)
            expect_brace = False
            continue
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and (stack or joints):
                fail("a second ROOT (only one skeleton per file is supported)", ln)
            if key == "JOINT" and (not stack or stack[-1] is None):
                fail("JOINT outside a joint", ln)
            words = []
            while pos < len(toks) and toks[pos][0] != "{" and toks[pos][1] == ln:
                words.append(toks[pos][0])
                pos += 1
            name = "_".join(words) or f"joint{len(joints)}"
            base, k = name, 1
            while name in names:
                name = f"{base}.{k:03d}"
                k += 1
            names.add(name)
            joints.append({"name": name, "parent": stack[-1] if stack else -1, "offset": None, "channels": None,
                           "end": None, "line": ln})
            stack.append(len(joints) - 1)
            expect_brace = True
        elif key == "END":
            if pos < len(toks) and toks[pos][0].upper() == "SITE":
                pos += 1
            if not stack or stack[-1] is None:
                fail("End Site outside a joint", ln)
            stack.append(None)
            expect_brace = True
        elif key == "OFFSET":
            if not stack:
                fail("OFFSET outside a joint", ln)
            if pos + 3 > len(toks):
                fail("OFFSET needs three numbers", ln)
            off = tuple(_number(t, l) for t, l in toks[pos:pos + 3])
            pos += 3
            if stack[-1] is None:
                owner = next(s for s in reversed(stack) if s is not None)
                joints[owner]["end"] = off
            else:
                joints[stack[-1]]["offset"] = off
        elif key == "CHANNELS":
            if not stack or stack[-1] is None:
                fail("CHANNELS outside a joint", ln)
            if pos >= len(toks):
                fail("CHANNELS needs a count", ln)
            try:
                n = int(toks[pos][0])
            except ValueError:
                fail(f"CHANNELS count must be an integer, got {toks[pos][0]!r}", ln)
            chans = tuple(t for t, _ in toks[pos + 1:pos + 1 + n])
            pos += 1 + n
            bad = [c for c in chans if c.lower() not in _CHANNELS]
            if len(chans) != n or bad:
                fail(f"bad CHANNELS {chans} (expected {n} of {', '.join(c.capitalize() for c in _CHANNELS)})", ln)
            if len({c.lower() for c in chans}) != n:
                fail(f"repeated channel in {chans}", ln)
            joints[stack[-1]]["channels"] = chans
        elif tok == "}":
            if not stack:
                fail("unbalanced '}'", ln)
            stack.pop()
        else:
            fail(f"unexpected {tok!r} in the HIERARCHY", ln)
    if expect_brace:
        fail("the HIERARCHY ends before a '{'")
    if stack:
        fail(f"unbalanced braces: {len(stack)} not closed before MOTION")
    if not joints:
        fail("no ROOT joint in the HIERARCHY")
    for j in joints:
        if j["offset"] is None:
            fail(f"joint {j['name']!r} has no OFFSET", j["line"])
        if j["channels"] is None:
            fail(f"joint {j['name']!r} has no CHANNELS", j["line"])
    n_channels = sum(len(j["channels"]) for j in joints)

    # MOTION: "Frames: N", "Frame Time: t", then N lines of n_channels numbers
    header: dict[str, str] = {}
    i = motion_line + 1
    while i < len(lines) and len(header) < 2:
        ln = lines[i].strip()
        i += 1
        if not ln:
            continue
        k, sep, v = ln.partition(":")
        if not sep or k.strip().lower() not in ("frames", "frame time"):
            fail(f"expected 'Frames:' and 'Frame Time:' after MOTION, got {ln[:40]!r}", i)
        header[k.strip().lower()] = v.strip()
    try:
        n_frames = int(header["frames"])
        frame_time = float(header["frame time"])
    except (KeyError, ValueError):
        fail(f"bad MOTION header {header} (need 'Frames: <int>' and 'Frame Time: <seconds>')", motion_line + 1)
    if n_frames < 1:
        fail(f"the file has {n_frames} frames")
    if not frame_time > 0:
        fail(f"Frame Time must be positive, got {frame_time}")
    values = " ".join(lines[i:]).split()
    if len(values) != n_frames * n_channels:
        fail(f"MOTION holds {len(values)} numbers; {n_frames} frames x {n_channels} channels need "
             f"{n_frames * n_channels}")
    try:
        motion = np.array(values, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        fail(f"MOTION holds a non-number {bad!r}")
    if not np.isfinite(motion).all():
        fail("MOTION holds non-finite values (nan/inf)")
    return Bvh(tuple(Joint(j["name"], j["parent"], j["offset"], j["channels"], j["end"]) for j in joints),
               frame_time, motion)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def dumps(take: Bvh) -> str:
    """BVH text of a take: its hierarchy as parsed (joint names as :func:`parse` gives them) and its motion. Each
    number is written in its shortest exact form, so ``parse(dumps(b))`` gives ``b`` back bit for bit (values
    parsed from a file are written with the digits they were read from)."""
    def vec(v) -> str:
        return " ".join(map(repr, np.asarray(v, dtype=np.float64).tolist()))

    children: dict[int, list[int]] = {k: [] for k in range(-1, len(take.joints))}
    for k, j in enumerate(take.joints):
        children[j.parent].append(k)
    lines = ["HIERARCHY"]

    def emit(k: int, depth: int) -> None:
        j, ind = take.joints[k], "\t" * depth
        lines.extend([f"{ind}{'ROOT' if j.parent < 0 else 'JOINT'} {j.name}", f"{ind}{{",
                      f"{ind}\tOFFSET {vec(j.offset)}", f"{ind}\tCHANNELS {len(j.channels)} {' '.join(j.channels)}"])
        for c in children[k]:
            emit(c, depth + 1)
        if j.end_site is not None:
            lines.extend([f"{ind}\tEnd Site", f"{ind}\t{{", f"{ind}\t\tOFFSET {vec(j.end_site)}", f"{ind}\t}}"])
        lines.append(f"{ind}}}")

    for root in children[-1]:
        emit(root, 0)
    lines += ["MOTION", f"Frames: {take.num_frames}", f"Frame Time: {take.frame_time!r}"]
    lines += [vec(row) for row in take.motion]
    return "\n".join(lines) + "\n"


def read(source: str | os.PathLike) -> Bvh:
    """Parse a BVH file (path) or BVH text (a string that starts with HIERARCHY)."""
    if isinstance(source, str) and source.lstrip()[:9].upper() == "HIERARCHY":
        return parse(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise BvhError(f"{path}: cannot read ({e})") from None
    return parse(text, source=str(path))
