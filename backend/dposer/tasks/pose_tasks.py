"""The artist-facing tasks on top of the solver: complete, clean, vary, fit, refine.

Poses are dicts of numpy arrays with any subset of the six SMPL-X keys (see :mod:`dposer.spec.layout`); keys absent
from the input are unobserved and get filled in. Every task returns a :class:`dposer.core.results.TaskResult` (typed
fields, and the dict interface the tasks always had).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from ..core.prior import Prior
from ..core.results import TaskResult
from ..core.solver import SolverConfig, plausibility, solve

# Completion: the 'denoise' optimiser (x moves the fraction lr of the way to the prior's denoised estimate, lr
# 0.15 -> 1 over the steps), t 0.5 -> 0.05 with more steps at low t (t_power 2), 100 steps. Chosen on the validation
# split (150 poses per task, docs/benchmarks.md): mean relative error 0.462 against 0.470 for the previous Adam
# default (200 steps, lr 0.2 cosine, t 0.3 -> 0.05) at half the network evaluations; hands given body 6.3 vs 6.7 mm.
COMPLETE = SolverConfig(steps=100, optimizer="denoise", lr=0.15, lr_end=1.0, lr_decay="linear", t_max=0.5,
                        t_min=0.05, t_power=2.0)


def _result(raw: torch.Tensor | np.ndarray, extras: dict, given: dict | None = None, **fields) -> TaskResult:
    """Vectors (N, 256) -> a :class:`TaskResult` with ``extras``' global_orient; with ``given`` only the pose keys
    it holds (tasks that only adjust what is there)."""
    raw = raw.cpu().numpy() if isinstance(raw, torch.Tensor) else raw
    pose = layout.vectors_to_dict(raw, extras.get("global_orient"))
    if given is not None:
        pose = {k: v for k, v in pose.items() if k == "global_orient" or k in given}
    return TaskResult(pose, **fields)


# Clip completion runs long takes in windows of this many frames, overlapping by CLIP_OVERLAP frames that are
# cross-faded (the noise shared by a hypothesis' frames is the same in every window, so windows agree).
CLIP_WINDOW = 1024
CLIP_OVERLAP = 64


def _windows(frames: int, window: int = CLIP_WINDOW, overlap: int = CLIP_OVERLAP) -> list[tuple[int, int]]:
    """(start, stop) frame ranges covering 0..frames, consecutive ones overlapping by ``overlap``."""
    if frames <= window:
        return [(0, frames)]
    out, start = [], 0
    while True:
        stop = min(start + window, frames)
        out.append((max(0, stop - window), stop))
        if stop == frames:
            return out
        start = stop - overlap


def _crossfade(parts: list[tuple[int, int, torch.Tensor]], frames: int) -> torch.Tensor:
    """Join window results (start, stop, (K, W, D)) into (K, frames, D), linear ramps over the overlaps."""
    k, _, d = parts[0][2].shape
    acc = torch.zeros(k, frames, d, dtype=parts[0][2].dtype)
    wsum = torch.zeros(1, frames, 1, dtype=parts[0][2].dtype)
    for i, (a, b, x) in enumerate(parts):
        w = torch.ones(b - a)
        if i > 0:
            ov = parts[i - 1][1] - a
            w[:ov] = torch.linspace(0, 1, ov + 2)[1:-1]
        if i + 1 < len(parts):
            ov = b - parts[i + 1][0]
            w[-ov:] = torch.minimum(w[-ov:], torch.linspace(1, 0, ov + 2)[1:-1])
        acc[:, a:b] += x.cpu() * w[None, :, None]
        wsum[:, a:b] += w[None, :, None]
    return acc / wsum


def _solve_filled(prior: Prior, x: torch.Tensor, free: torch.Tensor, k: int, seed: int, cfg: SolverConfig,
                  init_noise: float, temporal, progress, cancel) -> torch.Tensor:
    """Noise the free dims of x (K*N, D normalised) and solve; ``temporal`` makes each hypothesis one motion."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=gen) if temporal is None else temporal.noise(gen)
    x = torch.where(free, noise.to(x.device) * init_noise, x)
    return solve(prior, x, free, cfg=cfg, seed=seed, progress=progress, cancel=cancel, temporal=temporal)


def complete(prior: Prior, pose: dict, missing, hypotheses: int = 1, seed: int = 0, cfg: SolverConfig | None = None,
             init_noise: float = 1.0, combine: str = "mean", progress: Callable | None = None,
             cancel: Callable | None = None, clip: bool = False, fps: float | None = None,
             sigma_s: float | None = None) -> TaskResult:
    """Fill in the joints named in ``missing`` (part/group/joint names, e.g. 'right_hand', 'left_leg',
    'right_pinky1') and every key absent from ``pose``; observed joints are kept exactly.

    Returns the rank-1 result under the standard keys, ``<key>_hypotheses`` arrays of shape (K, N, D) ranked
    best first, and ``scores`` (K, N), lower = better. With three or more hypotheses they are ranked by
    agreement with the others (distance to their mean over the filled dims, normalised units); with one or two,
    by the prior's denoising residual over the filled dims. Under the standard keys: with ``combine='mean'`` (the
    default) the mean of the hypotheses (axis-angle average of the filled joints), the best estimate: not itself a
    sample, but the lowest error on every validation task and on the finger take (docs/benchmarks.md, ranking and
    clip completion); with ``combine='best'`` the rank-1 hypothesis. With one hypothesis both are that hypothesis.

    ``clip=True``: the N rows are the frames of one take at ``fps`` (default 30) and are solved together
    (:mod:`dposer.tasks.temporal`): each hypothesis is one coherent motion over the whole range (hypotheses are ranked as
    wholes, so ``<key>_hypotheses[i]`` is one take), the filled joints are low-passed along time with a Gaussian of
    ``sigma_s`` seconds (default ``temporal.SIGMA_S``), and takes longer than ``CLIP_WINDOW`` frames run in
    overlapping, cross-faded windows. A hand missing on every frame is filled by :mod:`dposer.tasks.hands` instead: K
    hypotheses that move like fingers, and its best estimate under the standard keys with ``combine='mean'``.
    """
    from .temporal import SIGMA_S, Temporal

    if hypotheses < 1:
        raise ValueError(f"hypotheses must be >= 1, got {hypotheses}")
    if combine not in ("best", "mean"):
        raise ValueError(f"combine must be 'best' or 'mean', got {combine!r}")
    ps = data.from_smplx_dict(pose)
    n, k = len(ps), hypotheses
    cfg = cfg or COMPLETE
    free = ~ps.present
    free[:, layout.names_to_dims(missing)] = True
    hands = None
    if clip and n > 1:  # hands free on every frame come from the hands-over-a-take model (dposer.tasks.hands)
        from .hands import clip_hands

        hands = clip_hands(ps.vectors, free, k, fps, seed)
        if hands is not None:
            ps.vectors[:, hands[0]] = hands[1]
            free[:, hands[0]] = False
    raw = torch.from_numpy(ps.vectors).to(prior.device)
    free_t = torch.from_numpy(free).to(prior.device)
    if not free.any():  # nothing left for the prior
        sol = prior.normalize(raw).repeat(k, 1)
    elif clip and n > 1:
        windows = _windows(n, CLIP_WINDOW, CLIP_OVERLAP)
        parts = []
        for i, (a, b) in enumerate(windows):
            temporal = Temporal.for_clip(k, b - a, raw.shape[1], fps, SIGMA_S if sigma_s is None else sigma_s)
            step = None if progress is None else (lambda d, t, i=i: progress(i * t + d, len(windows) * t))
            x = prior.normalize(raw[a:b]).repeat(k, 1)
            sol = _solve_filled(prior, x, free_t[a:b].repeat(k, 1), k, seed, cfg, init_noise, temporal, step, cancel)
            parts.append((a, b, sol.reshape(k, b - a, -1)))
        sol = _crossfade(parts, n).to(prior.device).reshape(k * n, -1)
    else:
        x = prior.normalize(raw).repeat(k, 1)
        sol = _solve_filled(prior, x, free_t.repeat(k, 1), k, seed, cfg, init_noise, None, progress, cancel)
    free_t = free_t.repeat(k, 1)
    if hands is not None and not free.any():  # hands alone: ranked by closeness to their best estimate
        scores = torch.from_numpy(((hands[2] - hands[1][None]) ** 2).mean((1, 2))[:, None]).float().expand(k, n)
    elif k >= 3:
        # consensus ranking: hypotheses closest to their mean over the filled dims first (the medoid of the
        # prior's answers); measured on the validation split it beats the denoising-residual score, which
        # barely tells good from bad hypotheses (docs/benchmarks.md)
        h = sol.reshape(k, n, -1)
        named = torch.zeros(layout.DIM, dtype=torch.bool, device=h.device)
        named[torch.from_numpy(layout.names_to_dims(missing)).to(h.device)] = True
        f = free_t.reshape(k, n, -1)[0] & (named if named.any() else True)
        f = f.to(h)
        scores = (((h - h.mean(0, keepdim=True)) * f) ** 2).sum(-1) / f.sum(-1).clamp_min(1)
    else:
        filled = free_t.reshape(k, n, -1)[0].any(0)
        scores = plausibility(prior, sol, seed=seed, dims=filled if filled.any() else None).reshape(k, n)
    if clip and n > 1:  # rank whole motions: every frame of a hypothesis gets its mean score over the take
        scores = scores.mean(1, keepdim=True).expand(k, n)
    order = scores.argsort(dim=0)  # (K, N) best first
    out_raw = prior.denormalize(sol).reshape(k, n, -1)
    out_raw = torch.where(free_t.reshape(k, n, -1), out_raw, raw.expand(k, n, -1))  # observed dims bit-exact
    out_raw = torch.gather(out_raw, 0, order[:, :, None].expand(-1, -1, out_raw.shape[-1]))
    mean = torch.where(free_t[:n], out_raw.mean(0), raw)  # observed dims bit-exact in the mean too
    if hands is not None:  # the hands' hypotheses are their own motions (in rank order when only hands were filled)
        hyp = torch.from_numpy(hands[2]).to(out_raw)
        out_raw[:, :, hands[0]] = hyp[order[:, 0].cpu()] if not free.any() else hyp
    return _result(out_raw[0] if combine == "best" else mean, ps.extras,
                   hypotheses=layout.vectors_to_dict(out_raw.cpu().numpy(), keys=layout.KEY_SLICES),
                   scores=torch.gather(scores, 0, order).cpu().numpy())


# The prior's part of cleaning: the faulty cells, after they are filled from the motion around them, are refined
# by the solver (prior + temporal smoothness of the joints + a pull to the fill); only their frames go through the
# network.
CLEAN = SolverConfig(steps=20, lr=0.01, t_max=0.15, t_min=0.05, weighting="const")


def _clean_free_joints(free: np.ndarray) -> list[str]:
    """Joints of the vector whose three dims are all free (body, hands, jaw), in vector order."""
    return [j for j in layout.VECTOR_JOINTS if free[layout.joint_vector_slice(j)].all()]


def _prior_outliers(prior: Prior, raw: torch.Tensor, joints: list[str], seed: int, z: float = 10.0) -> np.ndarray:
    """(F, J) cells implausible under the prior: the frame's denoising residual (``plausibility``) and the joint's
    own residual both far (robust z > ``z``) above the clip's usual."""
    from ..core.solver import plausibility

    x = prior.normalize(raw)
    dims = torch.zeros(layout.DIM, dtype=torch.bool)
    for j in joints:
        dims[layout.joint_vector_slice(j)] = True
    frame = plausibility(prior, x, seed=seed, ts=(0.1,), dims=dims.to(x.device)).cpu().numpy()

    def robust_z(v, axis=0):
        med = np.median(v, axis=axis, keepdims=True)
        return (v - med) / (1.4826 * np.median(np.abs(v - med), axis=axis, keepdims=True) + 1e-9)

    flags = np.zeros((len(raw), len(joints)), bool)
    bad = np.nonzero(robust_z(frame) > z)[0]
    if len(bad):
        with torch.no_grad():
            from ..core.sde import alpha_sigma

            t = torch.full((len(raw),), 0.1, device=x.device)
            a, s = alpha_sigma(t)
            gen = torch.Generator().manual_seed(seed)
            eps = torch.randn(x.shape, generator=gen).to(x.device)
            res = ((prior.denoise(a[:, None] * x + s[:, None] * eps, t) - x) ** 2).cpu().numpy()
        per_joint = np.stack([res[:, layout.joint_vector_slice(j)].mean(1) for j in joints], 1)
        flags[bad] = robust_z(per_joint)[bad] > z
    return flags


def _prior_refine(prior: Prior, vectors: np.ndarray, flags: np.ndarray, joints: list[str], cuts: list,
                  strength: float, cfg: SolverConfig, seed: int, progress, cancel) -> np.ndarray:
    """Refine the flagged cells (F, J) of ``vectors`` (F, 256), already filled, with the prior + smoothness."""
    from ..core.kinematics import joints_from_vector

    rows = np.nonzero(flags.any(1))[0]
    if len(rows) == 0 or cfg.steps == 0:
        return vectors
    F = len(vectors)
    seg = np.zeros(F, int)
    for c in cuts:
        seg[c:] += 1
    win = np.unique(np.clip((rows[:, None] + np.arange(-2, 3)).ravel(), 0, F - 1))
    pos = np.searchsorted(win, rows)
    # acceleration triples of consecutive window frames within one segment
    tri = np.nonzero((win[2:] - win[:-2] == 2) & (seg[win[2:]] == seg[win[:-2]]))[0]
    free = np.zeros((len(rows), layout.DIM), bool)
    for k, j in enumerate(joints):
        free[np.nonzero(flags[rows, k])[0], layout.joint_vector_slice(j)] = True
    dev = prior.device
    full = torch.from_numpy(vectors[win].astype(np.float32)).to(dev)
    x0 = prior.normalize(torch.from_numpy(vectors[rows].astype(np.float32)).to(dev))
    free_t = torch.from_numpy(free).to(dev)
    pos_t = torch.from_numpy(pos).to(dev)
    tri_t = torch.from_numpy(tri).to(dev)

    def data_loss(x, k):
        v = full.index_copy(0, pos_t, prior.denormalize(x))
        jt = joints_from_vector(v)
        acc = jt[tri_t + 2] - 2 * jt[tri_t + 1] + jt[tri_t]
        smooth = 1e4 * (acc ** 2).sum(-1).mean(-1).sum()
        pull = ((x - x0) ** 2 * free_t).sum(1)
        return 0.05 * pull + smooth / len(rows)

    sol = solve(prior, x0, free_t, data_loss, cfg.with_(prior_weight=cfg.prior_weight * 2 * strength), seed=seed,
                progress=progress, cancel=cancel)
    out = vectors.copy()
    out[rows] = np.where(free, prior.denormalize(sol).cpu().numpy(), vectors[rows])
    return out


def clean(prior: Prior, clip: dict, strength: float = 0.5, parts="body", lock=(), seed: int = 0,
          cfg: SolverConfig | None = None, progress: Callable | None = None, cancel: Callable | None = None,
          use_prior: bool = True) -> TaskResult:
    """Find the faults in a clip of F frames (mocap) and repair them; leave good motion alone.

    Detects cuts (never smoothed across), limbs held on their last value while the body moves, knees/elbows bent
    backwards, one-joint temporal outliers of 1-10 frames (spikes, pops) and cells implausible under the prior
    (:mod:`dposer.tasks.cleaning`); fills the faulty cells from the motion around them (rotation space), refines them
    with the prior and temporal smoothness (``use_prior``), and smooths a joint's good frames only when its
    estimated jitter is above what real motion shows. ``strength`` in [0, 1]: 0 changes nothing, higher flags
    more, smooths more and weighs the prior more. ``parts`` names what may change (default the body), ``lock``
    joints kept exactly. Root orientation, translation, expression and any absent keys are passed through.

    The result also holds ``repaired``: a list of {"joint", "first", "last", "kind"} (frames are 0-based rows of
    the clip; kind: held, limit, outlier, prior), ``cuts`` (rows that start a new segment) and ``jitter_deg``
    (the clip's estimated per-axis jitter).
    """
    from . import cleaning

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    ps = data.from_smplx_dict(clip)
    if len(ps) < 3:
        raise ValueError(f"a clip needs at least 3 frames, got {len(ps)}")
    free = np.zeros(layout.DIM, bool)
    free[layout.names_to_dims(parts)] = True
    if lock:
        free[layout.names_to_dims(lock)] = False
    free &= ps.present.all(0)
    joints = _clean_free_joints(free)
    vectors = ps.vectors.astype(np.float64)
    repaired, cuts, noise = [], [], 0.0
    if joints and strength > 0:
        sl = [layout.joint_vector_slice(j) for j in joints]
        aa = np.stack([vectors[:, s] for s in sl], 1)  # (F, J, 3)
        orient = ps.extras.get("global_orient")
        det = cleaning.detect(aa, joints, strength, orient=None if orient is None else np.asarray(orient, float))
        if use_prior:
            det.kinds["prior"] = _prior_outliers(prior, torch.from_numpy(ps.vectors).to(prior.device), joints, seed) & ~det.flags
            det.flags = det.flags | det.kinds["prior"]
        new_aa, noise = cleaning.repair(aa, det, strength)
        out = vectors.copy()
        for k, s in enumerate(sl):
            out[:, s] = new_aa[:, k]
        if use_prior:
            out = _prior_refine(prior, out, det.flags, joints, det.cuts, strength, cfg or CLEAN, seed, progress, cancel)
        vectors, cuts = out, det.cuts
        repaired = cleaning.report(det, joints)
    # trans: checked by dposer.formats.data (finite, one row per frame)
    return _result(vectors.astype(np.float32), ps.extras, clip, trans=ps.extras.get("trans"), repaired=repaired,
                   cuts=np.asarray(cuts, np.int64), jitter_deg=np.float32(noise))


def vary(prior: Prior, pose: dict, n: int, strength: float = 0.3, seed: int = 0, lock=(), steps: int = 50,
         progress: Callable | None = None, cancel: Callable | None = None) -> TaskResult:
    """``n`` variations of one pose: noise it to t = strength and denoise (DDIM). 0 = identical, 1 = an
    unrelated sample. ``lock`` joints are kept exactly. Keys absent from the pose are first filled in by
    :func:`complete`, then varied like the rest."""
    from ..core.sampling import ddim

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ps = data.from_smplx_dict(pose)
    if len(ps) != 1:
        raise ValueError(f"vary takes one pose, got {len(ps)}")
    if not ps.present.all():
        filled = complete(prior, pose, [], seed=seed)
        ps = data.from_smplx_dict({k: filled[k] for k in layout.KEY_SLICES} | {"global_orient": filled["global_orient"]})
    raw = torch.from_numpy(ps.vectors).to(prior.device)
    fixed = np.zeros(layout.DIM, bool)
    if lock:
        fixed[layout.names_to_dims(lock)] = True
    fixed = torch.from_numpy(fixed & ps.present[0]).to(prior.device)
    if strength == 0.0:
        out = raw.expand(n, -1)
    else:
        x0 = prior.normalize(raw).expand(n, -1)
        gen = torch.Generator().manual_seed(seed)
        x = ddim(prior, n, steps=max(2, int(round(steps * strength))), gen=gen, x0=x0, t_start=strength,
                 fixed=fixed.expand(n, -1), progress=progress, cancel=cancel)
        out = torch.where(fixed, raw, prior.denormalize(x))
    return _result(out, {"global_orient": np.repeat(ps.extras.get("global_orient", np.zeros((1, 3), np.float32)), n, 0)})


REFINE = SolverConfig(steps=100, lr=0.05, t_max=0.12, t_min=0.02)


def refine(prior: Prior, pose: dict, strength: float = 0.3, lock=(), seed: int = 0, cfg: SolverConfig | None = None,
           progress: Callable | None = None, cancel: Callable | None = None) -> TaskResult:
    """Project implausible poses (N of them) towards the prior's manifold; ``strength`` in (0, 1] sets how far
    they may move (the noise level of the schedule and the pull back to the input)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    ps = data.from_smplx_dict(pose)
    raw = torch.from_numpy(ps.vectors).to(prior.device)
    x0 = prior.normalize(raw)
    free = np.ones(layout.DIM, bool)
    if lock:
        free[layout.names_to_dims(lock)] = False
    free_t = torch.from_numpy(free[None] & ps.present).to(prior.device)
    keep_w = 0.05 * (1.0 - strength) / strength

    def data_loss(x, k):
        return keep_w * ((x - x0) ** 2).mean(1)

    cfg = cfg or REFINE.with_(t_max=0.02 + 0.2 * strength)
    sol = solve(prior, x0, free_t, data_loss, cfg, seed=seed, progress=progress, cancel=cancel)
    out = torch.where(free_t, prior.denormalize(sol), raw)
    return _result(out, ps.extras, pose)


FIT = SolverConfig(steps=200, lr=0.05, t_max=0.15, t_min=0.03)


def fit(prior: Prior, targets: dict, pose: dict | None = None, free="body,hands", seed: int = 0,
        cfg: SolverConfig | None = None, skeleton: Callable | None = None, progress: Callable | None = None,
        cancel: Callable | None = None) -> TaskResult:
    """Pose(s) that put chosen joints at 3D targets, the rest filled by the prior ("pin a few joints").

    ``targets``: {SMPL-X joint name: (N, 3) or (3,) positions} in the built-in skeleton's frame (metres, +Y up,
    pelvis at its rest position, the given ``pose``'s global_orient or none). ``pose`` (optional) gives the
    starting pose and any joints that stay fixed: only the dims named by ``free`` move. ``skeleton``: a callable
    (vectors (N, 256), global_orient (N, 3) or None) -> joints (N, >=55, 3), e.g. a
    :class:`dposer.core.kinematics.SmplxSkeleton` of the user's own SMPL-X model; default the built-in skeleton.
    """
    from ..core.kinematics import joints_from_vector

    skeleton = skeleton or joints_from_vector

    if not targets:
        raise ValueError("fit needs at least one target joint")
    names = list(targets)
    unknown = [j for j in names if j not in layout.JOINT_INDEX]
    if unknown:
        raise ValueError(f"unknown target joint(s) {unknown}; use SMPL-X joint names such as 'left_wrist'")
    tgt = [data._check(targets[j], f"target '{j}'", 3) for j in names]  # real, finite, (N, 3), N >= 1
    ps_in = None if pose is None else data.from_smplx_dict(pose)
    n = max([len(t) for t in tgt] + ([len(ps_in)] if ps_in is not None else []))
    for j, t in zip(names, tgt):
        if len(t) not in (1, n):
            raise ValueError(f"target '{j}' must be (3,) or ({n}, 3), got shape {t.shape}")
    target = torch.from_numpy(np.stack([np.broadcast_to(t, (n, 3)) for t in tgt], 1)).to(prior.device)
    idx = [layout.JOINT_INDEX[j] for j in names]
    if ps_in is None:
        ps = data.PoseSet(np.zeros((n, layout.DIM), np.float32), np.zeros((n, layout.DIM), bool))
    elif len(ps_in) == 1 and n > 1:
        ps = ps_in.subset(np.zeros(n, int))
    elif len(ps_in) != n:
        raise ValueError(f"the pose has {len(ps_in)} rows but the targets have {n}")
    else:
        ps = ps_in
    orient = ps.extras.get("global_orient")
    orient_t = None if orient is None else torch.from_numpy(np.broadcast_to(orient, (n, 3)).copy()).to(prior.device)
    raw = torch.from_numpy(ps.vectors).to(prior.device)
    free_np = np.zeros((n, layout.DIM), bool)
    free_np[:, layout.names_to_dims(free)] = True
    free_np |= ~ps.present
    free_t = torch.from_numpy(free_np).to(prior.device)
    x0 = torch.where(free_t, torch.zeros_like(raw), prior.normalize(raw))

    def data_loss(x, k):
        j = skeleton(prior.denormalize(x), orient_t)[:, idx]
        return 1e3 * ((j - target) ** 2).sum(-1).mean(1)

    sol = solve(prior, x0, free_t, data_loss, cfg or FIT, seed=seed, progress=progress, cancel=cancel)
    out = torch.where(free_t, prior.denormalize(sol), raw)
    with torch.no_grad():
        reached = skeleton(out, orient_t)[:, idx]
    return _result(out, ps.extras, target_error=(reached - target).norm(dim=-1).cpu().numpy())  # (N, J) metres
