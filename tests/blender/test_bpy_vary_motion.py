"""``dposer.vary`` on an animated rig in real bpy (embedded backend): a BVH take imported with Blender's importer and
calibrated with the add-on's operators; Variations with the current frame on a frame without a key vary the whole
motion: every copy (RIGS) or new action (ACTIONS) differs from the original on nearly every frame of the action,
smoothly; copies can start at different frames; the original is untouched and undo removes everything."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")
pytest.importorskip("dposer", reason="the embedded backend needs dposer + torch in this Python")

from blender_dposer import keyframes as kf  # noqa: E402
from blender_dposer import jobs  # noqa: E402

from bvh_synth import CMU_NAMES, synth_bvh  # noqa: E402

from .conftest import assert_scene_unchanged, scene_snapshot  # noqa: E402

FRAMES = 100  # the AMASS walk take at 30 fps (every 4th frame of 120 fps)
N = 3


@pytest.fixture(scope="module")
def bvh_file(data_root, tmp_path_factory):
    from dposer.formats.data import load_amass_take

    ps = load_amass_take(data_root).subset(np.arange(0, 4 * FRAMES, 4))
    trans = ps.extras["trans"] - ps.extras["trans"][:1] * np.array([1.0, 0.0, 1.0])
    text = synth_bvh(ps.vectors[:, :63], ps.extras["global_orient"], trans, CMU_NAMES)
    path = tmp_path_factory.mktemp("bvh") / "walk.bvh"
    path.write_text(text)
    return path


@pytest.fixture
def walk(prefs, bpy_addon, scene, bvh_file):
    import addon_utils

    prefs.backend_mode = "EMBEDDED"
    addon_utils.enable("io_anim_bvh")
    assert bpy.ops.import_anim.bvh(filepath=str(bvh_file)) == {"FINISHED"}
    obj = bpy.context.active_object
    scene.render.fps, scene.render.fps_base = 30, 1.0
    assert kf.action_frame_range(obj) == (1, FRAMES)
    scene.frame_set(1)
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    scene.frame_set(FRAMES + 20)  # after the last key: a frame without a key
    return obj


def bone_heads(obj, frames) -> np.ndarray:
    """(F, B, 3) posed bone heads in armature space (the root's keyed location included)."""
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append([tuple(pb.head) for pb in obj.pose.bones])
    return np.array(out)


def rig_height(obj) -> float:
    z = [b.head_local[2] for b in obj.data.bones] + [b.tail_local[2] for b in obj.data.bones]
    return float(np.ptp(z))


def check_varied_motion(original: np.ndarray, copy: np.ndarray, height: float) -> None:
    """The issue's bar: the copy differs from the original on >= 90% of the frames (by >= 1% of the rig's height,
    the largest bone displacement) with no frame-to-frame jump beyond 1.5x the original's largest."""
    differ = np.linalg.norm(copy - original, axis=-1).max(1) >= 0.01 * height
    assert differ.mean() >= 0.9, differ.mean()
    jump = np.linalg.norm(np.diff(copy, axis=0), axis=-1).max()
    jump0 = np.linalg.norm(np.diff(original, axis=0), axis=-1).max()
    assert jump <= 1.5 * jump0, (jump, jump0)


def test_variations_of_an_animated_rig_vary_every_frame(walk):
    obj = walk
    frames = range(1, FRAMES + 1)
    before = kf.snapshot(obj)
    original = bone_heads(obj, frames)
    height = rig_height(obj)
    bpy.context.scene.frame_set(FRAMES + 20)
    args = jobs.VaryJob(bpy.context, N, 0.3, "", False, 1).args  # the request, from the scene before the run
    assert bpy.ops.dposer.vary(count=N, strength=0.3, seed=1, lock_selected=False) == {"FINISHED"}
    assert args["clip"] is True and args["fps"] == 30.0 and len(args["pose"]["body_pose"]) == FRAMES
    after = kf.snapshot(obj)
    assert set(after) == set(before) and all(np.array_equal(after[k], v) for k, v in before.items())
    copies = [bpy.data.objects[f"{obj.name}.var{i + 1:03d}"] for i in range(N)]
    motions = [bone_heads(c, frames) for c in copies]
    for m in motions:
        check_varied_motion(original, m, height)
    for i in range(N):
        for j in range(i + 1, N):
            assert np.linalg.norm(motions[i] - motions[j], axis=-1).max(1).mean() >= 0.01 * height


def planted_slide(heads: np.ndarray, feet: list[int], planted: np.ndarray) -> float:
    """Mean horizontal (armature X, Y) step of the foot bones' heads over the frame pairs ``planted`` (F-1, feet)."""
    step = np.linalg.norm(np.diff(heads[:, feet, :2], axis=0), axis=-1)
    return float(step[planted].mean())


def test_copies_keep_planted_feet(walk):
    """The feet the original plants (toe and ankle bone heads low and slow) slide no more on the copies, whose root
    locations the backend moved: the take's root motion is sent as a translation and written back."""
    obj = walk
    frames = range(1, FRAMES + 1)
    names = [pb.name for pb in obj.pose.bones]
    feet = [names.index(b) for b in ("LeftFoot", "LeftToeBase", "RightFoot", "RightToeBase")]
    original = bone_heads(obj, frames)
    height = rig_height(obj)
    z = original[:, feet, 2]
    step = np.linalg.norm(np.diff(original[:, feet, :2], axis=0), axis=-1)
    low = z <= z.min(0) + 0.03 * height
    planted = low[1:] & low[:-1] & (step < 0.01 * height)
    assert planted.mean() > 0.05
    assert "trans" in jobs.VaryJob(bpy.context, N, 0.3, "", False, 1).args["pose"]
    assert bpy.ops.dposer.vary(count=N, strength=0.3, seed=1, lock_selected=False) == {"FINISHED"}
    slide0 = planted_slide(original, feet, planted)
    for i in range(N):
        copy = bone_heads(bpy.data.objects[f"{obj.name}.var{i + 1:03d}"], frames)
        slide = planted_slide(copy, feet, planted)
        assert slide <= 1.25 * slide0 + 1e-4 * height, (i, slide, slide0)


def test_actions_and_start_offsets(walk):
    """ACTIONS: each new action holds its own varied motion on every frame; the armature keeps its action. RIGS
    with a start offset: the copies start on different frames (keys shifted, seeded)."""
    obj = walk
    frames = range(1, FRAMES + 1)
    original_action = obj.animation_data.action
    original = bone_heads(obj, frames)
    height = rig_height(obj)
    assert bpy.ops.dposer.vary(count=2, strength=0.3, seed=2, mode="ACTIONS", lock_selected=False) == {"FINISHED"}
    assert obj.animation_data.action == original_action
    slot = obj.animation_data.action_slot if kf.SLOTTED else None
    try:
        for i in range(2):
            obj.animation_data.action = bpy.data.actions[f"{original_action.name}.var{i + 1:03d}"]
            if kf.SLOTTED and obj.animation_data.action_slot is None:
                obj.animation_data.action_slot = obj.animation_data.action.slots[0]
            check_varied_motion(original, bone_heads(obj, frames), height)
    finally:
        obj.animation_data.action = original_action
        if slot is not None:
            obj.animation_data.action_slot = slot

    names = [f"{obj.name}.var{i + 1:03d}" for i in range(4)]
    assert bpy.ops.dposer.vary(count=4, strength=0.3, seed=3, lock_selected=False) == {"FINISHED"}
    in_step = [kf.snapshot(bpy.data.objects[n]) for n in names]
    for n in names:
        bpy.data.objects.remove(bpy.data.objects[n])
    bpy.data.collections.remove(bpy.data.collections[f"{obj.name} variations"])
    assert bpy.ops.dposer.vary(count=4, strength=0.3, seed=3, start_offset=12, lock_selected=False) == {"FINISHED"}
    delays = []
    for n, keys in zip(names, in_step):
        shifted = kf.snapshot(bpy.data.objects[n])
        assert set(shifted) == set(keys)
        delay = shifted[next(iter(keys))][0, 0] - keys[next(iter(keys))][0, 0]
        for k, v in keys.items():  # the same varied motion, every key ``delay`` frames later
            assert np.allclose(shifted[k][:, 0] - delay, v[:, 0], atol=1e-3)
            assert np.array_equal(shifted[k][:, 1], v[:, 1])
        delays.append(int(round(delay)))
    assert sorted(delays) == [0, 4, 8, 12], delays  # spread over 0..12, shuffled by the seed


def test_variations_of_an_animated_rig_undo(walk):
    before = scene_snapshot()
    bpy.ops.ed.undo_push(message="before DPoser variations")
    assert bpy.ops.dposer.vary(count=2, seed=3, start_offset=5, lock_selected=False) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="DPoser variations")
    assert f"{walk.name}.var002" in bpy.data.objects
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_scene_unchanged(before)
