"""Benchmarks of the solvers on held-out real data, written into docs/benchmarks.md.

    dposer bench completion   # completion error vs trivial baselines (test splits)
    dposer bench schedule     # truncated vs uniform schedules, t_max/t_min, on the validation split
    dposer bench clean        # mocap cleaning with 2 / 4 cm joint-noise equivalents
    dposer bench speed        # latency and throughput, FLOP/s achieved
"""
from __future__ import annotations

import datetime
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data, layout, metrics, skeleton
from .prior import Prior
from .rotations import geodesic_degrees
from .solver import SolverConfig
from .tasks import CLEAN, COMPLETE, clean, complete


@dataclass
class CompletionCase:
    name: str
    pose: dict  # input with the missing joints still present (they are overwritten by `missing`)
    truth: np.ndarray  # (N, 256)
    missing: str
    scope: str  # 'body' or 'hands': where MPJPE is measured
    nn_on: str  # part whose observed joints the nearest-neighbour baseline matches on
    train_pool: np.ndarray  # (M, 256) rows for the nearest-neighbour baseline
    train_mean: np.ndarray  # (256,)


def _hand_pool(split, root):
    """Hand training rows placed in both hand slots (left mirrored), for baselines on either hand."""
    h = data.load_part_set("hand", split, root).vectors
    both = h.copy()
    both[:, 63:108] = layout.mirror_hand(h[:, 108:153])
    return both


def completion_cases(split: str = "test", n: int | None = None, root=None) -> list[CompletionCase]:
    """The four completion benchmarks: left_leg and right_arm (AMASS body), both hands given the body (EgoBody
    whole-body) and pinky+ring given the rest of the hand (hand set)."""
    body = data.load_part_set("body", split, root)
    body_train = data.load_part_set("body", "train", root).vectors
    wb = data.load_wholebody_set(split, root)
    wb_train_set = data.load_wholebody_set("train", root)
    wb_train = np.concatenate([wb_train_set.vectors, layout.mirror_pose(wb_train_set.vectors)])
    hand = data.load_part_set("hand", split, root)
    hand_train = _hand_pool("train", root)
    sel = (lambda a: a[:n]) if n else (lambda a: a)
    cases = []
    for part in ("left_leg", "right_arm"):
        v = sel(body.vectors)
        cases.append(CompletionCase(part, {"body_pose": v[:, :63]}, v, part, "body", "body", body_train,
                                    body_train.mean(0)))
    v = sel(wb.vectors)
    hand_mean = hand_train.mean(0)
    wb_mean = wb_train.mean(0)
    wb_mean[63:153] = hand_mean[63:153]
    cases.append(CompletionCase("hands_given_body", {k: x[: len(v)] for k, x in wb.to_dict().items() if k != "global_orient"},
                                v, "left_hand,right_hand", "hands", "body", wb_train, wb_mean))
    v = sel(hand.vectors)
    cases.append(CompletionCase("pinky_ring_given_hand", {"right_hand_pose": v[:, 108:153]}, v,
                                "right_pinky,right_ring", "hands", "right_hand", hand_train, hand_train.mean(0)))
    return cases


def _descendants(joints: set[int]) -> set[int]:
    out = set(joints)
    for j, p in enumerate(layout.PARENTS):
        if p in out:
            out.add(j)
    return out


def completion_errors(pred: np.ndarray, case: CompletionCase) -> dict[str, np.ndarray]:
    """Per sample: mean geodesic degrees over the filled joints, and MPJPE (mm) over the joints they move on the
    built-in skeleton (body: the 22 body joints, pelvis-relative; hands: finger joints, wrist-relative, computed
    from the hand parts alone)."""
    dims = layout.names_to_dims(case.missing)
    n = len(pred)
    p = torch.from_numpy(pred[:, dims].reshape(n, -1, 3)).double()
    t = torch.from_numpy(case.truth[:, dims].reshape(n, -1, 3)).double()
    geo = geodesic_degrees(p, t).mean(1).numpy()
    vec_joint = {layout.joint_vector_slice(name).start: layout.JOINT_INDEX[name] for name in layout.VECTOR_JOINTS}
    moved = _descendants({vec_joint[d] for d in dims[::3]})
    if case.scope == "body":
        idx = sorted(j for j in moved if j < 22)
        d = metrics.part_joints(pred, "body")[:, idx] - metrics.part_joints(case.truth, "body")[:, idx]
        mpjpe = d.norm(dim=-1).mean(1)
    else:
        errs = []
        for side, first in (("left_hand", 25), ("right_hand", 40)):
            idx = sorted(j - first for j in moved if first <= j < first + 15)
            if idx:
                d = metrics.part_joints(pred, side)[:, idx] - metrics.part_joints(case.truth, side)[:, idx]
                errs.append(d.norm(dim=-1))
        mpjpe = torch.cat(errs, 1).mean(1)
    return {"geodesic_deg": geo, "mpjpe_mm": 1000 * mpjpe.numpy()}


def completion_error(pred: np.ndarray, case: CompletionCase) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in completion_errors(pred, case).items()}


def baseline_mean(case: CompletionCase) -> np.ndarray:
    out = case.truth.copy()
    dims = layout.names_to_dims(case.missing)
    out[:, dims] = case.train_mean[dims]
    return out


def baseline_nearest(case: CompletionCase) -> np.ndarray:
    """Copy the missing joints from the training row closest on the observed joints of the same part(s)."""
    dims = layout.names_to_dims(case.missing)
    obs = np.setdiff1d(layout.names_to_dims(case.nn_on), dims)
    q = torch.from_numpy(case.truth[:, obs])
    ref = torch.from_numpy(case.train_pool[:, obs])
    nn = torch.cdist(q, ref).argmin(1).numpy()
    out = case.truth.copy()
    out[:, dims] = case.train_pool[nn][:, dims]
    return out


def run_completion(prior: Prior, case: CompletionCase, cfg: SolverConfig = COMPLETE, hypotheses: int = 1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 vectors (N, 256) and all hypotheses (K, N, 256)."""
    res = complete(prior, case.pose, case.missing, hypotheses=hypotheses, seed=seed, cfg=cfg)
    hyp = np.zeros((hypotheses, len(case.truth), layout.DIM), np.float32)
    for key, sl in layout.KEY_SLICES.items():
        hyp[:, :, sl] = res[f"{key}_hypotheses"]
    return hyp[0], hyp


def bench_completion(prior: Prior, n: int | None = None, hypotheses: int = 5, root=None) -> str:
    rows = []
    for case in completion_cases("test", n, root):
        t0 = time.time()
        rank1, hyp = run_completion(prior, case, hypotheses=hypotheses)
        secs = time.time() - t0
        best_mm = np.min([completion_errors(h, case)["mpjpe_mm"] for h in hyp], axis=0).mean()
        rows.append((case.name, len(case.truth), completion_error(baseline_mean(case), case),
                     completion_error(baseline_nearest(case), case), completion_error(rank1, case),
                     completion_error(hyp.mean(0), case), best_mm, secs))
    lines = ["| task | N | mean pose: deg / mm | nearest neighbour: deg / mm | **DPoser rank-1**: deg / mm | "
             f"DPoser mean of {hypotheses} (`combine='mean'`): deg / mm | DPoser best-of-{hypotheses} (oracle) mm | "
             f"solve time (s, {hypotheses} hyp.) |", "|---|---|---|---|---|---|---|---|"]
    for name, n_, m, nn, ours, avg, best_mm, secs in rows:
        lines.append(f"| {name} | {n_} | {m['geodesic_deg']:.2f} / {m['mpjpe_mm']:.1f} | {nn['geodesic_deg']:.2f} / "
                     f"{nn['mpjpe_mm']:.1f} | **{ours['geodesic_deg']:.2f} / {ours['mpjpe_mm']:.1f}** | "
                     f"{avg['geodesic_deg']:.2f} / {avg['mpjpe_mm']:.1f} | {best_mm:.1f} | {secs:.1f} |")
    return "\n".join(lines)


def bench_schedule(prior: Prior, n: int = 300, root=None) -> str:
    """Truncated vs uniform, and a t_max/t_min sweep, on the validation split (rank-1 MPJPE mm)."""
    configs = [("uniform U(1e-3, 1)", COMPLETE.with_(schedule="uniform"))]
    for tmax, tmin in ((0.1, 0.02), (0.15, 0.05), (0.2, 0.05), (0.3, 0.05), (0.3, 0.01), (0.5, 0.02)):
        configs.append((f"truncated {tmax} -> {tmin}", COMPLETE.with_(t_max=tmax, t_min=tmin)))
    cases = completion_cases("val", n, root)
    lines = ["| schedule | " + " | ".join(c.name for c in cases) + " | mean |", "|---|" + "---|" * (len(cases) + 1)]
    for label, cfg in configs:
        errs = [completion_error(run_completion(prior, c, cfg)[0], c)["mpjpe_mm"] for c in cases]
        lines.append(f"| {label} | " + " | ".join(f"{e:.1f}" for e in errs) + f" | {np.mean(errs):.1f} |")
    return "\n".join(lines)


def bench_ranking(prior: Prior, n: int = 100, hypotheses: int = 5, root=None) -> str:
    """How to pick one answer from K hypotheses, on the validation split (rank-1 MPJPE mm of each rule)."""
    from .solver import plausibility

    lines = [f"| task | any one hypothesis | prior residual score | consensus (medoid, default) | mean of the {hypotheses} | "
             "oracle best |", "|---|---|---|---|---|---|"]
    for case in completion_cases("val", n, root):
        _, hyp = run_completion(prior, case, hypotheses=hypotheses)
        err = np.stack([completion_errors(h, case)["mpjpe_mm"] for h in hyp])  # (K, N); hyp is consensus-ranked
        x = prior.normalize(torch.from_numpy(hyp.reshape(-1, layout.DIM)))
        resid = plausibility(prior, x).reshape(hypotheses, -1).numpy().argmin(0)
        cols = np.arange(err.shape[1])
        mean = completion_error(hyp.mean(0), case)["mpjpe_mm"]
        lines.append(f"| {case.name} | {err.mean():.2f} | {err[resid, cols].mean():.2f} | {err[0].mean():.2f} | "
                     f"{mean:.2f} | {err.min(0).mean():.2f} |")
    return "\n".join(lines)


def noisy_clip(vectors: np.ndarray, cm: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise to the body rotations, scaled so the mean joint error on the built-in skeleton is
    ``cm`` centimetres (a 'joint noise equivalent')."""
    base = np.random.default_rng(seed).normal(size=(len(vectors), 63)).astype(np.float32)
    truth = metrics.part_joints(vectors, "body")

    def err(scale):
        v = vectors.copy()
        v[:, :63] += scale * base
        return 100 * (metrics.part_joints(v, "body") - truth).norm(dim=-1).mean().item()

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if err(mid) < cm else (lo, mid)
    out = vectors.copy()
    out[:, :63] += lo * base
    return out


def _clip_metrics(v: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    j, jt = metrics.part_joints(v, "body"), metrics.part_joints(truth, "body")
    acc = (j[2:] - 2 * j[1:-1] + j[:-2]).norm(dim=-1).mean().item()
    return 100 * (j - jt).norm(dim=-1).mean().item(), 100 * acc


def bench_clean(prior: Prior, root=None, strength: float = 0.5) -> str:
    clips = {"gestures (HumanEva, 240 f)": data.load_gestures_clip(root).vectors,
             "AMASS take (500 f, 120 fps)": data.load_amass_take(root).vectors}
    lines = ["| clip | noise | input error cm | cleaned error cm | input jitter cm/f^2 | cleaned jitter | clean clip jitter | time s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, truth in clips.items():
        truth = truth.copy()
        truth[:, 63:] = 0
        for cm in (2.0, 4.0):
            noisy = noisy_clip(truth, cm)
            t0 = time.time()
            res = clean(prior, {"body_pose": noisy[:, :63]}, strength=strength)
            secs = time.time() - t0
            out = noisy.copy()
            out[:, :63] = res["body_pose"]
            e0, j0 = _clip_metrics(noisy, truth)
            e1, j1 = _clip_metrics(out, truth)
            lines.append(f"| {name} | {cm:.0f} cm | {e0:.2f} | **{e1:.2f}** | {j0:.2f} | {j1:.2f} | "
                         f"{_clip_metrics(truth, truth)[1]:.2f} | {secs:.1f} |")
    return "\n".join(lines)


def network_flops(prior: Prior) -> int:
    """Multiply-adds x 2 of one network forward for one pose (Linear layers; the hand net runs twice)."""
    net = prior.net
    total = 0
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.Linear):
            total += mod.in_features * mod.out_features * (2 if name.startswith("hand.") else 1)
    return 2 * total


def bench_speed(prior: Prior, root=None) -> str:
    flops = network_flops(prior)
    lines = ["| workload | wall time | network evals | FLOP/s achieved |", "|---|---|---|---|"]
    wb = data.load_wholebody_set("test", root)
    one = {k: v[:1] for k, v in wb.to_dict().items() if k != "global_orient"}
    complete(prior, one, "right_hand", cfg=COMPLETE.with_(steps=5))  # warm-up
    for steps in (COMPLETE.steps, 50):
        times = []
        for rep in range(5):
            t0 = time.perf_counter()
            complete(prior, one, "left_hand,right_hand", cfg=COMPLETE.with_(steps=steps), seed=rep)
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        evals = steps + 6  # solver steps + ranking
        lines.append(f"| one-frame hands completion, {steps} steps (median of 5) | {1000 * t:.0f} ms | {evals} x 1 | "
                     f"{evals * flops / t / 1e9:.2f} GFLOP/s |")
    clip = data.load_amass_take(root).vectors
    clip = np.concatenate([clip, clip])[:1000]
    clip[:, 153:] = 0
    pose = {"body_pose": clip[:, :63], "left_hand_pose": clip[:, 63:108], "right_hand_pose": clip[:, 108:153],
            "jaw_pose": clip[:, 153:156], "expression": clip[:, 156:]}
    t0 = time.perf_counter()
    clean(prior, pose, parts="body,left_hand,right_hand")
    t = time.perf_counter() - t0
    lines.append(f"| 1000-frame whole-body clean, {CLEAN.steps} steps | {t:.1f} s | {CLEAN.steps} x 1000 | "
                 f"{CLEAN.steps * 1000 * flops / t / 1e9:.2f} GFLOP/s |")
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    a @ b
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    peak = 20 * 2 * 1024 ** 3 / (time.perf_counter() - t0)
    lines.append(f"| reference: 1024x1024 fp32 matmul | | | {peak / 1e9:.2f} GFLOP/s |")
    lines.append(f"\nNetwork: {flops / 1e6:.1f} MFLOP per pose per evaluation; torch {torch.__version__}, "
                 f"{torch.get_num_threads()} threads.")
    return "\n".join(lines)


BENCHES = {"completion": bench_completion, "schedule": bench_schedule, "ranking": bench_ranking, "clean": bench_clean,
           "speed": bench_speed}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def write_section(path, name: str, body: str, command: str) -> None:
    """Replace (or append) the section between <!-- bench:NAME --> markers in a markdown file."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    stamp = datetime.date.today().isoformat()
    block = (f"<!-- bench:{name} -->\n*`{command}` — {stamp}, {machine()}*\n\n{body}\n<!-- /bench:{name} -->")
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
