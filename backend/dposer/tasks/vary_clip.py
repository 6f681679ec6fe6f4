"""Variations of a whole take: the same action done differently, coherent over time (``dposer vary --clip``).

Each variation is the take with a smooth, per-joint rotation offset on top, where the offsets come from the pose
prior's own local variation around the take's poses:

1. anchor frames (every ``1 / ANCHOR_HZ`` seconds) are varied with the single-pose variation (DDIM from the pose
   noised to t = strength, :func:`dposer.core.sampling.ddim`), with the SAME noise on every anchor of a variation, so
   a variation answers the same way on neighbouring poses (its "style": arms a bit wider, a deeper crouch ...);
2. the offset of each joint at each anchor, the rotation taking the take's joint to the varied one (right
   multiplied: in the joint's own frame), is interpolated over the frames and low-passed (a Gaussian of
   ``OFFSET_SIGMA_S`` seconds), so the take's timing and every fast detail stay, only low-frequency changes are
   added; knees and elbows are only bent about their hinge axis;
3. locked and absent dims stay exactly the take's;
4. with a translation, feet planted in the take stay planted (:mod:`dposer.tasks.feet`: the legs bent by a small IK,
   that correction held to the same wander bound, and each variation's root moved so its planted feet move as
   the take's).

The raw variations come from a *sampler*: any callable with the signature of :func:`pose_prior_sampler`,
``(prior, vectors (F, 256), present (256,), fixed (256,), n, strength, seed, fps, steps=, progress=, cancel=)
-> (n, F, 256)``. A motion prior's ``sample_like(take, strength, seed, lock_mask)`` called once per variation
(seed + i) fits it; steps 3-4 apply to whatever the sampler returns.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..core.prior import Prior
from ..core.results import TaskResult
from ..core.torch_rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..formats import data
from ..spec import layout
from .feet import plant_feet, root_translation
from .temporal import DEFAULT_FPS, lowpass

ANCHOR_HZ = 6.0  # anchor frames per second varied by the prior; the offsets between them are interpolated
OFFSET_SIGMA_S = 0.25  # low-pass of the offsets (s): slower than the motion's own detail (temporal.SIGMA_S 0.1 s)
# The time-varying part of a joint's offset (its offset minus the offset's mean over the take) is kept within this
# fraction of the joint's own motion (RMS angle about its mean rotation): the variation's trajectory then stays
# within asin(0.5) = 30 degrees of the take's (as vectors over time), a correlation >= cos 30 = 0.87 in the small-
# angle limit, whatever the prior proposes; the constant part (the variation's "style") is free.
MAX_WANDER = 0.5
DDIM_STEPS = 50  # DDIM steps for strength 1 (scaled by the strength, at least 2), as the single-pose vary
ROTATION_KEYS = ("body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")

Sampler = Callable[..., np.ndarray]


def _rotation_dims() -> np.ndarray:
    m = np.zeros(layout.DIM, bool)
    for k in ROTATION_KEYS:
        m[layout.KEY_SLICES[k]] = True
    return m


def ddim_steps(steps: int, strength: float) -> int:
    """DDIM steps from t = strength: ``steps`` scaled by the strength, at least 2 (as the single-pose vary)."""
    return max(2, int(round(steps * strength)))


def anchor_frames(frames: int, fps: float) -> np.ndarray:
    """Frame indices varied by the prior: every fps / ANCHOR_HZ frames, the last frame included."""
    stride = max(1, int(round(fps / ANCHOR_HZ)))
    idx = np.arange(0, frames, stride)
    return idx if idx[-1] == frames - 1 else np.append(idx, frames - 1)


def rotation_offsets(base: np.ndarray, varied: np.ndarray) -> np.ndarray:
    """Per-joint offsets (..., 256): axis-angle of R_base^T R_varied on the rotation dims, the difference on the
    others (expression)."""
    rot = _rotation_dims()
    out = varied - base
    b = torch.from_numpy(np.ascontiguousarray(base[..., rot]).reshape(-1, 3).astype(np.float64))
    v = torch.from_numpy(varied[..., rot].reshape(-1, 3).astype(np.float64))
    d = matrix_to_axis_angle(axis_angle_to_matrix(b).transpose(-1, -2) @ axis_angle_to_matrix(v))
    out[..., rot] = d.numpy().reshape(out[..., rot].shape)
    return out


def apply_offsets(base: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_offsets`: base (F, 256) with offsets (..., F, 256) -> (..., F, 256)."""
    rot = _rotation_dims()
    base = np.broadcast_to(base, offsets.shape)
    out = base + offsets
    b = torch.from_numpy(np.ascontiguousarray(base[..., rot]).reshape(-1, 3).astype(np.float64))
    d = torch.from_numpy(np.ascontiguousarray(offsets[..., rot]).reshape(-1, 3).astype(np.float64))
    r = matrix_to_axis_angle(axis_angle_to_matrix(b) @ axis_angle_to_matrix(d))
    out[..., rot] = r.numpy().reshape(out[..., rot].shape)
    return out


def smooth_offsets(offsets: np.ndarray, anchors: np.ndarray, frames: int, sigma_frames: float) -> np.ndarray:
    """Offsets known on the anchor frames (N, A, D) -> every frame (N, F, D): linear interpolation, then a
    Gaussian low-pass of ``sigma_frames``."""
    t = np.arange(frames)
    n, _, d = offsets.shape
    full = np.empty((n, frames, d))
    for i in range(n):
        for j in range(d):
            full[i, :, j] = np.interp(t, anchors, offsets[i, :, j])
    return lowpass(torch.from_numpy(full), sigma_frames).numpy()


def motion_rms(vectors: np.ndarray) -> np.ndarray:
    """(256,) each rotation joint's motion in the take (F, 256): the RMS angle (radians) of its rotation about its
    mean rotation, on each of its three dims; 0 on the other dims."""
    rot = _rotation_dims()
    R = axis_angle_to_matrix(torch.from_numpy(vectors[:, rot].reshape(len(vectors), -1, 3).astype(np.float64)))
    u, _, vt = torch.linalg.svd(R.mean(0))
    fix = torch.ones_like(u[..., 0])
    fix[..., -1] = torch.det(u @ vt)
    mean = u @ torch.diag_embed(fix) @ vt  # chordal mean rotation of each joint
    motion = matrix_to_axis_angle(mean.transpose(-1, -2) @ R).numpy()
    out = np.zeros(layout.DIM)
    out[rot] = np.repeat(np.sqrt((np.linalg.norm(motion - motion.mean(0), axis=-1) ** 2).mean(0)), 3)
    return out


def bound_wander(offsets: np.ndarray, vectors: np.ndarray, limit: float = MAX_WANDER) -> np.ndarray:
    """Offsets (N, F, 256) with each rotation joint's time-varying part scaled down to at most ``limit`` x the
    joint's motion in the take (F, 256) (:func:`motion_rms`; ``MAX_WANDER``)."""
    out = offsets.copy()
    rot = _rotation_dims()
    rms = motion_rms(vectors)[rot][::3]  # (J,)
    off = out[..., rot].reshape(offsets.shape[0], offsets.shape[1], -1, 3)
    wander = off - off.mean(1, keepdims=True)
    wander_rms = np.sqrt((np.linalg.norm(wander, axis=-1) ** 2).mean(1))  # (N, J)
    scale = np.minimum(1.0, limit * rms[None] / np.maximum(wander_rms, 1e-12))
    off = off.mean(1, keepdims=True) + wander * scale[:, None, :, None]
    out[..., rot] = off.reshape(offsets.shape[0], offsets.shape[1], -1)
    return out


def hinge_only(offsets: np.ndarray) -> np.ndarray:
    """Offsets (..., 256) with the knees' and elbows' rotation kept to their hinge axis (``layout.HINGE_AXES``):
    a variation bends them more or less, never sideways or twisted."""
    out = offsets.copy()
    for name, axis in layout.HINGE_AXES.items():
        sl = layout.joint_vector_slice(name)
        ax = np.asarray(axis, dtype=out.dtype)
        out[..., sl] = (out[..., sl] @ ax)[..., None] * ax
    return out


def pose_prior_sampler(prior: Prior, vectors: np.ndarray, present: np.ndarray, fixed: np.ndarray, n: int,
                       strength: float, seed: int, fps: float, steps: int = DDIM_STEPS,
                       progress: Callable | None = None, cancel: Callable | None = None) -> np.ndarray:
    """N varied takes (N, F, 256) from the pose prior: anchors varied by DDIM with one noise per variation, the
    per-joint offsets interpolated and low-passed (module docstring). ``present`` (256,) the dims the take has,
    ``fixed`` (256,) the dims to keep; ``steps`` DDIM steps at strength 1 (scaled by the strength)."""
    from ..core.sampling import ddim

    frames = len(vectors)
    anchors = anchor_frames(frames, fps)
    a = len(anchors)
    raw = torch.from_numpy(vectors[anchors].astype(np.float32)).to(prior.device)
    x0 = prior.normalize(raw).repeat(n, 1)  # variation-major: rows i*A .. (i+1)*A - 1
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, 1, layout.DIM), generator=gen).expand(n, a, layout.DIM).reshape(n * a, -1)
    part_mask = torch.from_numpy(layout.part_mask_from_dims(present[None])).to(prior.device).expand(n * a, -1)
    keep = torch.from_numpy(fixed | ~present).to(prior.device).expand(n * a, -1)
    x = ddim(prior, n * a, steps=ddim_steps(steps, strength), x0=x0, t_start=strength, fixed=keep,
             mask=None if part_mask.all() else part_mask, noise=noise.to(prior.device), progress=progress,
             cancel=cancel)
    varied = torch.where(keep, raw.repeat(n, 1), prior.denormalize(x)).cpu().numpy().astype(np.float64)
    off = rotation_offsets(np.tile(vectors[anchors].astype(np.float64), (n, 1)), varied).reshape(n, a, -1)
    off = bound_wander(hinge_only(smooth_offsets(off, anchors, frames, OFFSET_SIGMA_S * fps)), vectors)
    return apply_offsets(vectors.astype(np.float64), off)


def vary_clip(prior: Prior, take: dict, n: int, strength: float = 0.3, seed: int = 0, lock=(),
              fps: float | None = None, steps: int = DDIM_STEPS, sampler: Sampler | None = None,
              progress: Callable | None = None, cancel: Callable | None = None) -> TaskResult:
    """``n`` variations of a take (F frames): every key of the result is (n, F, D); ``trans`` (n, F, 3) when the
    take has one, each variation's own (planted feet kept planted). ``strength`` 0 = the take, higher = more
    different (the single-pose vary's noise level). ``lock`` joints, the root orientation and keys absent from
    the take are kept exactly. ``sampler`` (default :func:`pose_prior_sampler`) makes the raw variations."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ps = data.from_smplx_dict(take)
    if len(ps) < 2:
        raise ValueError(f"a take needs at least 2 frames, got {len(ps)}; vary one pose without clip")
    fps = DEFAULT_FPS if fps is None else float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    present = ps.present.all(0)
    fixed = np.zeros(layout.DIM, bool)
    if lock:
        fixed[layout.names_to_dims(lock)] = True
    vectors = ps.vectors.astype(np.float64)
    orient = ps.extras.get("global_orient", np.zeros((len(ps), 3), np.float32))
    if strength == 0.0:
        varied = np.broadcast_to(vectors, (n,) + vectors.shape).copy()
    else:
        sampler = sampler or pose_prior_sampler
        varied = sampler(prior, ps.vectors, present, fixed, n, strength, seed, fps, steps=steps, progress=progress,
                         cancel=cancel)
    keep = fixed | ~present
    fields = {}
    if "trans" in ps.extras and strength > 0:
        trans = ps.extras["trans"].astype(np.float64)
        varied = plant_feet(vectors, orient.astype(np.float64), trans, varied, ~keep, fps, motion_rms(vectors), cancel)
        # the legs' IK correction may not make a joint wander off its motion more than the sampler may
        off = rotation_offsets(np.broadcast_to(vectors, varied.shape), varied)
        varied = apply_offsets(vectors, bound_wander(off, vectors))
        fields["trans"] = root_translation(vectors, orient.astype(np.float64), trans, varied, fps).astype(np.float32)
    elif "trans" in ps.extras:
        fields["trans"] = np.broadcast_to(ps.extras["trans"], (n, len(ps), 3)).copy()
    varied = np.where(keep, vectors[None], varied).astype(np.float32)  # locked and absent dims bit-exact
    pose = layout.vectors_to_dict(varied.reshape(n * len(ps), -1), np.tile(orient, (n, 1)))
    pose = {k: v.reshape(n, len(ps), -1) for k, v in pose.items()
            if k == "global_orient" or present[layout.KEY_SLICES[k]].all()}
    return TaskResult(pose, **fields)
