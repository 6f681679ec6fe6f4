"""A BVH take as per-bone rotations in its own channels, and back, keeping every untouched value as written.

- :func:`rotations` gives each joint's local rotation (from its three rotation channels, the file's Euler order)
  as quaternions (F, B, 4) for the bones that have three rotation channels.
- :func:`with_rotations` writes new rotations into chosen (frame, bone) cells of the motion, as Euler angles in
  the joint's own order, picking of the two Euler solutions the one nearest the value it replaces (so curves stay
  continuous).
- :func:`motion_text` writes the MOTION section with the original text of every value that did not change.
- :func:`clean_bvh` cleans a BVH file or text with :mod:`dposer.tasks.channel_clean` and returns the new text.
- :func:`positions_mm` (forward kinematics of the take's own hierarchy, scaled to a 1.75 m skeleton) and
  :func:`resample` (to another frame rate, slerp) serve the benchmark and the tests.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from . import bvh as bvh_io
from ..tasks import channel_clean

HEIGHT_MM = 1750.0  # positions are scaled so the skeleton's rest-pose extent is this


def _columns(take: bvh_io.Bvh) -> list[dict]:
    """Per joint: channel name (lower case) -> motion column."""
    cols, c = [], 0
    for j in take.joints:
        cols.append({ch.lower(): c + i for i, ch in enumerate(j.channels)})
        c += len(j.channels)
    return cols


def rotation_bones(take: bvh_io.Bvh) -> list[int]:
    """Indices of the joints with three rotation channels (the bones the cleaner works on)."""
    return [k for k, j in enumerate(take.joints) if len(j.rotation_order) == 3]


def rotation_parents(take: bvh_io.Bvh) -> np.ndarray:
    """(B,) for each bone of :func:`rotation_bones`, the index (among them) of its nearest ancestor with three
    rotation channels, -1 for none: the skeleton the cleaner's companion rule walks."""
    bones = rotation_bones(take)
    pos = {k: i for i, k in enumerate(bones)}
    out = np.full(len(bones), -1, dtype=int)
    for i, k in enumerate(bones):
        p = take.joints[k].parent
        while p >= 0 and p not in pos:
            p = take.joints[p].parent
        out[i] = pos.get(p, -1)
    return out


def rotation_columns(take: bvh_io.Bvh) -> np.ndarray:
    """(B, 3) motion columns of the rotation channels of :func:`rotation_bones`, in each joint's Euler order."""
    cols = _columns(take)
    return np.array([[cols[k][a.lower() + "rotation"] for a in take.joints[k].rotation_order]
                     for k in rotation_bones(take)], dtype=int).reshape(-1, 3)


def rotations(take: bvh_io.Bvh) -> np.ndarray:
    """(F, B, 4) local rotations (x, y, z, w) of :func:`rotation_bones`."""
    bones, cols = rotation_bones(take), rotation_columns(take)
    q = np.empty((take.num_frames, len(bones), 4))
    for i, k in enumerate(bones):
        q[:, i] = Rotation.from_euler(take.joints[k].rotation_order, take.motion[:, cols[i]], degrees=True).as_quat()
    return q


def _nearest_euler(rot: Rotation, order: str, ref: np.ndarray) -> np.ndarray:
    """Euler angles (N, 3) in degrees of ``rot`` in ``order`` (intrinsic) nearest to ``ref`` (N, 3): of the two
    solutions (a, b, c) and (a+180, 180-b, c+180), each angle shifted by whole turns toward ``ref``."""
    e1 = rot.as_euler(order, degrees=True)
    e2 = e1 + np.array([180.0, 0.0, 180.0])
    e2[:, 1] = -e1[:, 1] if order[0] == order[2] else 180.0 - e1[:, 1]  # proper Euler: (a+180, -b, c+180)
    e1, e2 = (e + 360.0 * np.round((ref - e) / 360.0) for e in (e1, e2))
    near1 = np.abs(e1 - ref).sum(1) <= np.abs(e2 - ref).sum(1)
    return np.where(near1[:, None], e1, e2)


def with_rotations(take: bvh_io.Bvh, q: np.ndarray, cells: np.ndarray) -> bvh_io.Bvh:
    """A copy of ``take`` whose rotation channels hold ``q`` (F, B, 4) at the (frame, bone) ``cells`` (F, B) bool;
    every other value is the take's own."""
    motion = take.motion.copy()
    cols = rotation_columns(take)
    for i, k in enumerate(rotation_bones(take)):
        f = np.flatnonzero(cells[:, i])
        if len(f):
            ref = motion[np.ix_(f, cols[i])]
            motion[np.ix_(f, cols[i])] = _nearest_euler(Rotation.from_quat(q[f, i]), take.joints[k].rotation_order,
                                                        ref)
    return replace(take, motion=motion)


def _motion_start(lines: list[str]) -> int:
    """Index of the first line of frame values (after MOTION, Frames: and Frame Time:)."""
    i = next(i for i, ln in enumerate(lines) if ln.strip().upper() == "MOTION") + 1
    seen = 0
    while seen < 2:
        if lines[i].strip():
            seen += 1
        i += 1
    return i


def read_text(path) -> str:
    """A BVH file's text exactly as stored (line endings kept)."""
    from pathlib import Path

    return Path(path).read_bytes().decode("utf-8", errors="replace")


def motion_text(text: str, motion: np.ndarray, changed: np.ndarray) -> str:
    """``text`` (a BVH file) with its frame values replaced by ``motion`` (F, C) where ``changed`` (F, C) is True.
    The hierarchy and header are kept as written; so is every frame line without a change (when the file writes one
    frame per line); a changed frame is written with one space between values, each unchanged value in its
    original text."""
    lines = text.splitlines(keepends=True)
    start = _motion_start(lines)
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    rows = [ln for ln in lines[start:] if ln.strip()]
    F, C = motion.shape
    per_row = [ln.split() for ln in rows]
    if len(rows) != F or any(len(r) != C for r in per_row):  # not one frame per line: rebuild every line
        tokens = " ".join(lines[start:]).split()
        if len(tokens) != F * C:
            raise ValueError(f"the text holds {len(tokens)} values, the motion {F} x {C}")
        per_row = [tokens[f * C:(f + 1) * C] for f in range(F)]
        rows = [None] * F
    out = []
    for f in range(F):
        if rows[f] is not None and not changed[f].any():
            out.append(rows[f] if rows[f].endswith(("\n", "\r")) else rows[f] + newline)
            continue
        vals = list(per_row[f])
        for c in np.flatnonzero(changed[f]):
            vals[c] = f"{motion[f, c]:.6f}"
        out.append(" ".join(vals) + newline)
    head = "".join(lines[:start])
    if not head.endswith(("\n", "\r")):
        head += newline
    return head + "".join(out)


def clean_take(take: bvh_io.Bvh, settings: channel_clean.Settings = channel_clean.Settings(), fill=None):
    """(cleaned take, changed (F, C) bool, Report): the take's rotations cleaned in its own channels."""
    q = rotations(take)
    out, rep = channel_clean.clean(q, take.fps, settings, fill, parents=rotation_parents(take))
    cells = np.zeros(q.shape[:2], bool)
    cells[:] = rep.bad
    if rep.smoothed:
        cells |= np.any(out != q, axis=-1)
    new = with_rotations(take, out, cells)
    changed = np.zeros(take.motion.shape, bool)
    cols = rotation_columns(take)
    for i in range(len(cols)):
        changed[np.ix_(cells[:, i], cols[i])] = True
    changed &= new.motion != take.motion
    return new, changed, rep


def clean_bvh(source, settings: channel_clean.Settings = channel_clean.Settings(), fill=None):
    """(new BVH text, Report, bone names) of a BVH file (path) or BVH text."""
    if isinstance(source, str) and source.lstrip()[:9].upper() == "HIERARCHY":
        text, name = source, "<string>"
    else:
        text, name = read_text(source), str(source)
    take = bvh_io.parse(text, source=name)
    new, changed, rep = clean_take(take, settings, fill)
    names = [take.joints[k].name for k in rotation_bones(take)]
    return motion_text(text, new.motion, changed), rep, names


def clean_file(source, output, strength: float = 0.5, log=print) -> None:
    """``dposer clean`` for a BVH take: clean ``source`` into ``output`` (a .bvh file; strength 0 copies the take
    unchanged) and log the repairs."""
    from pathlib import Path

    from .npz import check_output, write_text

    if Path(output).suffix.lower() != ".bvh":
        raise ValueError(f"a BVH input is cleaned into a BVH file: --output {output} must end in .bvh")
    out = check_output(output, [source])
    if strength > 0:
        text, rep, names = clean_bvh(source)
        log(f"clean: {len(rep.events)} faults repaired; jitter {rep.jitter_deg:.2f} deg "
            f"({'smoothed' if rep.smoothed else 'not smoothed'})")
        for kind, b, first, last in rep.events:
            log(f"  {kind:8s} {names[b]:15s} frames {first}-{last}")
    else:
        text = read_text(source)
    write_text(out, text, inputs=[source])
    log(f"wrote {out}")


def rest_extent(take: bvh_io.Bvh) -> float:
    """Largest edge of the bounding box of the rest pose's joints and end sites (file units)."""
    pts = []
    pos = {}
    for k, j in enumerate(take.joints):
        p = np.asarray(j.offset, float) + (pos[j.parent] if j.parent >= 0 else 0)
        if j.parent < 0:
            p = np.zeros(3)
        pos[k] = p
        pts.append(p)
        if j.end_site is not None:
            pts.append(p + np.asarray(j.end_site, float))
    pts = np.array(pts)
    return float(np.ptp(pts, axis=0).max())


def positions_mm(take: bvh_io.Bvh) -> np.ndarray:
    """(F, J, 3) world positions of every joint by forward kinematics, in mm on the skeleton scaled to 1.75 m."""
    return take.global_transforms()[1] * (HEIGHT_MM / max(rest_extent(take), 1e-9))


def resample(take: bvh_io.Bvh, fps: float) -> bvh_io.Bvh:
    """The take at another frame rate over the same duration: rotations by slerp (written in each joint's order),
    positions linearly."""
    F = take.num_frames
    t_old = np.arange(F) / take.fps
    n = int(np.floor(t_old[-1] * fps + 1e-9)) + 1
    t_new = np.arange(n) / fps
    motion = np.empty((n, take.motion.shape[1]))
    rot_cols = rotation_columns(take)
    is_rot = np.zeros(take.motion.shape[1], bool)
    is_rot[rot_cols.ravel()] = True
    for c in np.flatnonzero(~is_rot):
        motion[:, c] = np.interp(t_new, t_old, take.motion[:, c])
    q = rotations(take)
    for i, k in enumerate(rotation_bones(take)):
        r = Slerp(t_old, Rotation.from_quat(q[:, i]))(t_new)
        src = np.interp(t_new, t_old, np.arange(F)).round().astype(int)
        motion[:, rot_cols[i]] = _nearest_euler(r, take.joints[k].rotation_order, take.motion[np.ix_(src, rot_cols[i])])
    return replace(take, motion=motion, frame_time=1.0 / fps)
