"""Fill Gap's bpy-free choices (blender_dposer.fill_frames): the frames of the take sent around a gap and the joints
a run fills."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_dposer.fill_frames import context_frames, fill_joints  # noqa: E402


def test_the_whole_action_travels_when_it_fits():
    assert context_frames(120, 149, (1, 278), 20000) == (1, 278)
    assert context_frames(1, 10, (1, 278), 20000) == (1, 278)  # a gap at the start: the motion after it
    assert context_frames(250, 300, (1, 278), 20000) == (1, 300)  # past the last key: the frames up to it


def test_a_long_take_is_cut_evenly_around_the_gap():
    assert context_frames(50, 60, (1, 100), 21) == (45, 65)
    assert context_frames(5, 10, (1, 100), 26) == (1, 26)  # little room before: the rest after
    assert context_frames(90, 100, (1, 100), 21) == (80, 100)
    a, b = context_frames(15000, 15099, (1, 40000), 20000)
    assert b - a + 1 == 20000 and 15000 - a == b - 15099


def test_gaps_without_motion_around_them_are_refused():
    with pytest.raises(ValueError, match="cover the whole action"):
        context_frames(1, 100, (1, 100), 20000)
    with pytest.raises(ValueError, match="at most 19999"):
        context_frames(1, 20000, (1, 30000), 20000)


def test_joints_are_the_selected_body_joints_or_the_whole_body():
    mapped = {"pelvis", "left_hip", "left_knee", "spine1", "left_index1"}
    assert fill_joints(mapped, None) == ["pelvis", "left_hip", "spine1", "left_knee"]  # SMPL-X order
    assert fill_joints(mapped, {"left_knee", "left_index1"}) == ["left_knee"]
    assert fill_joints(mapped, {"left_index1"}) == []
