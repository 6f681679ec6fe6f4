"""``dposer bench clean`` rows for the channel cleaner (:mod:`dposer.tasks.channel_clean`): BVH takes from several
studios, each resampled to 30, 60 and 120 fps, with the channel fault model (:mod:`dposer.eval.channel_faults`),
against per-channel filters an animator has (median + Gaussian, zero-phase Butterworth) run on the take's Euler
curves. Errors: mean joint position error (mm) by forward kinematics of the take's own hierarchy, scaled to a
1.75 m skeleton (:func:`dposer.formats.bvh_channels.positions_mm`).

Sources: ``tuning`` (what every threshold of the cleaner and the filters' settings were chosen on: Bandai
dataset-2, the AMASS takes on the built-in skeleton, CMU 131_03, the CMU cgspeed subjects of ``CGSPEED_TUNING``) and
``heldout`` (Bandai dataset-1, the CMU cgspeed subjects of ``CGSPEED_HELDOUT``, ReActIdle), never used to choose
anything. The cgspeed archive is split by subject (a performer's takes are all on one side).
"""
from __future__ import annotations

import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..formats import bvh as bvh_io
from ..formats import bvh_channels as bc
from ..tasks.channel_clean import Settings
from . import channel_faults as cf

FPS = (30.0, 60.0, 120.0)
BUTTER_HZ = 6.0
MEDIAN_S = 5 / 30  # median window (5 frames at 30 fps), then a Gaussian
GAUSS_S = 0.033  # Gaussian sigma (s): 1 frame at 30 fps, the SMPL-X bench's choice; tune_gauss() re-checks it
GAUSS_GRID_S = (0.017, 0.025, 0.033, 0.05, 0.067)
CGSPEED = "cmu_cgspeed_subjects_02-09.tar.xz"
CGSPEED_TUNING = ("02", "03", "04", "05")  # subjects (the archive's folders) the cleaner may be tuned on
CGSPEED_HELDOUT = ("06", "07", "08", "09")  # subjects only measured, never tuned on


@dataclass
class Take:
    source: str
    name: str
    bvh: bvh_io.Bvh


def _trim(take: bvh_io.Bvh, first: int, seconds: float) -> bvh_io.Bvh:
    n = min(take.num_frames, first + int(round(seconds * take.fps)))
    return replace(take, motion=take.motion[first:n])


def _tar_takes(path: Path, source: str, every: int, limit: int, seconds: float, first: int = 0,
               folders: tuple = ()) -> list[Take]:
    """Every ``every``-th BVH member of a tar (archive order; only members in one of the ``folders`` when given), at
    most ``limit``, read in one pass."""
    out = []
    with tarfile.open(path, "r|*") as tar:
        k = 0
        for m in tar:
            if not (m.isfile() and m.name.endswith(".bvh")):
                continue
            if folders and Path(m.name).parent.name not in folders:
                continue
            k += 1
            if (k - 1) % every:
                continue
            take = bvh_io.parse(tar.extractfile(m).read().decode("utf-8", "replace"), source=m.name)
            out.append(Take(source, Path(m.name).stem, _trim(take, first, seconds)))
            if len(out) >= limit:
                break
    return out


def _amass_take(path: Path, seconds: float) -> Take:
    """An AMASS npz take (root + 21 body joints) as a BVH take on the built-in skeleton (XYZ Euler channels)."""
    from scipy.spatial.transform import Rotation

    from ..spec import layout, skeleton

    d = np.load(path)
    fps = float(d["mocap_framerate"])
    poses = d["poses"][:, :66].reshape(len(d["poses"]), 22, 3)
    joints = []
    for k in range(22):
        ch = ("Xposition", "Yposition", "Zposition") if k == 0 else ()
        joints.append(bvh_io.Joint(layout.VECTOR_JOINTS[k - 1] if k else "pelvis", layout.PARENTS[k] if k else -1,
                                   tuple(float(x) for x in skeleton.REST_OFFSETS[k]),
                                   ch + ("Xrotation", "Yrotation", "Zrotation")))
    eul = np.unwrap(Rotation.from_rotvec(poses.reshape(-1, 3)).as_euler("XYZ").reshape(len(poses), 22, 3), axis=0)
    motion = np.concatenate([d["trans"], np.degrees(eul).reshape(len(poses), -1)], 1)
    take = bvh_io.Bvh(tuple(joints), 1.0 / fps, motion)
    return Take("AMASS", path.stem, _trim(take, 0, seconds))


def load_takes(kind: str, root=None, per_source: int = 4, seconds: float = 20.0) -> dict[str, list[Take]]:
    """source label -> takes, for ``kind`` 'tuning' or 'heldout' (see the module docstring)."""
    from ..formats import data

    base = data.data_root(root) / "bvh"
    other = base / "other_studios"
    if kind == "tuning":
        amass = data.data_root(root) / "amass"
        return {"Bandai dataset-2 (30 fps)": _tar_takes(base / "bandai_namco_motion_2.tar.xz", "Bandai-2", 97,
                                                        per_source, seconds),
                "AMASS (built-in skeleton, 120 fps)": [_amass_take(amass / f, seconds) for f in
                                                       ("amass_sample_smplh_500f.npz",
                                                        "amass_sample_smplh_601f_fingers.npz")],
                "CMU 131_03 hop (ASF names, 120 fps)": [Take("CMU", "131_03", _trim(
                    bvh_io.read(other / "cmu_131_03_hop.bvh"), 0, seconds))],
                "CMU cgspeed 02-05 (120 fps)": _tar_takes(other / CGSPEED, "cgspeed", 3, per_source, seconds, first=1,
                                                          folders=CGSPEED_TUNING)}
    if kind == "heldout":
        return {"Bandai dataset-1 (30 fps)": _tar_takes(base / "bandai_namco_motion_1.tar.xz", "Bandai-1", 29,
                                                        per_source, seconds),
                "CMU cgspeed 06-09 (120 fps)": _tar_takes(other / CGSPEED, "cgspeed", 11, per_source, seconds, first=1,
                                                          folders=CGSPEED_HELDOUT),  # frame 1 is a T-pose
                "ReActIdle (24 fps)": _tar_takes(other / "reactidle_idle_24fps.tar.xz", "ReActIdle", 5, per_source,
                                                 seconds)}
    raise ValueError(f"kind must be 'tuning' or 'heldout', got {kind!r}")


def _euler_filter(take: bvh_io.Bvh, fn) -> bvh_io.Bvh:
    """``fn(curves (F, n)) -> curves`` on every rotation channel of the take (per F-curve, as Blender filters),
    after unwrapping each curve (no 360 deg jumps: what Blender's Euler filter does first)."""
    cols = bc.rotation_columns(take).ravel()
    motion = take.motion.copy()
    motion[:, cols] = fn(np.unwrap(motion[:, cols], period=360.0, axis=0))
    return replace(take, motion=motion)


def median_gauss(take: bvh_io.Bvh, sigma_s: float = GAUSS_S) -> bvh_io.Bvh:
    from scipy.ndimage import gaussian_filter1d, median_filter

    n = max(3, int(round(MEDIAN_S * take.fps)) | 1)
    return _euler_filter(take, lambda x: gaussian_filter1d(median_filter(x, size=(n, 1), mode="nearest"),
                                                           sigma_s * take.fps, axis=0, mode="nearest"))


def butterworth(take: bvh_io.Bvh, cutoff_hz: float = BUTTER_HZ, order: int = 2) -> bvh_io.Bvh:
    from scipy.signal import butter, filtfilt

    b, a = butter(order, cutoff_hz / (take.fps / 2))
    return _euler_filter(take, lambda x: filtfilt(b, a, x, axis=0, padlen=min(3 * len(a), len(x) - 1)))


def ours(take: bvh_io.Bvh, settings: Settings = Settings()) -> bvh_io.Bvh:
    return bc.clean_take(take, settings)[0]


METHODS = {"ours (channel cleaner)": ours,
           f"median + Gaussian ({MEDIAN_S * 1000:.0f} ms, sigma {GAUSS_S * 1000:.0f} ms)": median_gauss,
           f"Butterworth ({BUTTER_HZ:g} Hz, order 2, zero-phase)": butterworth}


def _faulty(take: bvh_io.Bvh, seed: int, model: cf.ChannelFaultModel):
    q = bc.rotations(take)
    axes, chains = cf.skeleton_axes(take)
    f = cf.inject(q, take.fps, axes, chains, seed=seed, model=model)
    return bc.with_rotations(take, f.q, np.ones(q.shape[:2], bool)), f


def _err(pos: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean joint error (mm)."""
    return np.linalg.norm(pos - truth, axis=-1).mean(1)


def run_case(take: bvh_io.Bvh, seed: int, methods: dict = METHODS, model=cf.ChannelFaultModel()) -> dict:
    """Metrics of every method (and the faulty input) on one take at its frame rate."""
    truth = bc.positions_mm(take)
    out = {}
    for variant, m in (("jitter", model), ("nojitter", replace(model, jitter_deg=0.0))):
        bad, f = _faulty(take, seed, m)
        ff = f.fault_frames
        e_in = _err(bc.positions_mm(bad), truth)
        out.setdefault("input", {})[variant] = (e_in.mean(), e_in[ff].mean())
        for name, fn in methods.items():
            t0 = time.perf_counter()
            cleaned = fn(bad)
            secs = time.perf_counter() - t0
            e = _err(bc.positions_mm(cleaned), truth)
            out.setdefault(name, {})[variant] = (e.mean(), e[ff].mean())
            out[name].setdefault("time", secs)
    for name, fn in methods.items():
        e = np.linalg.norm(bc.positions_mm(fn(take)) - truth, axis=-1)
        out[name]["unfaulted"] = (e.mean(), e.max())
    return out


def run(takes: dict[str, list[Take]], fps_list=FPS, methods: dict = METHODS, log=None) -> dict:
    """(source, fps) -> list of per-take :func:`run_case` dicts."""
    rows = {}
    for source, ts in takes.items():
        for fps in fps_list:
            for i, t in enumerate(ts):
                take = t.bvh if abs(t.bvh.fps - fps) < 0.01 else bc.resample(t.bvh, fps)
                try:
                    r = run_case(take, seed=i, methods=methods)
                except cf.Unfit as e:
                    if log:
                        log(f"  skip {t.name} at {fps:g} fps: {e}")
                    continue
                rows.setdefault((source, fps), []).append(r)
                if log:
                    log(f"  {source} {t.name} {fps:g} fps: " + ", ".join(
                        f"{n.split(' (')[0]} {r[n]['jitter'][0]:.1f}/{r[n]['jitter'][1]:.1f}" for n in r))
    return rows


def _mean(rs: list, name: str, key: str, i: int) -> float:
    return float(np.mean([r[name][key][i] for r in rs]))


def table(rows: dict, methods: dict = METHODS) -> list[str]:
    names = list(methods)
    ours_name, filters = names[0], names[1:]
    lines = ["| source | fps | takes | input mm (all / fault frames) | " + " | ".join(
        f"{n.split(' (')[0]} mm (all / fault)" for n in names) + " | ours / better filter (all / fault) | fault "
        "error left, no jitter: ours / Butterworth | unfaulted take changed by ours, mean / max mm | ours s/take |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|---|---|"]
    for (source, fps), rs in rows.items():
        cells = [f"{_mean(rs, 'input', 'jitter', 0):.1f} / {_mean(rs, 'input', 'jitter', 1):.1f}"]
        cells += [f"{_mean(rs, n, 'jitter', 0):.1f} / {_mean(rs, n, 'jitter', 1):.1f}" for n in names]
        best_all = min(_mean(rs, n, "jitter", 0) for n in filters)
        best_ff = min(_mean(rs, n, "jitter", 1) for n in filters)
        left = [_mean(rs, n, "nojitter", 0) / _mean(rs, "input", "nojitter", 0) for n in (ours_name, filters[-1])]
        un = (_mean(rs, ours_name, "unfaulted", 0), max(r[ours_name]["unfaulted"][1] for r in rs))
        cells += [f"{_mean(rs, ours_name, 'jitter', 0) / best_all:.2f} / {_mean(rs, ours_name, 'jitter', 1) / best_ff:.2f}",
                  f"{left[0]:.2f} / {left[1]:.2f}", f"{un[0]:.2f} / {un[1]:.1f}",
                  f"{np.mean([r[ours_name]['time'] for r in rs]):.2f}"]
        lines.append(f"| {source} | {fps:g} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines


def tune_gauss(takes: dict[str, list[Take]]) -> dict:
    """Mean joint error (mm, jittered faults) of median + Gaussian per sigma (s) over the takes at every rate."""
    methods = {f"{s:g}": (lambda t, s=s: median_gauss(t, s)) for s in GAUSS_GRID_S}
    rows = run(takes, methods=methods)
    return {s: float(np.mean([r[s]["jitter"][0] for rs in rows.values() for r in rs])) for s in methods}


def bench(root=None, kind: str = "heldout", per_source: int = 4, seconds: float = 20.0, log=None) -> str:
    """Markdown table of the channel cleaner against the filters on ``kind`` takes."""
    rows = run(load_takes(kind, root, per_source, seconds), log=log)
    m = cf.ChannelFaultModel()
    head = (f"Channel fault model (`dposer.eval.channel_faults`): {m.jitter_deg:g} deg jitter per axis on every moving "
            f"bone; per second {m.spikes_per_s:g} one-frame spikes ({m.spike_deg[0]:g}-{m.spike_deg[1]:g} deg, a "
            f"third twists about the bone's axis), {m.pops_per_s:g} pops ({m.pop_s[0]:g}-{m.pop_s[1]:g} s, "
            f"{m.pop_deg[0]:g}-{m.pop_deg[1]:g} deg), {m.holds_per_s:g} held limbs ({m.hold_s[0]:g}-{m.hold_s[1]:g} "
            f"s); at least one of each per take; seed = the take's index. {kind} takes, at most {per_source} per "
            f"source, at most {seconds:g} s each; mean joint error on the take's own skeleton scaled to 1.75 m.")
    return "\n".join([head, ""] + table(rows))


def speed_line(root=None, frames: int = 1000) -> str:
    """Seconds to clean the first ``frames`` frames of CMU 131_03 (31 joints, 120 fps), with jitter and faults."""
    from ..formats import data

    take = bvh_io.read(data.data_root(root) / "bvh" / "other_studios" / "cmu_131_03_hop.bvh")
    take = replace(take, motion=take.motion[:frames])
    bad, _ = _faulty(take, 0, cf.ChannelFaultModel())
    t0 = time.perf_counter()
    ours(bad)
    secs = time.perf_counter() - t0
    return (f"Speed: cleaning {take.num_frames} frames of CMU 131_03 ({len(bc.rotation_bones(take))} rotation bones, "
            f"jittered and faulty) takes {secs:.2f} s on this CPU (one thread).")
