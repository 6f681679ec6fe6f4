"""Feet on the ground for varied takes: foot contacts of a take, and keeping a variation's planted feet planted.

A take with a translation gives world foot positions (built-in skeleton, +Y up). A foot joint is planted where it
is near its lowest height in the take and slow (:func:`foot_contacts`). A variation changes the legs, so its feet
would slide. :func:`plant_feet` bends the variation's free leg joints (hips, ankles, and the knees about their
hinge axis only) by the least, smoothest amount that keeps each planted foot joint where the variation had it when
the contact started, moved as the take's moves since (:func:`footprints`), at the take's height (soft contact
weights, so no pops where a contact starts or ends). :func:`root_translation` then moves each variation's root so
its planted feet move as the take's (a longer stride travels further instead of sliding the feet).
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.torch_rotations import axis_angle_to_matrix
from ..spec import layout
from ..spec.skeleton import REST_OFFSETS
from .temporal import lowpass

# A foot joint within CONTACT_HEIGHT_M of its lowest height in the take and moving slower than CONTACT_SPEED_MS
# (m/s) is planted.
CONTACT_HEIGHT_M = 0.05
CONTACT_SPEED_MS = 0.5
SIDES = ("left", "right")
CHAIN = ("hip", "knee", "ankle", "foot")  # foot = the toes joint
FEET = tuple(f"{s}_{j}" for s in SIDES for j in ("ankle", "foot"))
LEGS = tuple(f"{s}_{j}" for s in SIDES for j in ("hip", "knee", "ankle"))  # the joints the IK bends
CONTACT_SIGMA_S = 0.05  # soft contact weights: the 0/1 contacts low-passed (s)
IK_STEPS = 60  # L-BFGS iterations (a least-squares problem: converges in tens)
IK_FOOT_WEIGHT = 1e4  # per m^2 of planted-foot error (1 cm off costs 1) ...
IK_KEEP_WEIGHT = 1.0  # ... per rad^2 of leg change (0.1 rad costs 0.01) ...
IK_SMOOTH_WEIGHT = 100.0  # ... per rad^2 of frame-to-frame change of the leg correction ...
IK_WANDER_WEIGHT = 4.0  # ... per (the correction's wander about its mean / the joint's motion in the take)^2
MIN_MOTION = 0.01  # radians: the motion a still joint is treated as having


def _leg_feet(vectors: torch.Tensor, orient: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """World positions (rows, 4, 3) of ``FEET`` from 256-D vectors (rows, 256): forward kinematics of the two
    leg chains only (pelvis -> hip -> knee -> ankle -> toes), differentiable."""
    off = torch.as_tensor(REST_OFFSETS, dtype=vectors.dtype, device=vectors.device)
    G = axis_angle_to_matrix(orient)
    pelvis = off[0] + trans
    out = []
    for side in SIDES:
        g, p = G, pelvis
        for k, j in enumerate(CHAIN):
            name = f"{side}_{j}"
            p = p + (g @ off[layout.JOINT_INDEX[name]].unsqueeze(-1)).squeeze(-1)
            if name in FEET:
                out.append(p)
            if k < len(CHAIN) - 1:
                g = g @ axis_angle_to_matrix(vectors[:, layout.joint_vector_slice(name)])
    return torch.stack(out, 1)


def _ik_dims(joint: str) -> np.ndarray:
    """Vector dims the IK may change for a leg joint: all three, or for a hinge (knee) its flexion axis only."""
    dims = np.arange(layout.DIM)[layout.joint_vector_slice(joint)]
    axis = layout.HINGE_AXES.get(joint)
    return dims if axis is None else dims[np.flatnonzero(axis)]


def foot_positions(vectors: np.ndarray, orient: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """World positions (..., F, 4, 3) of the ankles and toes (``FEET``) of vectors (..., F, 256)."""
    shape = vectors.shape[:-1]
    v = torch.from_numpy(vectors.reshape(-1, layout.DIM).astype(np.float64))
    o = torch.from_numpy(np.broadcast_to(orient, shape + (3,)).reshape(-1, 3).astype(np.float64))
    t = torch.from_numpy(np.broadcast_to(trans, shape + (3,)).reshape(-1, 3).astype(np.float64))
    with torch.no_grad():
        return _leg_feet(v, o, t).numpy().reshape(shape + (len(FEET), 3))


def foot_contacts(feet: np.ndarray, fps: float) -> np.ndarray:
    """(F, 4) planted foot joints of one take's foot positions (F, 4, 3): near the lowest height, and slow."""
    h = feet[..., 1]
    low = h <= h.min(0, keepdims=True) + CONTACT_HEIGHT_M
    v = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps
    speed = np.concatenate([v[:1], np.minimum(v[1:], v[:-1]), v[-1:]], 0) if len(v) > 1 else np.zeros_like(h)
    return low & (speed < CONTACT_SPEED_MS)


def root_shift(ref: np.ndarray, var: np.ndarray, contacts: np.ndarray, fps: float) -> np.ndarray:
    """(N, F, 3) translation shifts for variations whose feet are ``var`` (N, F, 4, 3), the take's ``ref``.

    Horizontally the planted feet of a variation move as the take's (the mean step of the foot joints planted on
    both frames; unchanged between contacts), starting from the take's feet at the first contact: a variation with
    a longer stride travels further instead of sliding its feet. Vertically the planted feet are put at the take's
    heights on average (interpolated between contacts, low-passed over ``CONTACT_SIGMA_S``)."""
    w = contacts.astype(np.float64)
    gap = ref[None] - var
    n, f = var.shape[:2]
    first = int(np.nonzero(contacts.any(1))[0][0])
    both = w[1:] * w[:-1]
    step = (np.diff(gap, axis=1) * both[None, :, :, None]).sum(2) / np.maximum(both.sum(1), 1)[None, :, None]
    shift = np.zeros((n, f, 3))
    start = (gap[:, first] * w[first][None, :, None]).sum(1) / w[first].sum()
    shift[:, :first + 1] = start[:, None]
    shift[:, first + 1:] = start[:, None] + np.cumsum(step[:, first:], axis=1)
    has = w.sum(1) > 0
    height = (gap[..., 1] * w[None]).sum(2) / np.maximum(w.sum(1), 1)[None]
    t = np.arange(f)
    for i in range(n):
        shift[i, :, 1] = np.interp(t, t[has], height[i, has])
    shift[..., 1] = lowpass(torch.from_numpy(shift[..., 1:2]), CONTACT_SIGMA_S * fps).numpy()[..., 0]
    return shift


def footprints(ref: np.ndarray, var: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Where the planted feet of the variations (N, F, 4, 3) should be: each foot joint, through each contact of
    the take, where the variation has it when the contact starts, moved as the take's moves since (so it slides no
    more than the take's); at the take's height."""
    out = var.copy()
    f = len(ref)
    for j in range(ref.shape[1]):
        c = contacts[:, j]
        starts = np.flatnonzero(c & ~np.r_[False, c[:-1]])
        for a in starts:
            b = a + int(np.argmin(c[a:])) if not c[a:].all() else f
            out[:, a:b, j] = var[:, a:a + 1, j] + (ref[None, a:b, j] - ref[None, a:a + 1, j])
        out[:, c, j, 1] = ref[c, j, 1]
    return out


def root_translation(take: np.ndarray, orient: np.ndarray, trans: np.ndarray, varied: np.ndarray,
                     fps: float) -> np.ndarray:
    """(N, F, 3) translations of the varied takes (N, F, 256) that keep their planted feet moving as the take's
    (:func:`root_shift`); the take's translation where it has no contacts."""
    ref = foot_positions(take, orient, trans)
    contacts = foot_contacts(ref, fps)
    if not contacts.any():
        return np.broadcast_to(trans, varied.shape[:2] + (3,)).copy()
    return trans[None] + root_shift(ref, foot_positions(varied, orient, trans), contacts, fps)


def plant_feet(take: np.ndarray, orient: np.ndarray, trans: np.ndarray, varied: np.ndarray, free: np.ndarray,
               fps: float, motion: np.ndarray | None = None, cancel=None) -> np.ndarray:
    """Varied takes (N, F, 256) of a take (F, 256) with ``orient`` / ``trans`` (F, 3), the ``free`` (256,) dims
    of their leg joints bent by a small IK so planted feet stay planted (module docstring); unchanged without
    contacts. ``motion`` (256,): each joint's motion in the take (RMS radians): the IK's correction of a joint
    wanders over time at a cost of ``IK_WANDER_WEIGHT`` per (wander / motion)^2, so the joints that move little in
    the take keep moving like the take's. ``cancel()`` is polled every IK iteration (``Cancelled`` when true).
    Their translations: :func:`root_translation` of the result."""
    ref = foot_positions(take, orient, trans)
    contacts = foot_contacts(ref, fps)
    n, f = varied.shape[:2]
    if not contacts.any():
        return varied
    new_trans = trans[None] + root_shift(ref, foot_positions(varied, orient, trans), contacts, fps)
    goal = footprints(ref, foot_positions(varied, orient, new_trans), contacts)
    dims = np.concatenate([_ik_dims(j) for j in LEGS])
    dims = dims[free[dims]]
    if len(dims) == 0:
        return varied
    w = lowpass(torch.from_numpy(contacts.astype(np.float64)[None]), CONTACT_SIGMA_S * fps)[0]  # (F, 4) soft
    w = w.repeat(n, 1).float()
    x = torch.from_numpy(varied.reshape(n * f, -1).astype(np.float32))
    o = torch.from_numpy(np.tile(orient.astype(np.float32), (n, 1)))
    t = torch.from_numpy(new_trans.reshape(n * f, 3).astype(np.float32))
    target = torch.from_numpy(goal.reshape(n * f, len(FEET), 3).astype(np.float32))
    idx = torch.from_numpy(dims)
    delta = torch.zeros(n * f, len(dims), dtype=x.dtype, requires_grad=True)
    rms = np.full(len(dims), np.inf) if motion is None else motion[dims]
    steady = torch.from_numpy((IK_WANDER_WEIGHT / np.maximum(rms, MIN_MOTION) ** 2).astype(np.float32))
    opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=IK_STEPS, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        if cancel is not None and cancel():
            from ..core.solver import Cancelled

            raise Cancelled("cancelled while planting the feet")
        opt.zero_grad()
        v = x.index_add(1, idx, delta)
        err = ((_leg_feet(v, o, t) - target) ** 2).sum(-1)
        d = delta.view(n, f, -1)
        loss = (IK_FOOT_WEIGHT * (w * err).sum() + IK_KEEP_WEIGHT * (delta ** 2).sum()
                + IK_SMOOTH_WEIGHT * ((d[:, 1:] - d[:, :-1]) ** 2).sum()
                + (steady * (d - d.mean(1, keepdim=True)) ** 2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        out = varied.copy()
        out.reshape(n * f, -1)[:, dims] += delta.double().numpy()
    return out
