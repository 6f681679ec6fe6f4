"""``dposer bench batch``: throughput of ``dposer batch clean`` on real BVH takes, local processes against Ray.

Takes: the first N takes (``--n``, default 100) of Bandai Namco dataset 1 in archive order (held out from training;
30 fps, ~180 frames each), written as .bvh files to a temporary folder outside the repository. Each run is the
studio path end to end: BVH -> SMPL-X (convert) -> clean (the task's default solver) -> BVH on the take's own
skeleton + the SMPL-X npz, with the report. Runs: local engine with 1 and with 2 worker processes, and Ray on a
local cluster (started first and timed apart, then 2 tasks at a time, one CPU each); every take runs on one torch
thread, so the runs differ only in how many takes run at once and who runs them. Wall times include starting the
worker processes and loading the prior once in each (the bundled default checkpoint). The machine's load is printed
with the table: the numbers are only comparable within one run.
"""
from __future__ import annotations

import os
import tarfile
import tempfile
import time
from pathlib import Path

from ..serve import batch
from ..train import corpus

TAKES = 100  # takes by default; `dposer bench batch --n N` runs N (quick: 2)


def n_takes(ctx) -> int:
    """2 in the quick run, else ``--n`` when given (it sets ``n_test`` away from its default), else TAKES."""
    if ctx.quick:
        return 2
    return TAKES if ctx.sizes.n_test == type(ctx.sizes)().n_test else ctx.sizes.n_test


def extract_takes(n: int, folder: Path, root=None) -> int:
    """Write the first ``n`` .bvh takes of Bandai Namco dataset 1 into ``folder``; returns how many."""
    count = 0
    with tarfile.open(corpus.archive(1, root), "r|xz") as tar:
        for m in tar:
            if count >= n:
                break
            if m.isfile() and m.name.lower().endswith(".bvh"):
                (folder / Path(m.name).name).write_bytes(tar.extractfile(m).read())
                count += 1
    return count


def _row(label: str, wall: float, report: dict, extra: str = "") -> str:
    s = report["summary"]
    frames = s["frames_done"]
    return (f"| {label} | {s['done']} / {s['takes']} | {wall:.1f} s{extra} | {s['done'] / wall * 3600:,.0f} | "
            f"{frames / wall:.1f} |")


def bench_batch(ctx) -> str:
    quick = ctx.quick
    n = n_takes(ctx)
    steps = {"steps": ctx.sizes.steps} if quick else {}
    cores = os.cpu_count() or 1
    # one torch thread per take everywhere: the runs differ only in how many takes run at once and who runs them
    runs = [("local, 1 worker", dict(workers=1, threads=1))] if quick else \
        [("local, 1 worker", dict(workers=1, threads=1)), ("local, 2 workers", dict(workers=2, threads=1)),
         ("ray", dict(workers=2, threads=1))]
    rows, walls = [], {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="dposer-bench-batch-") as tmp:
        src = Path(tmp) / "takes"
        src.mkdir()
        n = extract_takes(n, src, ctx.root)
        frames = None
        for label, kw in runs:
            out = Path(tmp) / label.replace(" ", "_").replace(",", "")
            extra = ""
            if label == "ray":
                try:
                    import ray
                except ImportError:
                    rows.append("| Ray (local cluster) | ray is not installed (pip install 'blender-dposer[ray]') "
                                "| | | |")
                    continue
                t0 = time.perf_counter()
                ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
                start = time.perf_counter() - t0
                t0 = time.perf_counter()
                try:
                    report = batch.run("clean", src, out, engine="ray", progress=False, **kw, **steps)
                finally:
                    ray.shutdown()
                wall = time.perf_counter() - t0
                extra = f" (+ {start:.1f} s starting Ray)"
                label = f"Ray, local cluster, {kw['workers']} tasks at a time (1 CPU each)"
            else:
                t0 = time.perf_counter()
                report = batch.run("clean", src, out, progress=False, **kw, **steps)
                wall = time.perf_counter() - t0
                label = f"{label}, 1 torch thread each"
            walls[label] = wall
            frames = report["summary"]["frames_done"]
            rows.append(_row(label, wall, report, extra))
    lines = [f"`dposer batch clean` of the first {n} Bandai Namco dataset-1 takes ({frames} frames; BVH in, BVH + "
             f"SMPL-X npz out, default solver{f', {ctx.sizes.steps} steps (quick)' if quick else ''}) on {cores} "
             f"cores, load average {load:.1f} at the start"
             + (" (above the core count: the machine was shared with other jobs, so the times are slower and noisier "
                "than on an idle machine)." if load > cores else "."), "",
             "| engine | takes done | wall (incl. worker start-up) | takes / hour | frames / s |",
             "|---|---|---|---|---|", *rows]
    local2 = next((w for k, w in walls.items() if k.startswith("local, 2")), None)
    ray_w = next((w for k, w in walls.items() if k.startswith("Ray")), None)
    if local2 and ray_w:
        lines += ["", f"Ray over local processes (same 2-way split): {ray_w - local2:+.1f} s on the batch "
                  f"({(ray_w / local2 - 1) * 100:+.0f}%), not counting Ray's own start-up."]
    return "\n".join(lines)
