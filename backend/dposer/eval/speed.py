"""``dposer bench speed``: latency, throughput and FLOP/s against a measured matmul peak, memory."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from ..core.prior import Prior
from ..tasks.pose_tasks import CLEAN, COMPLETE, clean, complete
from .cases import Context


def network_flops(prior: Prior, outputs: tuple | None = None) -> int:
    """Multiply-adds x 2 of one network forward for one pose (Linear layers; the hand net runs twice), as the
    solvers run it: without the time projections (computed once per solve for the whole schedule) and, with
    ``outputs`` (body, left hand, right hand, face), without the heads of the parts left out."""
    want = dict(zip(("body", "hand", "face"), (True, True, True)))
    if outputs is not None:
        want = {"body": outputs[0], "hand": outputs[1] or outputs[2], "face": outputs[3]}
    total = 0
    for name, mod in prior.net.named_modules():
        if not isinstance(mod, torch.nn.Linear) or name.endswith(".time") or name.startswith("time_embed"):
            continue
        part = name.split(".")[0]
        if part in want and not want[part] and not name.startswith(f"{part}.inp."):
            continue
        total += mod.in_features * mod.out_features * (2 if part == "hand" else 1)
    return 2 * total


def _matmul_peak(device, size: int = 2048, reps: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return reps * 2 * size ** 3 / (time.perf_counter() - t0)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


_CLEAN_SCRIPT = """
import sys, numpy as np
from dposer import load_prior
from dposer.formats import data
from dposer.spec import layout
from dposer.tasks import CLEAN, clean
prior = load_prior(None, "cpu")
frames, steps, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
clip = data.load_amass_take(sys.argv[4] if len(sys.argv) > 4 else None).vectors
clip = np.concatenate([clip, clip])[:frames]
pose = layout.vectors_to_dict(clip, keys=("body_pose", "left_hand_pose", "right_hand_pose"))
if run:
    clean(prior, pose, parts="body,left_hand,right_hand", cfg=CLEAN.with_(steps=steps))
print(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM")))
"""


def _child_peak_rss_mb(frames: int, steps: int, root=None) -> tuple[float, float]:
    """Peak RSS (MiB) of a fresh process that loads the prior and runs the clip clean, and of one that only loads
    it (the difference is what the clean itself needs)."""
    import os
    import subprocess
    import sys

    out = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    for run in ("1", "0"):
        args = [sys.executable, "-c", _CLEAN_SCRIPT, str(frames), str(steps), run] + ([str(root)] if root else [])
        # VmHWM of the child's own image (getrusage of a child would count the pages it shared with this big
        # process at fork time)
        p = subprocess.run(args, env=env, capture_output=True, text=True)
        out.append(int(p.stdout.split()[-1]) / 1024 if p.returncode == 0 else float("nan"))
    return out[0], out[1]


def _speed_rows(prior: Prior, ctx: Context) -> list[str]:
    dev = prior.device
    tag = dev.type + (" bf16" if prior.precision == "bf16" else "")
    flops = network_flops(prior)
    reps = ctx.sizes.speed_reps
    lines = []
    peak = _matmul_peak(dev)
    # solver throughput: pose-iterations/s of the DPoser loop at several batch sizes (no data term)
    for batch in ((1, 64, 1024, 8192) if dev.type == "cuda" else (1, 64, 1024)) if not ctx.quick else (1, 16):
        steps = 20 if not ctx.quick else 3
        x = torch.randn(batch, layout.DIM, device=dev)
        from ..core.solver import solve

        solve(prior, x, cfg=COMPLETE.with_(steps=2))
        _sync(dev)
        t0 = time.perf_counter()
        for r in range(reps):
            solve(prior, x, cfg=COMPLETE.with_(steps=steps), seed=r)
        _sync(dev)
        t = (time.perf_counter() - t0) / reps
        lines.append(f"| {tag}: solver loop, batch {batch} | {1000 * t / steps:.2f} ms / iteration | "
                     f"{batch * steps / t:,.0f} pose-it/s | {batch * steps * flops / t / 1e9:.1f} GFLOP/s "
                     f"({100 * batch * steps * flops / t / peak:.0f}% of peak) |")
    wb = data.load_wholebody_set("test", ctx.root)
    one = {k: v[:1] for k, v in wb.to_dict().items() if k != "global_orient"}
    complete(prior, one, "right_hand", cfg=COMPLETE.with_(steps=5))  # warm-up
    for steps in ((COMPLETE.steps, 50) if not ctx.quick else (ctx.sizes.steps,)):
        times = []
        for rep in range(reps):
            t0 = time.perf_counter()
            complete(prior, one, "left_hand,right_hand", cfg=COMPLETE.with_(steps=steps), seed=rep)
            _sync(dev)
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        evals = steps + 1  # the solver's steps, then one batched evaluation (6 rows) that scores the hypothesis
        hand_flops = network_flops(prior, (False, True, True, False))
        work = steps * hand_flops + 6 * hand_flops
        lines.append(f"| {tag}: one-frame hands completion, {steps} steps (median of {reps}) | {1000 * t:.0f} ms | "
                     f"{evals} network evals (hand path, {hand_flops / 1e6:.1f} MFLOP per pose) | "
                     f"{work / t / 1e9:.2f} GFLOP/s |")
    lines += _clip_speed_rows(prior, ctx, tag, dev)
    clip = data.load_amass_take(ctx.root).vectors
    frames = 1000 if not ctx.quick else 32
    clip = np.concatenate([clip, clip])[:frames]
    clip[:, layout.PART_SLICES["face"]] = 0
    pose = layout.vectors_to_dict(clip, keys=layout.KEY_SLICES)
    steps = CLEAN.steps if not ctx.quick else ctx.sizes.steps
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = clean(prior, pose, parts="body,left_hand,right_hand", cfg=CLEAN.with_(steps=steps))
    _sync(dev)
    t = time.perf_counter() - t0
    # only the frames with a repaired cell go through the network (the take's own glitches and the cut at the join)
    rows = len({f for r in res["repaired"] for f in range(r["first"], r["last"] + 1)})
    if dev.type == "cuda":
        mem = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB"
    else:
        rss, base = _child_peak_rss_mb(frames, steps, ctx.root)
        mem = f"peak RSS {rss:.0f} MiB in a fresh process ({rss - base:.0f} MiB above loading torch + the prior)"
    lines.append(f"| {tag}: {frames}-frame whole-body clean, {steps} steps | {t:.1f} s | {len(res['repaired'])} faults "
                 f"repaired, {steps} x {rows} evals (the frames with a repaired cell), {mem} | "
                 f"{steps * rows * flops / t / 1e9:.2f} GFLOP/s |")
    lines.append(f"| {dev.type}: reference 2048² fp32 matmul (measured peak) | | | {peak / 1e9:.1f} GFLOP/s |")
    return lines


def _clip_speed_rows(prior: Prior, ctx: Context, tag: str, dev) -> list[str]:
    """Two-hand clip completion of a 1000-frame take (the AMASS take's body, twice over), 1 and 5 hypotheses."""
    body = data.load_amass_take(ctx.root).vectors[:, layout.PART_SLICES["body"]]
    frames = 1000 if not ctx.quick else 32
    pose = {"body_pose": np.concatenate([body, body])[:frames]}
    cfg = COMPLETE if not ctx.quick else COMPLETE.with_(steps=ctx.sizes.steps)
    out = []
    for k in (1, 5):
        t0 = time.perf_counter()
        complete(prior, pose, "left_hand,right_hand", hypotheses=k, cfg=cfg, clip=True, fps=30)
        _sync(dev)
        t = time.perf_counter() - t0
        out.append(f"| {tag}: {frames}-frame two-hand clip completion, {k} hypothes{'is' if k == 1 else 'es'}, "
                   f"{cfg.steps} steps | {t:.1f} s | {cfg.steps} x {k * frames} evals (hand path) | |")
    return out


def bench_speed(ctx: Context) -> str:
    from ..core.prior import load_prior

    prior = ctx.prior
    flops = network_flops(prior)
    lines = ["| workload | time | work | achieved |", "|---|---|---|---|"]
    lines += _speed_rows(prior, ctx)
    if prior.device.type == "cpu" and prior.precision == "fp32" and not ctx.quick:
        # the opt-in bf16 network (load_prior(precision='bf16')), same weights
        lines += [r for r in _speed_rows(Prior(prior.net, prior.normalizer, prior.info, prior.device, "bf16"), ctx)
                  if "matmul" not in r]
    devices = [f"{torch.get_num_threads()} CPU threads"]
    if torch.cuda.is_available() and prior.device.type != "cuda":
        gpu = load_prior(device="cuda")
        lines += _speed_rows(gpu, ctx)
        devices.append(torch.cuda.get_device_name())
    lines.append(f"\nNetwork: {flops / 1e6:.1f} MFLOP per pose per evaluation (all heads; the time projections, "
                 f"computed once per solve for its whole schedule, not counted); torch {torch.__version__}; "
                 + ", ".join(devices) + ("." if len(devices) > 1 else "; no GPU was available to this run."))
    return "\n".join(lines)
