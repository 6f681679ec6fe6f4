"""The add-on in real bpy: registration, "Add DPoser armature", the keyframe compatibility helper, part names."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="needs Blender's bpy module (scripts/setup_blender_venvs.sh)")

from dposer.spec import bone_maps  # noqa: E402
from dposer.spec import skeleton  # noqa: E402
from blender_dposer import rig_math as rm  # noqa: E402

ADDON = "blender_dposer"


def _registered() -> bool:
    from blender_dposer.preferences import DPoserPreferences

    return all(hasattr(bpy.types, c) for c in ("DPOSER_OT_complete", "DPOSER_OT_add_armature",
                                               "DPOSER_OT_test_backend", "DPOSER_PT_main")) \
        and DPoserPreferences.is_registered and hasattr(bpy.ops.dposer, "complete")


def test_register_unregister_twice(bpy_addon):
    import addon_utils

    import blender_dposer

    assert _registered() and hasattr(bpy.types.Scene, "dposer_settings")
    for _ in range(2):
        addon_utils.disable(ADDON, default_set=True)
        assert not any(hasattr(bpy.types, c) for c in ("DPOSER_OT_complete", "DPOSER_PT_main"))
        assert not hasattr(bpy.types.Scene, "dposer_settings") and ADDON not in bpy.context.preferences.addons
        blender_dposer.unregister()  # a second unregister is a no-op
        assert addon_utils.enable(ADDON, default_set=True) is not None
        assert _registered() and hasattr(bpy.types.Scene, "dposer_settings")
    blender_dposer.register()  # a second register is a no-op (no ValueError)
    # a class left registered behind the add-on's back (e.g. a reload) is replaced, not a ValueError
    from blender_dposer import _register_class
    from blender_dposer.operators import DPOSER_OT_test_backend

    _register_class(DPOSER_OT_test_backend)
    assert _registered()
    assert bpy.context.preferences.addons[ADDON].preferences.backend_mode == "SUBPROCESS"  # the default


def test_add_armature(bpy_addon, scene):
    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE" and obj.name == "DPoser" and obj.select_get()
    rig = rm.official_smplx_rig()
    names = [b.name for b in obj.data.bones]
    assert sorted(names) == sorted(rig.names) and len(names) == 56
    assert set(names) == set(rm.JOINT_NAMES) | {"root"}
    for b in obj.data.bones:
        k = rig.index[b.name]
        expected_parent = None if rig.parents[k] < 0 else rig.names[rig.parents[k]]
        assert (b.parent.name if b.parent else None) == expected_parent
        assert np.allclose(np.array(b.matrix_local), rig.rest[k], atol=1e-6), b.name
        assert np.allclose(np.array(b.matrix_local)[:3, :3], rm.C_ZUP, atol=1e-6)  # bones along +Z, roll 0
    assert all(pb.rotation_mode == "QUATERNION" for pb in obj.pose.bones)
    det = bone_maps.detect_preset(names)
    assert det is not None and det.preset.id == "smplx" and len(det.bone_map) == 55
    # a bone's quaternion is the SMPL-X axis-angle: posed FK matches rig_math's SMPL-X FK
    aa = np.random.default_rng(0).normal(0, 0.4, (55, 3))
    for j, name in enumerate(rm.JOINT_NAMES):
        obj.pose.bones[name].rotation_quaternion = rm.axis_angle_to_quaternion(aa[j])
    bpy.context.view_layer.update()
    G, pos = rm.smplx_fk(aa)
    for j, name in enumerate(rm.JOINT_NAMES):
        m = np.array(obj.pose.bones[name].matrix)
        assert np.allclose(m[:3, :3], rm.C_ZUP @ G[j] @ rm.C_ZUP.T @ rm.C_ZUP, atol=1e-5)
        assert np.allclose(m[:3, 3], rm.C_ZUP @ pos[j], atol=1e-5)


def _plain_armature(name, bones):
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for i, b in enumerate(bones):
        eb = arm.edit_bones.new(b)
        eb.head, eb.tail = (0.0, 0.0, i * 0.1), (0.0, 0.05, i * 0.1 + 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def test_keyframes_write_read_modes_and_continuity(bpy_addon, scene):
    from blender_dposer import keyframes as kf

    obj = _plain_armature("Rig", ["q", "e", "aa"])
    obj.pose.bones["e"].rotation_mode = "ZXY"
    obj.pose.bones["aa"].rotation_mode = "AXIS_ANGLE"
    rng = np.random.default_rng(1)
    frames = np.arange(1, 31, dtype=np.float64)
    # a rotation about a fixed axis through 0..2.4 pi: canonical quaternions would flip sign past pi
    angle = np.linspace(0, 2.4 * np.pi, len(frames))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    mats = rm.axis_angle_to_matrix(axis * angle[:, None])
    keys = [kf.rotation_keys(b, obj.pose.bones[b].rotation_mode, frames, mats) for b in ("q", "e", "aa")]
    assert kf.write_rotation_keys(obj, keys) == 30 * (4 + 3 + 4)
    ad = obj.animation_data
    assert ad is not None and ad.action is not None
    if kf.SLOTTED:
        assert ad.action_slot is not None  # always assigned (4.4+)
    if kf.VERSION >= (5, 0, 0):
        assert not kf.HAS_LEGACY_FCURVES
    ch = kf.Channels(obj)
    fq = [ch.find('pose.bones["q"].rotation_quaternion', i) for i in range(4)]
    assert all(fc is not None and len(fc.keyframe_points) == 30 for fc in fq)
    assert fq[0].group is not None and fq[0].group.name == "q"
    q = np.stack([kf.fcurve_keys(fc)[:, 1] for fc in fq], -1)
    assert np.all(np.sum(q[1:] * q[:-1], -1) > 0)  # sign continuity
    assert ch.find('pose.bones["e"].rotation_euler', 2) is not None
    assert ch.find('pose.bones["e"].rotation_quaternion', 0) is None
    # read back (fast path: every frame is a key) and through evaluate (sub-frames: interpolated)
    basis = kf.read_basis_rotations(obj, frames, ["q", "e", "aa"])
    assert np.allclose(basis, mats[:, None], atol=2e-6)
    # Blender agrees: the evaluated pose equals the written rotations
    for f in (1, 7, 30):
        scene.frame_set(f)
        for k, b in enumerate(("q", "e", "aa")):
            assert np.allclose(np.array(obj.pose.bones[b].matrix_basis)[:3, :3], mats[f - 1], atol=2e-6), (b, f)
    # overwrite a sub-range in place; keys outside it are untouched, keys in it carry the new values
    before = kf.snapshot(obj)
    new = rm.axis_angle_to_matrix(np.tile([0.0, 0.3, 0.0], (5, 1)))
    sub = np.arange(10, 15, dtype=np.float64)
    prev = kf.previous_rotation_value(obj, "q", sub[0] - 1)
    kf.write_rotation_keys(obj, [kf.rotation_keys("q", "QUATERNION", sub, new, prev)])
    after = kf.snapshot(obj)
    assert set(after) == set(before)
    for key, co in after.items():
        if key[0].startswith('pose.bones["q"]'):
            assert len(co) == 30
            outside = (co[:, 0] < 10) | (co[:, 0] > 14)
            # keys outside keep their values; their auto handles may move (Blender's default auto smoothing,
            # 'Continuous Acceleration', is global along the curve)
            assert np.array_equal(co[outside, :2], before[key][outside, :2])
        else:
            assert np.array_equal(co, before[key])
    got = kf.read_basis_rotations(obj, sub, ["q"])[:, 0]
    assert np.allclose(got, new, atol=2e-6)
    # new frames are added (and sorted) next to existing keys
    kf.write_rotation_keys(obj, [kf.rotation_keys("q", "QUATERNION", [40.0], new[:1], None)])
    co = kf.fcurve_keys(kf.Channels(obj).find('pose.bones["q"].rotation_quaternion', 0))
    assert len(co) == 31 and co[-1, 0] == 40.0 and np.all(np.diff(co[:, 0]) > 0)


def test_keyframes_existing_action_and_unkeyed_bones(bpy_addon, scene):
    """Keys written next to keyframe_insert keys share the same action (and slot); unkeyed channels read the
    pose bone's current value."""
    from blender_dposer import keyframes as kf

    obj = _plain_armature("Rig2", ["a", "b"])
    obj.pose.bones["a"].rotation_quaternion = (0.0, 1.0, 0.0, 0.0)
    obj.pose.bones["a"].keyframe_insert("rotation_quaternion", frame=1)
    obj.pose.bones["b"].rotation_quaternion = rm.axis_angle_to_quaternion([0.0, 0.0, 0.5])
    action = obj.animation_data.action
    basis = kf.read_basis_rotations(obj, [1.0, 2.0], ["a", "b"])
    assert np.allclose(basis[:, 1], rm.rot_z(0.5), atol=1e-6)
    assert np.allclose(basis[:, 0], rm.rot_x(np.pi), atol=1e-6)
    kf.write_rotation_keys(obj, [kf.rotation_keys("b", "QUATERNION", [1.0, 2.0], basis[:, 1])])
    assert obj.animation_data.action == action
    n_curves = len(kf.Channels(obj).all())
    assert n_curves == 8
    scene.frame_set(2)
    assert np.allclose(np.array(obj.pose.bones["b"].matrix_basis)[:3, :3], rm.rot_z(0.5), atol=1e-6)


def test_part_names_match_backend():
    pytest.importorskip("dposer")
    from dposer.spec import layout

    names = list(layout.PARTS) + ["all", "hands"] + list(layout.KEY_SLICES) + sorted(layout.GROUPS) + \
        list(layout.VECTOR_JOINTS)
    for name in names:
        dims = layout.names_to_dims(name)
        joints = {layout.VECTOR_JOINTS[d // 3] for d in dims if d < 153} | ({"jaw"} if np.any(
            (dims >= 153) & (dims < 156)) else set())
        assert set(skeleton.names_to_joints(name)) == joints, name
    assert skeleton.names_to_joints(" right_hand , left_index ") == tuple(
        j for j in rm.JOINT_NAMES if j.startswith("right_") and j[6:-1] in bone_maps.FINGERS or
        j in ("left_index1", "left_index2", "left_index3"))
    with pytest.raises(ValueError, match="unknown part"):
        skeleton.names_to_joints("right_hnd")


def test_armature_up_axes():
    assert np.allclose(rm.armature_up_axes(None), rm.C_ZUP)
    assert np.allclose(rm.armature_up_axes(rm.rot_z(2.0)), rm.C_ZUP)  # yaw does not change C
    assert np.allclose(rm.armature_up_axes(rm.rot_x(np.pi / 2)), np.eye(3), atol=1e-12)  # FBX Y-up rig


def test_extension_install(tmp_path):
    """The built extension zip installs and enables as ``bl_ext.user_default.blender_dposer`` in a fresh Blender
    (a separate process: BLENDER_USER_RESOURCES is read at start-up), its preferences live under that id, and its
    operators run."""
    import importlib.util
    import os
    import subprocess
    import sys

    from pathlib import Path

    REPO = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("build_addon", REPO / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    zip_path = build_addon.build(tmp_path / "dist")
    script = tmp_path / "install.py"
    script.write_text(
        "import bpy\n"
        f"assert bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, repo='user_default', "
        "enable_on_install=True) == {'FINISHED'}\n"
        "name = 'bl_ext.user_default.blender_dposer'\n"
        "assert name in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]\n"
        "p = bpy.context.preferences.addons[name].preferences\n"
        "assert p is not None and p.backend_mode == 'SUBPROCESS'\n"
        "assert bpy.ops.dposer.add_armature() == {'FINISHED'}\n"
        "assert len(bpy.context.active_object.data.bones) == 56\n"
        "print('EXTENSION-OK')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    r = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "EXTENSION-OK" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_keyframes_are_written_in_bulk_one_write_per_fcurve(bpy_addon, scene, monkeypatch):
    """55 quaternion bones x 300 frames (66,000 keys): one bulk write per F-curve (keyframe_points.add +
    foreach_set, never a key at a time), read back exactly; writing the same frames again overwrites in place.
    (Timings: blender.md 5.3/5.6, about 0.01 s for the write.)"""
    from blender_dposer import keyframes as kf

    assert bpy.ops.dposer.add_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    frames = np.arange(1, 301, dtype=np.float64)
    aa = np.random.default_rng(2).normal(0, 0.5, (300, 55, 3))
    mats = rm.axis_angle_to_matrix(aa)
    keys = [kf.rotation_keys(name, "QUATERNION", frames, mats[:, j]) for j, name in enumerate(rm.JOINT_NAMES)]
    writes, write = [], kf._write_channel
    monkeypatch.setattr(kf, "_write_channel", lambda fc, f, v, *more: writes.append(len(f)) or write(fc, f, v, *more))
    assert kf.write_rotation_keys(obj, keys) == 55 * 4 * 300
    assert writes == [300] * (55 * 4)
    assert np.allclose(kf.read_basis_rotations(obj, frames, list(rm.JOINT_NAMES)), mats, atol=2e-6)
    assert kf.write_rotation_keys(obj, keys) == 55 * 4 * 300  # the same frames: overwritten, not added
    fcurves = kf.Channels(obj)
    assert {len(fcurves.find(kf.rotation_data_path(name, "QUATERNION"), i).keyframe_points)
            for name in rm.JOINT_NAMES for i in range(4)} == {300}
