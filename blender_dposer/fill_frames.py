# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Gap's choices that need no Blender (bpy-free, unit-tested outside it): which SMPL-X joints a run fills and
which frames of the take travel with the request."""
from __future__ import annotations

from dposer.spec.skeleton import BODY_MOTION_JOINTS


def context_frames(start: int, end: int, action_range: tuple[int, int] | None, max_frames: int) -> tuple[int, int]:
    """The frames sent with a gap start..end: the take's whole action (its motion before and after the gap is what
    the fill reads), at most ``max_frames``, cut evenly on both sides of the gap where the take is longer. Raises
    ValueError when the gap itself does not fit or no frame outside it remains."""
    n_gap = end - start + 1
    if n_gap + 1 > max_frames:
        raise ValueError(f"{n_gap} frames to fill: at most {max_frames - 1} per run")
    a, b = (start, end) if action_range is None else (min(start, action_range[0]), max(end, action_range[1]))
    room = max_frames - n_gap
    before, after = start - a, b - end
    take_before = min(before, max(room // 2, room - after))
    take_after = min(after, room - take_before)
    if take_before + take_after == 0:
        raise ValueError(f"frames {start}-{end} cover the whole action: there are no keys around the gap to fill "
                         "from (the fill reads the motion before and after it)")
    return start - take_before, end + take_after


def fill_joints(mapped: set[str], selected: set[str] | None) -> list[str]:
    """The body-motion joints (root and 21 body joints, SMPL-X order) to fill: the ``selected`` ones the rig maps,
    or every mapped one when nothing is selected (``selected`` None or empty)."""
    wanted = set(BODY_MOTION_JOINTS) if not selected else set(selected)
    return [j for j in BODY_MOTION_JOINTS if j in wanted and j in mapped]
