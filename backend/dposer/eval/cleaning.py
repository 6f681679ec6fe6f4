"""``dposer bench clean``: mocap cleaning under the fault model (:mod:`dposer.tasks.faults`) on held-out Bandai dataset-1
takes and the tuning takes, against a median + Gaussian filter and a zero-phase Butterworth low-pass."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from . import metrics
from ..core import kinematics as skeleton
from ..core.prior import Prior
from ..core.torch_rotations import geodesic_degrees
from ..tasks.pose_tasks import clean
from dataclasses import dataclass

from .cases import Context

_BODY = layout.PART_SLICES["body"]


# Cleaning: the fault model (dposer.tasks.faults) on real takes; ours against per-channel filters

@dataclass
class Take:
    name: str
    vectors: np.ndarray  # (F, 256), body only (the rest zero)
    orient: np.ndarray  # (F, 3) root orientation
    trans: np.ndarray  # (F, 3) metres
    fps: float


def _take(name, ps: data.PoseSet, fps: float, step: int = 1, trans=None) -> Take:
    v = ps.vectors[::step].copy()
    v[:, _BODY.stop:] = 0
    orient = ps.extras.get("global_orient", np.zeros((len(ps), 3), np.float32))[::step]
    trans = np.zeros((len(v), 3), np.float32) if trans is None else np.asarray(trans, np.float32)[::step]
    return Take(name, v, np.asarray(orient, np.float32), trans, fps / step)


def tuning_takes(root=None) -> list[Take]:
    """The takes every threshold of the cleaner and every filter setting was chosen on: the gestures clip and the
    two AMASS takes resampled to 30 fps (every 4th frame; the Bandai clips' rate)."""
    base = data.data_root(root)
    takes = [_take("gestures (HumanEva)", data.load_gestures_clip(root), 30.0)]
    for f, label in (("amass_sample_smplh_500f.npz", "AMASS take"), ("amass_sample_smplh_601f_fingers.npz", "AMASS fingers take")):
        path = base / "amass" / f
        takes.append(_take(label, data.load_pose_file(path), 120.0, step=4, trans=np.load(path)["trans"]))
    return takes


def bandai_takes(root=None, limit: int | None = None, every: int = 1, dataset: int = 1) -> list[Take]:
    """Bandai Namco dataset-1 clips (held out: never used to train or tune; ``dataset=2``: the training set's clips,
    for tuning) as SMPL-X body poses on the built-in skeleton, converted by :func:`dposer.formats.convert.convert_bvh` (the
    one BVH path; ``dposer corpus`` caches the same conversion but without the root translation that foot skating
    needs). Clips in sorted name order, every ``every``-th of them, at most ``limit``; the archive is read in one
    pass (nothing is extracted)."""
    import tarfile

    from ..formats.convert import convert_bvh
    from ..train.corpus import archive

    texts = {}
    with tarfile.open(archive(dataset, root), "r|xz") as tar:  # one pass (seeking back in an .xz re-decompresses)
        for m in tar:
            if m.isfile() and m.name.endswith(".bvh"):
                texts[Path(m.name).stem.replace(f"dataset-{dataset}_", "")] = tar.extractfile(m).read().decode()
    out = []
    for name in sorted(texts)[::every][:limit]:
        r = convert_bvh(texts[name])
        vec = np.zeros((len(r["body_pose"]), layout.DIM), np.float32)
        vec[:, _BODY] = r["body_pose"]
        out.append(Take(name, vec, r["global_orient"], r["trans"], float(r["mocap_framerate"])))
    return out


def median_gauss(body: np.ndarray, sigma: float) -> np.ndarray:
    """Per-channel median of 5 then Gaussian (sigma frames): the animator's usual filter."""
    from scipy.ndimage import gaussian_filter1d, median_filter

    return gaussian_filter1d(median_filter(body, size=(5, 1), mode="nearest"), sigma, axis=0, mode="nearest")


def butterworth(body: np.ndarray, fps: float, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth low-pass per channel (scipy butter + filtfilt)."""
    from scipy.signal import butter, filtfilt

    b, a = butter(order, cutoff_hz / (fps / 2))
    return filtfilt(b, a, body, axis=0, padlen=min(3 * max(len(a), len(b)), len(body) - 1))


FILTER_SIGMAS = (0.75, 1.0, 1.5, 2.0)
FILTER_CUTOFFS = (3.0, 4.0, 6.0, 8.0)
FOOT = [layout.JOINT_INDEX[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


def _world(v: np.ndarray, take: Take) -> torch.Tensor:
    return skeleton.joints_from_vector(torch.from_numpy(v).float(), torch.from_numpy(take.orient).float()) + \
        torch.from_numpy(take.trans).float()[:, None]


def foot_skate(v: np.ndarray, truth: np.ndarray, take: Take) -> float:
    """Mean horizontal speed (cm/s) of the ankles and toes on the frames where the truth has them planted (within
    5 cm of their lowest and slower than 20 cm/s)."""
    wt, w = _world(truth, take)[:, FOOT], _world(v, take)[:, FOOT]
    up = (_world(truth, take)[:, 15] - _world(truth, take)[:, 0]).mean(0)
    up = up / up.norm()
    h = wt @ up
    flat = lambda x: x - (x @ up)[..., None] * up  # noqa: E731
    vt = flat(wt[1:] - wt[:-1]).norm(dim=-1) * take.fps
    contact = (h[1:] < h.min(0).values + 0.05) & (vt < 0.2)
    if not contact.any():
        return float("nan")
    speed = flat(w[1:] - w[:-1]).norm(dim=-1) * take.fps
    return 100 * speed[contact].mean().item()


def clean_metrics(v: np.ndarray, truth: np.ndarray, take: Take, fault_frames: np.ndarray | None) -> dict:
    j, jt = metrics.part_joints(v, "body"), metrics.part_joints(truth, "body")
    err = 1000 * (j - jt).norm(dim=-1).mean(1).numpy()
    acc = 1000 * (j[2:] - 2 * j[1:-1] + j[:-2]).norm(dim=-1).mean().item()
    out = {"err": float(err.mean()), "rot": _rot_deg(v, truth), "jitter": acc, "skate": foot_skate(v, truth, take),
           "max": float(1000 * (j - jt).norm(dim=-1).max())}
    if fault_frames is not None:
        out["err_fault"] = float(err[fault_frames].mean()) if fault_frames.any() else float("nan")
    return out


def _rot_deg(v: np.ndarray, truth: np.ndarray) -> float:
    """Mean geodesic angle (degrees) between the body joint rotations: sees the twists joint positions cannot."""
    p = torch.from_numpy(v[:, _BODY].reshape(len(v), 21, 3)).double()
    t = torch.from_numpy(truth[:, _BODY].reshape(len(v), 21, 3)).double()
    return float(geodesic_degrees(p, t).mean())


def clean_methods(prior: Prior, sigma: float, cutoff: float, steps: int | None = None) -> dict:
    """name -> fn(vectors (F, 256), take) -> cleaned vectors."""
    from ..tasks.pose_tasks import CLEAN

    cfg = CLEAN.with_(steps=steps) if steps else CLEAN

    def ours(v, take, **kw):
        res = clean(prior, {"body_pose": v[:, _BODY], "global_orient": take.orient}, cfg=cfg, **kw)
        out = v.copy()
        out[:, _BODY] = res["body_pose"]
        return out

    def filt(fn):
        def run(v, take):
            out = v.copy()
            out[:, _BODY] = fn(v[:, _BODY], take)
            return out
        return run

    return {"**ours** (clean, strength 0.5)": ours,
            "ours, smoothing only (no fault detection)": lambda v, t: _smooth_only(v),
            f"median-5 + Gaussian (sigma {sigma:g} f)": filt(lambda b, t: median_gauss(b, sigma)),
            f"Butterworth low-pass (order 2, {cutoff:g} Hz, zero-phase)": filt(lambda b, t: butterworth(b, t.fps, cutoff))}


def _smooth_only(v: np.ndarray) -> np.ndarray:
    from ..tasks import cleaning

    aa = v[:, _BODY].reshape(len(v), 21, 3).astype(np.float64)
    det = cleaning.Detection([], np.zeros(aa.shape[:2], bool))
    out = v.copy()
    out[:, _BODY] = cleaning.repair(aa, det, 0.5)[0].reshape(len(v), 63)
    return out


def _tune_filters(takes: list[Take], model) -> tuple[float, float, str]:
    """The filters' one knob each, chosen on the tuning takes (mean joint error over the faulty takes)."""
    from ..tasks import faults

    cases = []
    for i, t in enumerate(takes):
        f = faults.inject(t.vectors[:, _BODY], seed=i, model=model)
        v = t.vectors.copy()
        v[:, _BODY] = f.body_pose
        cases.append((t, v))

    def score(fn):
        return float(np.mean([clean_metrics(fn(v, t), t.vectors, t, None)["err"] for t, v in cases]))

    def apply(fn):
        return lambda v, t: np.concatenate([fn(v[:, _BODY], t), v[:, _BODY.stop:]], 1)

    sig = {s: score(apply(lambda b, t, s=s: median_gauss(b, s))) for s in FILTER_SIGMAS}
    cut = {c: score(apply(lambda b, t, c=c: butterworth(b, t.fps, c))) for c in FILTER_CUTOFFS}
    s, c = min(sig, key=sig.get), min(cut, key=cut.get)
    note = ("Filter settings chosen on the tuning takes (mean joint error mm): median-5 + Gaussian sigma " +
            ", ".join(f"{k:g}: {e:.1f}" for k, e in sig.items()) + "; Butterworth cutoff " +
            ", ".join(f"{k:g} Hz: {e:.1f}" for k, e in cut.items()) + ".")
    return s, c, note


def run_clean_bench(prior: Prior, takes: list[Take], methods: dict, model=None, seed0: int = 0) -> dict:
    """Per method: list of per-take metric dicts (faulty input) plus 'clean_mean'/'clean_max' (unfaulted input)."""
    from ..tasks import faults

    rows = {"input (faulty)": []}
    for i, t in enumerate(takes):
        f = faults.inject(t.vectors[:, _BODY], seed=seed0 + i, model=model)
        v = t.vectors.copy()
        v[:, _BODY] = f.body_pose
        ff = f.fault_frames
        rows["input (faulty)"].append(clean_metrics(v, t.vectors, t, ff) | {"time": 0.0, "clean_mean": 0.0,
                                                                             "clean_max": 0.0})
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(v, t)
            secs = time.perf_counter() - t0
            m = clean_metrics(out, t.vectors, t, ff)
            untouched = clean_metrics(fn(t.vectors, t), t.vectors, t, None)
            m |= {"time": secs, "clean_mean": untouched["err"], "clean_max": untouched["max"]}
            rows.setdefault(name, []).append(m)
    return rows


def _table(rows: dict, ref: dict | None = None) -> list[str]:
    lines = ["| method | joint error mm | on fault frames mm | rotation error deg | unfaulted take changed: mean / "
             "max mm | jitter mm/f² | foot skating cm/s | time s / take |", "|---|---|---|---|---|---|---|---|"]
    for name, ms in rows.items():
        avg = {k: float(np.nanmean([m[k] for m in ms])) for k in ms[0]}
        cm = "—" if name.startswith("input") else f"{avg['clean_mean']:.2f} / {np.nanmax([m['clean_max'] for m in ms]):.1f}"
        lines.append(f"| {name} | {avg['err']:.2f} | {avg['err_fault']:.2f} | {avg['rot']:.2f} | {cm} | "
                     f"{avg['jitter']:.2f} | {avg['skate']:.1f} | {avg['time']:.2f} |")
    return lines


def bench_clean(ctx: Context, strength: float = 0.5) -> str:
    from ..tasks import faults

    sz = ctx.sizes
    model = faults.FaultModel() if not ctx.quick else faults.FaultModel(gap_frames=(8, 10))
    tune = tuning_takes(ctx.root)
    if sz.clean_frames:
        tune = [Take(t.name, t.vectors[:sz.clean_frames], t.orient[:sz.clean_frames], t.trans[:sz.clean_frames], t.fps)
                for t in tune]
    sigma, cutoff, note = _tune_filters(tune, model)
    methods = clean_methods(ctx.prior, sigma, cutoff, sz.steps)
    out = [f"Fault model (`dposer.tasks.faults`, defaults): {model.jitter_deg:g} deg jitter per axis on every joint, and "
           f"per 100 frames {model.spikes_per_100:g} one-frame spikes ({model.spike_deg[0]:g}-{model.spike_deg[1]:g} "
           f"deg), {model.pops_per_100:g} pops ({model.pop_frames[0]}-{model.pop_frames[1]} frames, "
           f"{model.pop_deg[0]:g}-{model.pop_deg[1]:g} deg), {model.gaps_per_100:g} held-limb gaps "
           f"({model.gap_frames[0]}-{model.gap_frames[1]} frames) and {model.limits_per_100:g} knee/elbow limit "
           f"breaks ({model.limit_frames[0]}-{model.limit_frames[1]} frames, {model.limit_deg[0]:g}-"
           f"{model.limit_deg[1]:g} deg backwards); seed = the take's index. Joint errors on the built-in skeleton "
           "(about 1.75 m), body joints, root at rest; rotation error over the 21 body joints; foot skating in "
           "world space (root orientation and translation of the take) on the truth's contact frames.", "",
           note, ""]
    bandai = bandai_takes(ctx.root, limit=sz.clean_takes, every=sz.clean_every)
    if sz.clean_frames:
        bandai = [Take(t.name, t.vectors[:sz.clean_frames * 2], t.orient[:sz.clean_frames * 2],
                       t.trans[:sz.clean_frames * 2], t.fps) for t in bandai]
    short = [t.name for t in bandai if len(t.vectors) < model.min_frames]
    bandai = [t for t in bandai if len(t.vectors) >= model.min_frames]
    every = f"every {sz.clean_every}th clip by name, " if sz.clean_every > 1 else ""
    for label, takes in ((f"**Bandai Namco dataset-1** (held out), {every}{len(bandai)} clips, "
                          f"{sum(len(t.vectors) for t in bandai)} frames at 30 fps; mean over clips" +
                          (f" (left out, shorter than the fault model's {model.min_frames} frames: "
                           f"{', '.join(short)})" if short else ""), bandai),
                         ("Tuning takes (gestures, AMASS x2 at 30 fps); mean over takes", tune)):
        rows = run_clean_bench(ctx.prior, takes, methods, model)
        out += [label, ""] + _table(rows) + [""]
        if takes is bandai:
            ours = rows[next(iter(methods))]
            best = min((n for n in methods if n.startswith(("median", "Butter"))),
                       key=lambda n: np.mean([m["err"] for m in rows[n]]))
            r_all = np.mean([m["err"] for m in ours]) / np.mean([m["err"] for m in rows[best]])
            r_ff = np.nanmean([m["err_fault"] for m in ours]) / np.nanmean([m["err_fault"] for m in rows[best]])
            sk = np.nanmean([m["skate"] for m in ours]) / np.nanmean([m["skate"] for m in rows["input (faulty)"]])
            out += [f"Ours / the better filter ({best.split(' (')[0]}): {r_all:.2f} over all frames, {r_ff:.2f} on "
                    f"fault frames; foot skating ours / input {sk:.2f}.", ""]
    from . import channel_bench

    per, secs = (1, 8.0) if ctx.quick else (4, 20.0)
    for kind in ("heldout", "tuning"):
        out += [f"**BVH takes in their own channels ({kind})**: `dposer batch clean` on BVH input", "",
                channel_bench.bench(ctx.root, kind, per, secs), ""]
    out += [channel_bench.speed_line(ctx.root), ""]
    return "\n".join(out).rstrip()
