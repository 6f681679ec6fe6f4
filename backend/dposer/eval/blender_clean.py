"""Clean in Blender against the filters an animator has there, on held-out BVH takes imported with Blender's own
importer. Runs only in a Python with Blender's ``bpy`` module (``scripts/setup_blender_venvs.sh``):

    PYTHONPATH=$PWD/backend:$PWD DPOSER_DATA=../shared/data .venv-bpy50/bin/python -m dposer.eval.blender_clean

Per take (Bandai dataset-1 and the CMU cgspeed subjects 06-09, the held-out takes of
:mod:`dposer.eval.channel_bench`): the channel fault model (:mod:`dposer.eval.channel_faults`, seeded by the take's
index; ``--kind tuning``: Bandai dataset-2, CMU 131_03 and the cgspeed subjects 02-05 instead) is injected into the take's own
rotations, the faulty take is written as a BVH, imported (``import_anim.bvh``), calibrated as the Blender tests do
(the automatic SMPL-X zero pose, then ``calibrate_rest``), and repaired by:

- **Clean**: ``dposer.clean`` over the whole take, default strength (the prior's keys on mapped bones, the channel
  cleaner on every other animated bone);
- **graph.butterworth_smooth**: Blender's own filter on every rotation F-curve, through a Graph Editor area;
- **median + Gaussian** and **Butterworth 6 Hz** (:mod:`dposer.eval.channel_bench`'s filters) on the F-curve values.

Error: mean distance (mm) of every pose bone's head (evaluated per frame) to the same head in the clean take,
imported the same way, with the skeleton scaled to 1.75 m (:func:`dposer.formats.bvh_channels.rest_extent`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..formats import bvh as bvh_io
from ..formats import bvh_channels as bc
from . import channel_bench as cb
from . import channel_faults as cf

REPO = Path(__file__).resolve().parents[3]
BLENDER_BUTTER_HZ = cb.BUTTER_HZ  # graph.butterworth_smooth cutoff (its other settings: Blender's defaults)


def _bpy():
    import bpy

    return bpy


def enable_addon(checkpoint: str = ""):
    """Blender with the add-on (embedded backend, CPU, one thread) and the BVH importer enabled."""
    bpy = _bpy()
    import addon_utils

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if addon_utils.enable("blender_dposer", default_set=True) is None:
        raise RuntimeError("could not enable the blender_dposer add-on")
    addon_utils.enable("io_anim_bvh")
    p = bpy.context.preferences.addons["blender_dposer"].preferences
    p.backend_mode, p.python_path, p.device, p.threads, p.checkpoint = "EMBEDDED", sys.executable, "CPU", 1, checkpoint


def _empty_scene():
    bpy = _bpy()
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for coll in (bpy.data.objects, bpy.data.armatures, bpy.data.actions, bpy.data.collections):
        for item in list(coll):
            coll.remove(item)


def import_take(path: Path):
    """The BVH at ``path`` imported into an empty scene (scene fps and range from the file), calibrated."""
    bpy = _bpy()
    _empty_scene()
    assert bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=True,
                                   update_scene_duration=True) == {"FINISHED"}
    obj = bpy.context.active_object
    bpy.context.scene.frame_set(1)
    return obj


def calibrate():
    bpy = _bpy()
    assert bpy.ops.dposer.show_zero_pose(source="AUTO") == {"FINISHED"}
    assert bpy.ops.dposer.calibrate_rest(method="POSE") == {"FINISHED"}
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)


def heads(obj, n: int) -> np.ndarray:
    """(n, bones, 3) evaluated pose-bone heads (armature space) on frames 1..n."""
    bpy = _bpy()
    sc = bpy.context.scene
    out = np.empty((n, len(obj.pose.bones), 3))
    buf = np.empty(len(obj.pose.bones) * 3, np.float32)
    for f in range(n):
        sc.frame_set(f + 1)
        obj.pose.bones.foreach_get("head", buf)
        out[f] = buf.reshape(-1, 3)
    return out


def rotation_fcurves(obj) -> list:
    from blender_dposer import keyframes as kf

    return [fc for fc in kf.Channels(obj).all() if "rotation" in fc.data_path]


def filter_fcurves(obj, fn) -> None:
    """``fn(values (F, n)) -> values`` on every rotation F-curve's keys (one key per frame, as the importer
    writes them; Euler curves unwrapped first)."""
    from blender_dposer import keyframes as kf

    fcs = rotation_fcurves(obj)
    co = [kf.fcurve_keys(fc).astype(np.float64) for fc in fcs]
    n = min(len(c) for c in co)
    vals = np.stack([c[:n, 1] for c in co], 1)
    euler = np.array(["euler" in fc.data_path for fc in fcs])
    vals[:, euler] = np.unwrap(vals[:, euler], axis=0)
    new = fn(vals)
    for i, fc in enumerate(fcs):
        c = co[i].copy()
        c[:n, 1] = new[:, i]
        fc.keyframe_points.foreach_set("co", c.astype(np.float32).ravel())
        fc.update()


def graph_butterworth(obj, cutoff_hz: float | None = BLENDER_BUTTER_HZ, first: float = -np.inf,
                      last: float = np.inf) -> None:
    """``graph.butterworth_smooth`` on the rotation keys of frames ``first``-``last`` (default: all), through a Graph
    Editor area (headless: the largest area of the startup screen switched to the Graph Editor, entered with
    ``temp_override``). ``cutoff_hz=None``: Blender's default cutoff."""
    bpy = _bpy()
    from blender_dposer import keyframes as kf

    for fc in kf.Channels(obj).all():
        fc.select = "rotation" in fc.data_path
        fc.hide = False
        for k in fc.keyframe_points:
            on = fc.select and first <= k.co[0] <= last
            k.select_control_point = k.select_left_handle = k.select_right_handle = on
    area = max(bpy.context.screen.areas, key=lambda a: a.width * a.height)
    old = area.type
    area.type = "GRAPH_EDITOR"
    try:
        area.spaces.active.dopesheet.show_only_selected = False
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(area=area, region=region, active_object=obj, selected_objects=[obj]):
            kw = {} if cutoff_hz is None else {"cutoff_frequency": cutoff_hz}
            assert bpy.ops.graph.butterworth_smooth(**kw) == {"FINISHED"}
    finally:
        area.type = old


def _curve_filter(take_fps: float, which: str):
    """channel_bench's median + Gaussian / Butterworth on (F, n) curve values at ``take_fps``."""
    from scipy.ndimage import gaussian_filter1d, median_filter
    from scipy.signal import butter, filtfilt

    if which == "median":
        n = max(3, int(round(cb.MEDIAN_S * take_fps)) | 1)
        return lambda x: gaussian_filter1d(median_filter(x, size=(n, 1), mode="nearest"), cb.GAUSS_S * take_fps,
                                           axis=0, mode="nearest")
    b, a = butter(2, cb.BUTTER_HZ / (take_fps / 2))
    return lambda x: filtfilt(b, a, x, axis=0, padlen=min(3 * len(a), len(x) - 1))


def clean(obj) -> None:
    bpy = _bpy()
    assert bpy.ops.dposer.clean(lock_selected=False) == {"FINISHED"}


METHODS = ("Clean", "graph.butterworth_smooth", "median + Gaussian", "Butterworth 6 Hz")


def _apply(method: str, obj, fps: float) -> None:
    if method == "Clean":
        clean(obj)
    elif method == "graph.butterworth_smooth":
        graph_butterworth(obj)
    else:
        filter_fcurves(obj, _curve_filter(fps, "median" if method.startswith("median") else "butter"))


def run_take(take: bvh_io.Bvh, seed: int, tmp: Path, methods=METHODS, log=print) -> dict:
    """Metrics of the faulty input and every method on one take: {name: {variant: (all, fault frames)}} and
    Clean's change on the unfaulted take {'unfaulted': (mean, max)} (mm, skeleton scaled to 1.75 m)."""
    scale = bc.HEIGHT_MM / max(bc.rest_extent(take), 1e-9)
    F = take.num_frames
    clean_path = tmp / "clean.bvh"
    clean_path.write_text(bvh_io.dumps(take))
    obj = import_take(clean_path)
    calibrate()
    truth = heads(obj, F) * scale
    out: dict = {}
    t0 = time.perf_counter()
    clean(obj)
    out["Clean time s"] = time.perf_counter() - t0
    d = np.linalg.norm(heads(obj, F) * scale - truth, axis=-1)
    out["unfaulted"] = (float(d.mean()), float(d.max()))
    model = cf.ChannelFaultModel()
    for variant, m in (("jitter", model), ("nojitter", replace(model, jitter_deg=0.0))):
        bad, f = cb._faulty(take, seed, m)
        ff = f.fault_frames
        path = tmp / f"faulty_{variant}.bvh"
        path.write_text(bvh_io.dumps(bad))
        for name in ("input",) + tuple(methods):
            obj = import_take(path)
            calibrate()
            if name != "input":
                _apply(name, obj, take.fps)
            e = np.linalg.norm(heads(obj, F) * scale - truth, axis=-1).mean(1)
            out.setdefault(name, {})[variant] = (float(e.mean()), float(e[ff].mean()))
        log(f"    {variant}: " + ", ".join(f"{n} {out[n][variant][0]:.1f}/{out[n][variant][1]:.1f}"
                                          for n in ("input",) + tuple(methods)))
    return out


def table(rows: list[tuple[str, dict]]) -> list[str]:
    filters = METHODS[1:]
    lines = ["| take | frames, fps | input mm (all / fault) | " + " | ".join(f"{n} (all / fault)" for n in METHODS)
             + " | Clean / better filter (all / fault), target <= 0.8 | fault error left, no jitter: Clean / "
             "Butterworth 6 Hz, target <= 0.4 | unfaulted take changed by Clean, mean / max mm, target <= 1 / 20 |",
             "|---|---|---|" + "---|" * len(METHODS) + "---|---|---|"]
    for label, r in rows:
        j = {n: r[n]["jitter"] for n in ("input",) + METHODS}
        best = [min(j[n][i] for n in filters) for i in (0, 1)]
        left = [r[n]["nojitter"][0] / r["input"]["nojitter"][0] for n in ("Clean", "Butterworth 6 Hz")]
        lines.append(f"| {label} | " + " | ".join(
            [f"{j['input'][0]:.1f} / {j['input'][1]:.1f}"] + [f"{j[n][0]:.1f} / {j[n][1]:.1f}" for n in METHODS]
            + [f"{j['Clean'][0] / best[0]:.2f} / {j['Clean'][1] / best[1]:.2f}", f"{left[0]:.2f} / {left[1]:.2f}",
               f"{r['unfaulted'][0]:.2f} / {r['unfaulted'][1]:.1f}"]) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-source", type=int, default=2, help="takes per held-out source")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per take")
    ap.add_argument("--kind", choices=("heldout", "tuning"), default="heldout",
                    help="held-out takes (Bandai dataset-1, CMU cgspeed 06-09) or tuning takes (Bandai dataset-2, "
                         "CMU 131_03, CMU cgspeed 02-05)")
    ap.add_argument("--checkpoint", default="", help="prior checkpoint ('' = the bundled one)")
    args = ap.parse_args(argv)
    enable_addon(args.checkpoint)
    takes = cb.load_takes(args.kind, per_source=args.per_source, seconds=args.seconds)
    for source in [s for s in takes if s.startswith(("ReActIdle", "AMASS"))]:
        takes.pop(source)  # rigs of the BVH presets only (Bandai, CMU)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, ts in takes.items():
            for i, t in enumerate(ts):
                label = f"{t.source} {t.name}"
                print(f"  {label} ({t.bvh.num_frames} frames, {t.bvh.fps:g} fps)", flush=True)
                r = run_take(t.bvh, i, Path(tmp))
                rows.append((f"{label} | {t.bvh.num_frames}, {t.bvh.fps:g}", r))
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
