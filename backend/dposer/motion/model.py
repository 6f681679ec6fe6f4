"""The motion prior's network, its noise schedule, the interpolation it refines, and the sampler.

A window is W frames at :data:`dposer.motion.take.RATE` of the root orientation and 21 body joints. Every
(frame, joint) cell is observed or missing (the mask). The interpolation ``base`` fills each missing cell of a
joint by SLERP between that joint's nearest observed frames (holding the nearest one past the last observed
frame; the identity where the joint is never observed). The network denoises the *residual* r = x - base (6D
rotations, scaled by ``resid_scale``) on the missing cells: a zero residual is the interpolation itself
(Delta-interpolator). Its input per frame is the noisy residual, the base and the mask (CondMDI-style); it predicts
the clean residual (x0). Each window is turned about the vertical so that the base's root faces +Z at its middle
frame (the heading is no information about how a body moves).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..core.model import count_parameters  # noqa: F401 (part of this module's API)
from ..core.torch_rotations import matrix_to_rot6d, quaternion_to_matrix, rot6d_to_matrix

NJ = 22


@dataclass
class MotionConfig:
    frames: int = 96  # window length at the internal rate (3.2 s at 30 fps)
    width: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 512
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule, zero terminal SNR at t = 1 (pure noise there)."""
    return torch.cos(0.5 * math.pi * t.clamp(0, 1)) ** 2


class MotionNet(nn.Module):
    """Transformer encoder over frames: (noisy residual, base, mask, t) -> clean residual (B, W, 22, 6)."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.inp = nn.Linear(NJ * 6 * 2 + NJ, w)
        self.pos = nn.Parameter(torch.randn(cfg.frames, w) * 0.02)
        self.temb = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        layer = nn.TransformerEncoderLayer(w, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.enc = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, NJ * 6)
        nn.init.zeros_(self.out.weight)  # a fresh network answers the interpolation
        nn.init.zeros_(self.out.bias)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.cfg.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        a = (t.float() * 1000.0)[:, None] * freqs[None]
        return self.temb(torch.cat([a.sin(), a.cos()], 1))

    def forward(self, r_t, base, mask, t):
        b, w = r_t.shape[:2]
        h = self.inp(torch.cat([r_t.reshape(b, w, -1), base.reshape(b, w, -1), mask.float()], -1))
        h = h + self.pos[:w] + self.time_embedding(t)[:, None]
        h = self.norm(self.enc(h))
        return self.out(h).reshape(b, w, NJ, 6) * mask[..., None]  # observed cells: zero residual


# ---------------------------------------------------------------------------------------------------------
# Interpolation (the base) and the heading frame

def _slerp(q0, q1, w):
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    s = torch.sin(theta)
    small = s < 1e-6
    a = torch.where(small, 1 - w, torch.sin((1 - w) * theta) / torch.where(small, torch.ones_like(s), s))
    c = torch.where(small, w, torch.sin(w * theta) / torch.where(small, torch.ones_like(s), s))
    q = a * q0 + c * q1
    return q / q.norm(dim=-1, keepdim=True)


def slerp_base(quat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Interpolation of the missing cells: quat (B, W, J, 4) (w, x, y, z), mask (B, W, J) True = missing.
    Each missing cell SLERPs between its joint's observed frames around it; past the first / last observed frame
    it holds that frame; a joint never observed gets the identity. Observed cells are returned unchanged."""
    b, w, j, _ = quat.shape
    obs = ~mask
    idx = torch.arange(w, device=quat.device)[None, :, None].expand(b, w, j)
    prev = torch.where(obs, idx, torch.full_like(idx, -1)).cummax(1).values
    nxt = torch.where(obs, idx, torch.full_like(idx, w)).flip(1).cummin(1).values.flip(1)
    has_p, has_n = prev >= 0, nxt < w
    p = torch.where(has_p, prev, torch.where(has_n, nxt, torch.zeros_like(prev)))
    n = torch.where(has_n, nxt, p)
    qp = torch.gather(quat, 1, p[..., None].expand(-1, -1, -1, 4))
    qn = torch.gather(quat, 1, n[..., None].expand(-1, -1, -1, 4))
    span = (n - p).clamp(min=1).float()
    wt = ((idx - p).float() / span).clamp(0, 1)[..., None]
    out = _slerp(qp, qn, wt)
    none = ~(has_p | has_n)
    ident = torch.zeros_like(out)
    ident[..., 0] = 1
    out = torch.where(none[..., None], ident, out)
    return torch.where(obs[..., None], quat, out)


def heading_turn(root_mat: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation about +Y that turns the root (B, 3, 3) to face +Z (its forward axis is local +Z)."""
    fwd = root_mat[:, :, 2]
    yaw = torch.atan2(fwd[:, 0], fwd[:, 2])
    c, s = torch.cos(-yaw), torch.sin(-yaw)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, z, s, z, o, z, -s, z, c], 1).reshape(-1, 3, 3)


def prepare(quat: torch.Tensor, mask: torch.Tensor):
    """(x6 truth-or-observed, base6, turn) of windows: quat (B, W, 22, 4), mask (B, W, 22) True = missing.
    Root rotations are turned by ``turn`` (B, 3, 3) so the base faces +Z at the middle frame."""
    base_q = slerp_base(quat, mask)
    base_m = quaternion_to_matrix(base_q)
    x_m = quaternion_to_matrix(quat)
    turn = heading_turn(base_m[:, base_m.shape[1] // 2, 0])
    base_m = base_m.clone()
    x_m = x_m.clone()
    base_m[:, :, 0] = turn[:, None] @ base_m[:, :, 0]
    x_m[:, :, 0] = turn[:, None] @ x_m[:, :, 0]
    return matrix_to_rot6d(x_m), matrix_to_rot6d(base_m), turn


def finish(base6, resid, turn) -> torch.Tensor:
    """Rotation matrices (B, W, 22, 3, 3) in the window's own heading from base + residual (6D)."""
    m = rot6d_to_matrix(base6 + resid)
    m = m.clone()
    m[:, :, 0] = turn.transpose(1, 2)[:, None] @ m[:, :, 0]
    return m


@torch.no_grad()
def sample(net: MotionNet, base6, mask, resid_scale: float, steps: int = 10, noise=None, start: float = 1.0,
           r_start=None):
    """Residual (B, W, 22, 6) by deterministic DDIM over ``steps`` from ``start`` (1 = pure noise) to 0.

    ``noise``: the starting noise (B, W, 22, 6); None = zeros (the deterministic, mean-seeking answer).
    ``r_start``: a residual to re-noise from ``start`` < 1 (variations); None = zeros."""
    m = mask[..., None].float()
    eps0 = torch.zeros_like(base6) if noise is None else noise
    r0 = torch.zeros_like(base6) if r_start is None else r_start / resid_scale
    ts = torch.linspace(start, 0.0, steps + 1)
    ab = alpha_bar(ts[0])
    x = (ab.sqrt() * r0 + (1 - ab).sqrt() * eps0) * m
    x0 = r0
    for i in range(steps):
        t = ts[i].expand(len(base6))
        x0 = net(x, base6, mask, t)
        ab, ab_next = alpha_bar(ts[i]), alpha_bar(ts[i + 1])
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt().clamp(min=1e-4)
        x = (ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps) * m
    return x0 * resid_scale
