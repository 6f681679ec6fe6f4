"""The motion corpus: body takes resampled by time to one rate, cached outside the repository.

    dposer motion-corpus            # -> ~/.cache/dposer/motion/corpus.npz (needs `dposer corpus --dataset 2 1`)

A take is (F, 22, 3) axis-angle: the root orientation then the 21 body joints (SMPL-X order), at
:data:`RATE` frames per second. Sources (split = "train", "val" or "test"):

- Bandai Namco dataset 2, converted (the ``dposer corpus`` cache, already 30 fps): train, except every 20th take
  (sorted by name) for validation;
- the AMASS takes ``amass_sample_smplh_601f_fingers.npz`` (120 fps) and the HumanEva gestures clip (30 fps): train;
- held out, never trained on: Bandai Namco dataset 1 (174 takes), ``amass_sample_smplh_500f.npz``, the other-studio
  BVH takes (CMU 131_03 hop, the cgspeed CMU takes in :data:`HELD_OUT_CGSPEED`) - test;
- the other cgspeed CMU takes and the ReActIdle idle takes: train, once :mod:`dposer.convert` reads them
  (a take it cannot convert is skipped and named in the log).

Resampling by time: :mod:`.take`.
"""
from __future__ import annotations

import tarfile
import time
from pathlib import Path

import numpy as np

from ..formats import data
from ..spec import layout
from ..train import corpus as bandai
from .take import NJ, RATE, resample, resample_linear, stack  # noqa: F401 (the corpus' API too)

VAL_EVERY = 20  # every 20th Bandai dataset-2 take (sorted by name) is validation
# cgspeed CMU takes never trained on (jump, punch, swordplay, basketball, run): other studios' test takes
HELD_OUT_CGSPEED = ("02_04", "02_05", "02_07", "06_01", "09_01")


def cache_path() -> Path:
    return bandai.cache_dir() / "motion" / "corpus.npz"


def _bandai_takes(dataset: int, log):
    path = bandai.default_path(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: convert it first with `dposer corpus --dataset {dataset}`")
    with np.load(path) as d:
        body, orient, clip, names = d["body_pose"], d["global_orient"], d["clip"], d["names"]
    for i, name in enumerate(names):
        rows = clip == i
        yield f"bandai{dataset}/{name}", stack(orient[rows], body[rows])


def _bvh_takes(root: Path, log):
    """(name, (F, 22, 3) at RATE, split) of the other-studio BVH takes that convert."""
    from ..formats.convert import convert_bvh

    folder = root / "bvh" / "other_studios"
    singles = [("cmu_131_03_hop.bvh", "test")]
    for fname, split in singles:
        p = folder / fname
        if p.is_file():
            yield from _converted(fname, p, split, log, convert_bvh)
    for arch, skip_first in (("cmu_cgspeed_subjects_02-09.tar.xz", 1), ("reactidle_idle_24fps.tar.xz", 0)):
        p = folder / arch
        if not p.is_file():
            continue
        with tarfile.open(p, "r|xz") as tar:
            members = []
            for m in tar:
                if m.isfile() and m.name.lower().endswith(".bvh"):
                    members.append((m.name, tar.extractfile(m).read().decode("utf-8", errors="replace")))
        for name, text in sorted(members):
            stem = Path(name).stem
            split = "test" if stem in HELD_OUT_CGSPEED else "train"
            yield from _converted(f"{arch.split('.')[0]}/{stem}", text, split, log, convert_bvh, skip_first)


def _converted(name, source, split, log, convert_bvh, skip_first: int = 0):
    try:
        r = convert_bvh(source)
    except Exception as e:  # noqa: BLE001 - a take the converter cannot read yet is skipped, named in the log
        log(f"skipped {name}: {type(e).__name__}: {str(e)[:120]}")
        return
    rot = stack(r["global_orient"], r["body_pose"])[skip_first:]
    yield name, resample(rot, float(r["mocap_framerate"])), split


def build(root=None, out=None, log=print) -> Path:
    """Collect every source into one cache (atomic write); returns its path."""
    from ..formats.npz import save_npz

    t0 = time.time()
    root = data.data_root(root)
    takes = []  # (name, split, (F, 22, 3))
    for ds, default_split in ((2, "train"), (1, "test")):
        for i, (name, rot) in enumerate(_bandai_takes(ds, log)):
            split = "val" if ds == 2 and i % VAL_EVERY == VAL_EVERY - 1 else default_split
            takes.append((name, split, rot))
    amass = root / "amass"
    for fname, split in (("amass_sample_smplh_601f_fingers.npz", "train"), ("amass_sample_smplh_500f.npz", "test")):
        ps = data.load_pose_file(amass / fname)
        rot = stack(ps.extras["global_orient"], ps.vectors[:, layout.KEY_SLICES["body_pose"]])
        takes.append((f"amass/{Path(fname).stem}", split, resample(rot, ps.extras.get("framerate", 120.0))))
    g = data.load_gestures_clip(root)
    takes.append(("amass/gestures_clip_240f", "train", stack(g.extras["global_orient"], g.vectors[:, layout.KEY_SLICES["body_pose"]])))
    for name, rot, split in _bvh_takes(root, log):
        takes.append((name, split, rot))
    out = Path(out) if out else cache_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = np.array([len(t[2]) for t in takes])
    save_npz(out, {"rotvec": np.concatenate([t[2] for t in takes]).astype(np.float32),
                   "frames": frames, "names": np.array([t[0] for t in takes]),
                   "split": np.array([t[1] for t in takes]), "rate": np.float64(RATE)})
    for s in ("train", "val", "test"):
        sel = np.array([t[1] == s for t in takes])
        log(f"{s}: {sel.sum()} takes, {frames[sel].sum()} frames ({frames[sel].sum() / RATE / 60:.1f} min)")
    log(f"wrote {out} in {time.time() - t0:.0f} s")
    return out


def load(split: str, path=None) -> list[tuple[str, np.ndarray]]:
    """[(name, (F, 22, 3) float32 axis-angle at RATE)] of one split of the cache."""
    path = Path(path) if path else cache_path()
    if not path.is_file():
        raise FileNotFoundError(f"motion corpus not found: {path} (make it with `dposer motion-corpus`)")
    with np.load(path, allow_pickle=False) as d:
        rot, frames, names, splits = d["rotvec"], d["frames"], d["names"], d["split"]
    starts = np.r_[0, np.cumsum(frames)[:-1]]
    return [(str(n), rot[s:s + f]) for n, s, f, sp in zip(names, starts, frames, splits) if sp == split]
