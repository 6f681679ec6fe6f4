"""Start-frame offsets of Variations' copies (blender_dposer.crowd_time, bpy-free)."""
import pytest

from blender_dposer.crowd_time import start_offsets


def test_start_offsets_spread_and_seeded():
    assert start_offsets(4, 0, 7) == [0, 0, 0, 0]
    a = start_offsets(4, 12, 3)
    assert sorted(a) == [0, 4, 8, 12]
    assert start_offsets(4, 12, 3) == a  # the seed decides the order
    assert any(start_offsets(4, 12, s) != a for s in range(4, 20))
    assert start_offsets(1, 30, 0) == [0]
    assert sorted(start_offsets(10, 3, 1)) == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]  # more copies than frames: shared


def test_start_offsets_refuse_bad_input():
    with pytest.raises(ValueError):
        start_offsets(0, 5, 0)
    with pytest.raises(ValueError):
        start_offsets(3, -1, 0)
