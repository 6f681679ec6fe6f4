"""How well variations of a take keep the action (``dposer bench vary`` and the tests): smoothness, speed,
distance from the take and between variations, correlation of each moving joint with the take, foot skating,
joint-limit breaks; and the free answer to beat (the take plus smooth random offsets per joint).

Joint rotations are compared as rotations (geodesic angles, degrees) over the take's present rotation joints
(body, hands, jaw), never the root orientation.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.torch_rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..spec import layout
from ..tasks.feet import foot_contacts, foot_positions
from ..tasks.temporal import lowpass
from ..tasks.vary_clip import OFFSET_SIGMA_S, apply_offsets

MOVING_DEG = 5.0  # a joint "moves" in a take when its rotation's RMS angle about its mean rotation exceeds this
PLAUSIBILITY_FRAMES = 240  # frames of a take (evenly spread) scored by the prior


def rotation_joints(present: np.ndarray) -> list[str]:
    """Vector joints (body, hands, jaw) whose three dims the take holds."""
    return [j for j in layout.VECTOR_JOINTS if present[layout.joint_vector_slice(j)].all()]


def _matrices(vectors: np.ndarray, joints: list[str]) -> torch.Tensor:
    """(..., F, 256) -> (..., F, J, 3, 3) float64."""
    aa = np.stack([vectors[..., layout.joint_vector_slice(j)] for j in joints], -2)
    return axis_angle_to_matrix(torch.from_numpy(aa.astype(np.float64)))


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Geodesic angle (degrees) between rotation matrices a and b (broadcast)."""
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return np.degrees(torch.arccos(cos.clamp(-1, 1)).numpy())


def steps_deg(vectors: np.ndarray, joints: list[str]) -> np.ndarray:
    """Frame-to-frame joint steps (..., F-1, J) in degrees."""
    R = _matrices(vectors, joints)
    return _angle_deg(R[..., :-1, :, :, :], R[..., 1:, :, :, :])


def _log_about_mean(R: torch.Tensor, mean: torch.Tensor) -> np.ndarray:
    return matrix_to_axis_angle(mean.transpose(-1, -2) @ R).numpy()


def _mean_rotation(R: torch.Tensor) -> torch.Tensor:
    """Chordal mean over frames of (F, J, 3, 3) -> (J, 3, 3)."""
    u, _, vt = torch.linalg.svd(R.mean(0))
    d = torch.det(u @ vt)
    fix = torch.ones_like(u[..., 0])
    fix[..., -1] = d
    return u @ torch.diag_embed(fix) @ vt


def correlations(take: np.ndarray, varied: np.ndarray, joints: list[str]) -> tuple[np.ndarray, list[str]]:
    """(N, M) correlation of each moving joint's motion (rotation log about the take's mean rotation of that
    joint, the three components pooled) between each variation and the take, and the M moving joints."""
    Rt = _matrices(take, joints)
    mean = _mean_rotation(Rt)
    xt = _log_about_mean(Rt, mean)  # (F, J, 3)
    rms = np.degrees(np.sqrt((np.linalg.norm(xt - xt.mean(0), axis=-1) ** 2).mean(0)))
    moving = np.nonzero(rms > MOVING_DEG)[0]
    xv = _log_about_mean(_matrices(varied, joints), mean)  # (N, F, J, 3)
    a = (xt - xt.mean(0))[:, moving]
    b = (xv - xv.mean(1, keepdims=True))[:, :, moving]
    num = (a[None] * b).sum((1, 3))
    den = np.sqrt((a ** 2).sum((0, 2))[None] * (b ** 2).sum((1, 3))) + 1e-12
    return num / den, [joints[m] for m in moving]


def skating(vectors: np.ndarray, orient: np.ndarray, trans: np.ndarray, contacts: np.ndarray, fps: float) -> float:
    """Mean horizontal speed (m/s) of the feet on the frames the take has them planted (``contacts`` (F, 4))."""
    feet = foot_positions(vectors, orient, trans)  # (..., F, 4, 3)
    v = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=-3), axis=-1) * fps  # (..., F-1, 4)
    c = contacts[1:] & contacts[:-1]
    return float(v[..., c].mean()) if c.any() else 0.0


def hinge_breaks(vectors: np.ndarray) -> float:
    """Fraction of (frame, hinge joint) cells bent backwards past ``layout.HYPEREXTENSION_LIMIT``."""
    out = []
    for name, axis in layout.HINGE_AXES.items():
        bend = vectors[..., layout.joint_vector_slice(name)] @ np.asarray(axis)
        out.append(-bend > layout.HYPEREXTENSION_LIMIT[name])
    return float(np.mean(out))


def off_hinge_deg(vectors: np.ndarray) -> float:
    """Mean rotation of the knees and elbows off their hinge axis (degrees): sideways bending and twist."""
    out = []
    for name, axis in layout.HINGE_AXES.items():
        aa = vectors[..., layout.joint_vector_slice(name)]
        ax = np.asarray(axis)
        out.append(np.linalg.norm(aa - (aa @ ax)[..., None] * ax, axis=-1))
    return float(np.degrees(np.mean(out)))


def free_answer(take: np.ndarray, free: np.ndarray, n: int, distance_deg: float, fps: float, seed: int = 0,
                present: np.ndarray | None = None) -> np.ndarray:
    """The take plus smooth random per-joint rotation offsets (white noise low-passed like the variations'
    offsets), scaled so the mean distance from the take is ``distance_deg``: (N, F, 256). ``free`` (256,) the
    dims that may change. (A joint's distance from the take is the angle of its offset, so the scale is exact.)"""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, len(take), layout.DIM))
    off = lowpass(torch.from_numpy(noise), OFFSET_SIGMA_S * fps).numpy() * free
    joints = rotation_joints(free if present is None else present & free)
    all_joints = rotation_joints(np.ones(layout.DIM, bool) if present is None else present)
    angle = np.stack([np.linalg.norm(off[..., layout.joint_vector_slice(j)], axis=-1) for j in joints], -1)
    scale = np.radians(distance_deg) * len(all_joints) / len(joints) / angle.mean()
    return apply_offsets(take, off * scale)


def mean_distance(take: np.ndarray, varied: np.ndarray, joints: list[str]) -> float:
    return float(_angle_deg(_matrices(take, joints), _matrices(varied, joints)).mean())


def pairwise_distance(varied: np.ndarray, joints: list[str]) -> float:
    R = _matrices(varied, joints)
    n = len(varied)
    d = [_angle_deg(R[i], R[j]).mean() for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(d)) if d else 0.0


def measure(take: np.ndarray, varied: np.ndarray, present: np.ndarray, fps: float, orient=None, trans=None,
            var_trans=None, prior=None) -> dict:
    """Every number of the bench for one take (F, 256) and its variations (N, F, 256). ``var_trans`` (N, F, 3)
    the variations' translations (default the take's). With ``prior``, the prior's plausibility residual of
    ``PLAUSIBILITY_FRAMES`` of the frames (lower = more plausible; ``dposer.solver.plausibility``)."""
    joints = rotation_joints(present)
    st, sv = steps_deg(take, joints), steps_deg(varied, joints)
    corr, moving = correlations(take, varied, joints)
    out = {
        "frames": len(take), "joints": len(joints), "moving_joints": len(moving),
        "p99_step_take": float(np.percentile(st, 99)), "p99_step": float(np.percentile(sv, 99, axis=(1, 2)).max()),
        "speed_ratio": [float(sv[i].mean() / max(st.mean(), 1e-9)) for i in range(len(varied))],
        "distance": mean_distance(take, varied, joints), "pairwise": pairwise_distance(varied, joints),
        "min_corr": float(corr.min()) if corr.size else 1.0,
        "mean_corr": float(corr.mean()) if corr.size else 1.0,
        "hinge_breaks_take": hinge_breaks(take), "hinge_breaks": hinge_breaks(varied),
        "off_hinge_take": off_hinge_deg(take), "off_hinge": off_hinge_deg(varied),
    }
    if trans is not None:
        orient = np.zeros((len(take), 3)) if orient is None else orient
        contacts = foot_contacts(foot_positions(take, orient, trans), fps)
        vt = np.broadcast_to(trans, varied.shape[:-1] + (3,)) if var_trans is None else var_trans
        out["contact_frames"] = float(contacts.any(1).mean())
        out["skate_take"] = skating(take, orient, trans, contacts, fps)
        out["skate"] = float(np.mean([skating(varied[i], orient, vt[i], contacts, fps) for i in range(len(varied))]))
    if prior is not None:
        from ..core.solver import plausibility

        dims = torch.from_numpy(present).to(prior.device)
        part_mask = torch.from_numpy(layout.part_mask_from_dims(present[None])).to(prior.device)

        rows = np.linspace(0, len(take) - 1, min(len(take), PLAUSIBILITY_FRAMES)).round().astype(int)

        def score(v):
            v = v[..., rows, :]
            x = prior.normalize(torch.from_numpy(v.reshape(-1, layout.DIM).astype(np.float32)).to(prior.device))
            pm = None if part_mask.all() else part_mask.expand(len(x), -1)
            return float(plausibility(prior, x, seed=0, part_mask=pm, dims=dims).mean())

        out["plaus_take"], out["plaus"] = score(take), score(varied)
    return out
