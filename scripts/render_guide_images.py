"""Render the user guide's pictures (docs/images/guide_*.png) headless with Blender's Workbench engine.

Re-runnable; needs a bpy venv with dposer + torch (the embedded backend, bundled checkpoint) and the shared data:

    OMP_NUM_THREADS=1 PYTHONPATH=backend .venv-bpy50/bin/python scripts/render_guide_images.py \\
        [--out docs/images] [--data ../shared/data] [--only hands,crowd,clean]

Armatures do not render, so each rig gets a stick-figure mesh (one octahedron per bone segment, weighted to the
bone, under an Armature modifier) that follows its pose. The poses come from the EgoBody test split and a Bandai
Namco BVH clip (extracted to a temporary folder, never copied into the repository); everything is posed by the
add-on's own operators.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402  (before addon_utils and mathutils, which bpy provides)
import addon_utils  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Vector  # noqa: E402

from blender_dposer import rig_math as rm  # noqa: E402

GREY = (0.55, 0.57, 0.6, 1.0)
ORANGE = (0.95, 0.45, 0.12, 1.0)
BLUE = (0.2, 0.45, 0.85, 1.0)


# -- scene ------------------------------------------------------------------------------------------------------

def reset_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_dposer", default_set=True)
    addon_utils.enable("io_anim_bvh")
    p = bpy.context.preferences.addons["blender_dposer"].preferences
    p.backend_mode, p.device, p.threads, p.checkpoint = "EMBEDDED", "CPU", 1, ""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.display.shading.show_shadows = False
    scene.display.shading.show_cavity = True
    scene.world = bpy.data.worlds.new("World")
    scene.world.color = (1.0, 1.0, 1.0)
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.compression = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    return scene


def stick_mesh(arm, color, scale: float = 1.0):
    """A mesh child of ``arm``: an octahedron per segment (parent head -> bone head, or a short tip for leaf bones),
    weighted to the bone that carries it, deformed by an Armature modifier."""
    bones = arm.data.bones
    verts, faces, groups = [], [], []

    def segment(a, b, bone):
        a, b = np.asarray(a), np.asarray(b)
        d = b - a
        n = np.linalg.norm(d)
        if n < 1e-6:
            return
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 * n else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(d / n, u)
        r = min(0.14 * n, 0.035 * scale)
        mid = a + 0.2 * d
        i0 = len(verts)
        verts.extend([a, b, mid + r * u, mid + r * v, mid - r * u, mid - r * v])
        ring = [i0 + 2, i0 + 3, i0 + 4, i0 + 5]
        for k in range(4):
            faces.append((i0, ring[(k + 1) % 4], ring[k]))
            faces.append((i0 + 1, ring[k], ring[(k + 1) % 4]))
        groups.append((bone, range(i0, i0 + 6)))

    for b in bones:
        # no segment from a top-level helper bone ('root', 'joint_Root') with a single child
        helper = b.parent is not None and b.parent.parent is None and len(b.parent.children) == 1
        if b.parent is not None and not helper:
            segment(b.parent.head_local, b.head_local, b.parent.name)
        if not b.children and b.parent is not None:
            d = np.asarray(b.head_local) - np.asarray(b.parent.head_local)
            segment(b.head_local, np.asarray(b.head_local) + 0.6 * d, b.name)
    mesh = bpy.data.meshes.new(f"{arm.name}_sticks")
    mesh.from_pydata([tuple(map(float, v)) for v in verts], [], faces)
    obj = bpy.data.objects.new(f"{arm.name}_sticks", mesh)
    bpy.context.collection.objects.link(obj)
    for bone, idx in groups:
        vg = obj.vertex_groups.get(bone) or obj.vertex_groups.new(name=bone)
        vg.add(list(idx), 1.0, "REPLACE")
    obj.parent = arm
    obj.modifiers.new("Armature", "ARMATURE").object = arm
    obj.color = color
    return obj


def camera(location, target, ortho_scale):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(cam)
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = ortho_scale
    cam.location = location
    cam.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.camera = cam
    return cam


def label(text, location, size, color=(0.1, 0.1, 0.1, 1.0), rotation=(np.pi / 2, 0.0, 0.0)):
    curve = bpy.data.curves.new(text, "FONT")
    curve.body = text
    curve.size = size
    curve.align_x = "CENTER"
    obj = bpy.data.objects.new(text, curve)
    bpy.context.collection.objects.link(obj)
    obj.location = location
    obj.rotation_euler = rotation
    obj.color = color
    return obj


def render(path: Path, width: int, height: int):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def select_only(obj):
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def posed_armature(name, pose, x):
    """A DPoser armature at (x, 0, 0) showing ``pose`` (55, 3) on frame 1 (keyed)."""
    bpy.context.scene.cursor.location = (x, 0.0, 0.0)
    assert bpy.ops.dposer.add_armature(name=name) == {"FINISHED"}
    arm = bpy.context.active_object
    for j, joint in enumerate(rm.JOINT_NAMES):
        pb = arm.pose.bones[joint]
        pb.rotation_quaternion = [float(v) for v in rm.axis_angle_to_quaternion(pose[j])]
        pb.keyframe_insert("rotation_quaternion", frame=1)
    return arm


def egobody_poses(data):
    from dposer.formats.data import load_wholebody_set

    aa = rm.joints_from_pose_dict(load_wholebody_set("test", root=data).to_dict())
    aa[:, 0] = 0.0  # stand upright, facing the camera
    return aa


# -- pictures ---------------------------------------------------------------------------------------------------

def picture_hands(out: Path, data: Path, index: int = 3):
    """(a) The same pose twice: flat hands (as mocap without fingers gives them) and after Complete (hands)."""
    reset_scene()
    pose = egobody_poses(data)[index].copy()
    pose[25:55] = 0.0
    flat = posed_armature("Flat", pose, -0.45)
    done = posed_armature("Completed", pose, 0.45)
    stick_mesh(flat, GREY)
    stick_mesh(done, ORANGE)
    select_only(done)
    assert bpy.ops.dposer.complete(parts="left_hand,right_hand", hypotheses=4, seed=0) == {"FINISHED"}
    labels = [label("flat hands", (-0.45, 0.0, 1.75), 0.07), label("Complete: hands", (0.45, 0.0, 1.75), 0.07)]
    camera((0.0, -5.0, 0.93), (0.0, 0.0, 0.93), 2.2)
    render(out / "guide_complete_hands.png", 800, 760)
    # close-up of the hands of each figure, side by side
    for o in labels:
        o.hide_render = True
    bpy.context.scene.frame_set(1)
    tiles = []
    for arm in (flat, done):
        wrists = [arm.matrix_world @ arm.pose.bones[w].head for w in ("left_wrist", "right_wrist")]
        c = (wrists[0] + wrists[1]) / 2
        camera((c.x, c.y - 5.0, c.z - 0.03), (c.x, c.y, c.z - 0.03), 0.5)
        tile = out / f"_tile_{arm.name}.png"
        render(tile, 450, 340)
        tiles.append(tile)
    side_by_side(tiles, out / "guide_complete_hands_closeup.png")


def side_by_side(tiles, path: Path):
    """Put rendered PNGs next to each other (same height) into one PNG; the tiles are deleted."""
    imgs = [bpy.data.images.load(str(t)) for t in tiles]
    h = imgs[0].size[1]
    px = [np.asarray(im.pixels[:], dtype=np.float32).reshape(h, im.size[0], 4) for im in imgs]
    gap = np.ones((h, 6, 4), dtype=np.float32)
    joined = np.concatenate(sum(([p, gap] for p in px), [])[:-1], axis=1)
    out = bpy.data.images.new(path.stem, joined.shape[1], h)
    out.pixels.foreach_set(joined.ravel())
    out.filepath_raw = str(path)
    out.file_format = "PNG"
    out.save()
    for im, t in zip(imgs, tiles):
        bpy.data.images.remove(im)
        t.unlink()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def picture_crowd(out: Path, data: Path, index: int = 7):
    """(b) Variations as armatures: the original (blue) and 8 variations in a grid."""
    reset_scene()
    arm = posed_armature("Actor", egobody_poses(data)[index], 0.0)
    stick_mesh(arm, BLUE)
    select_only(arm)
    assert bpy.ops.dposer.vary(count=8, strength=0.4, seed=2, spacing=1.1, lock_selected=False) == {"FINISHED"}
    for o in bpy.data.objects:
        if o.type == "MESH" and o.parent is not None and o.parent.name.startswith("Actor.var"):
            o.color = ORANGE
    camera((-3.2, -6.5, 4.2), (1.1, 1.1, 0.8), 4.6)
    render(out / "guide_variations.png", 900, 650)


def picture_clean(out: Path, data: Path, frame: int = 60):
    """(c) A Bandai Namco BVH clip with jitter added to its body keys (grey), and the same after Clean (orange)."""
    reset_scene()
    tmp = Path(tempfile.mkdtemp())
    with tarfile.open(data / "bvh" / "bandai_namco_motion_1.tar.xz") as tar:
        m = tar.getmember("./dataset-1_dance-short_normal_001.bvh")
        m.name = "clip.bvh"
        tar.extract(m, tmp)
    rigs = []
    for name, x in (("Noisy", -90.0), ("Cleaned", 90.0)):
        assert bpy.ops.import_anim.bvh(filepath=str(tmp / "clip.bvh")) == {"FINISHED"}
        arm = bpy.context.active_object
        arm.name = name
        arm.location.x = x
        rigs.append(arm)
    from blender_dposer import keyframes as kf

    rng = np.random.default_rng(0)
    for arm in rigs:  # the same jitter on both
        rng = np.random.default_rng(0)
        for fc in kf.Channels(arm).all():
            if fc.data_path.endswith("rotation_euler") and "Hips" not in fc.data_path and "Root" not in fc.data_path:
                co = kf.fcurve_keys(fc).copy()
                co[:, 1] += rng.normal(scale=0.08, size=len(co))
                fc.keyframe_points.foreach_set("co", co.ravel())
                fc.update()
    scene = bpy.context.scene
    scene.frame_set(1)
    for arm in rigs:
        select_only(arm)
        assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
        assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    scene.frame_set(1)
    select_only(rigs[1])
    assert bpy.ops.dposer.clean(frame_start=1, frame_end=120, strength=0.6, lock_selected=False) == {"FINISHED"}
    # trajectories of the hands and feet over the 120 frames: jitter shows as zigzags
    tracks = {arm.name: {b: [] for b in ("Hand_L", "Hand_R", "Foot_L", "Foot_R")} for arm in rigs}
    for f in range(1, 121):
        scene.frame_set(f)
        for arm in rigs:
            for b, pts in tracks[arm.name].items():
                pts.append(arm.matrix_world @ arm.pose.bones[b].head)
    for arm, color in zip(rigs, (GREY, ORANGE)):
        stick_mesh(arm, color, scale=100.0)
        for b, pts in tracks[arm.name].items():
            polyline(f"{arm.name}_{b}_track", pts, BLUE if b.startswith("Hand") else (0.2, 0.6, 0.3, 1.0), 0.6)
    scene.frame_set(frame)
    z = 200.0
    label("jittery mocap", (rigs[0].location.x, 0.0, z), 14.0)
    label("after Clean", (rigs[1].location.x, 0.0, z), 14.0)
    camera((0.0, -600.0, 110.0), (0.0, 0.0, 110.0), 400.0)
    render(out / "guide_clean_bvh.png", 900, 620)


def polyline(name, points, color, radius):
    """A round tube through ``points`` (a curve with a bevel, which Workbench renders)."""
    curve = bpy.data.curves.new(name, "CURVE")
    curve.dimensions = "3D"
    curve.bevel_depth = radius
    spline = curve.splines.new("POLY")
    spline.points.add(len(points) - 1)
    for p, v in zip(spline.points, points):
        p.co = (v.x, v.y, v.z, 1.0)
    obj = bpy.data.objects.new(name, curve)
    bpy.context.collection.objects.link(obj)
    obj.color = color
    return obj


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", default="hands,crowd,clean")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pictures = {"hands": picture_hands, "crowd": picture_crowd, "clean": picture_clean}
    for name in args.only.split(","):
        pictures[name.strip()](args.out, args.data)


if __name__ == "__main__":
    main()
