"""Converted BVH corpora, cached outside the repository (``dposer corpus``).

    dposer corpus                      # both Bandai Namco sets -> ~/.cache/dposer/bandai{1,2}.npz
    dposer corpus --dataset 2 --out ~/.cache/dposer/bandai2.npz

Each take of a shared Bandai Namco archive is read straight from the ``.tar.xz`` (nothing is extracted) and
converted by :func:`dposer.formats.convert.convert_bvh`, in sorted member order, so the cache is reproducible. The cache
holds every frame: ``body_pose`` (N, 63) and ``global_orient`` (N, 3) float32, ``clip`` (N,) the take index,
``names`` / ``frames`` / ``fit_error_deg_mean`` / ``fit_error_deg_max`` per take, and the archive's name.

Dataset 2 (2,902 takes) is a training source (``bvh_body`` in the training mix); dataset 1 (174 takes) is held out
for benchmarks and never trained on. The data is CC BY-NC 4.0 (Bandai Namco Research Inc.): the cache stays on the
machine that made it and is never committed.
"""
from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import numpy as np

from ..formats import data


def cache_dir() -> Path:
    return Path(os.environ.get("DPOSER_CACHE", Path.home() / ".cache" / "dposer"))


def default_path(dataset: int) -> Path:
    return cache_dir() / f"bandai{dataset}.npz"


def archive(dataset: int, root=None) -> Path:
    p = data.data_root(root) / "bvh" / f"bandai_namco_motion_{dataset}.tar.xz"
    if not p.is_file():
        raise FileNotFoundError(f"Bandai Namco archive not found: {p}")
    return p


def build(dataset: int, out: str | os.PathLike | None = None, root=None, limit: int | None = None,
          log=print) -> Path:
    """Convert every take of Bandai Namco dataset 1 or 2 into one cache file (atomic write). Returns its path."""
    from ..formats.convert import convert_bvh

    src = archive(dataset, root)
    out = Path(out) if out else default_path(dataset)
    repo = Path(__file__).resolve().parents[3]
    if repo in out.resolve().parents:
        raise ValueError(f"{out} is inside the repository: converted data must stay outside it (licence)")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results = {}
    with tarfile.open(src, "r|xz") as tar:  # one pass in archive order (seeking back in an .xz re-decompresses)
        for m in tar:
            if not (m.isfile() and m.name.lower().endswith(".bvh")):
                continue
            if limit and len(results) >= limit:
                break
            results[Path(m.name).name] = convert_bvh(tar.extractfile(m).read().decode("utf-8", errors="replace"))
            if len(results) % 200 == 0:
                log(f"{src.name}: {len(results)} takes, {time.time() - t0:.0f} s")
    names = sorted(results)  # the cache's order does not depend on the archive's
    rs = [results[n] for n in names]
    frames = [len(r["body_pose"]) for r in rs]
    err_mean = [r["fit_error_deg_mean"] for r in rs]
    err_max = [r["fit_error_deg_max"] for r in rs]
    bodies = [r["body_pose"] for r in rs]
    orients = [r["global_orient"] for r in rs]
    clips = [np.full(n, i, np.int32) for i, n in enumerate(frames)]
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, body_pose=np.concatenate(bodies), global_orient=np.concatenate(orients),
             clip=np.concatenate(clips), names=np.array(names), frames=np.array(frames),
             fit_error_deg_mean=np.array(err_mean), fit_error_deg_max=np.array(err_max),
             archive=np.array(src.name))
    os.replace(tmp, out)
    em = np.average(err_mean, weights=frames)
    log(f"wrote {out}: {len(names)} takes, {sum(frames)} frames, fit error {em:.2f} deg mean (frame-weighted), "
        f"{max(err_max):.1f} max, {time.time() - t0:.0f} s")
    return out


def load_body(path: str | os.PathLike, stride: int = 1) -> np.ndarray:
    """Body poses (N, 63) of a cache file, every ``stride``-th frame of each take."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"converted corpus not found: {path} (make it with `dposer corpus`)")
    with np.load(path) as d:
        body, clip = d["body_pose"], d["clip"]
    starts = np.r_[0, np.flatnonzero(np.diff(clip)) + 1]
    frame_in_clip = np.arange(len(clip)) - np.repeat(starts, np.diff(np.r_[starts, len(clip)]))
    return body[frame_in_clip % stride == 0].astype(np.float32)
