"""The whole-body score network: per-part time-conditioned residual MLPs plus a fusion MLP, driven by part masks.

One class covers every part. Parts are body (63), hand (45, shared by both hands: the left hand arrives
mirrored into right-hand convention by the normaliser) and face (jaw 3 + expression 100). The fusion module reads
the parts' first-layer features (hidden parts zeroed, plus the mask bits) and adds a zero-initialised residual to
the concatenated part outputs, so it learns cross-part dependencies (hands given body). The network predicts the
noise eps of x_t = alpha_t x_0 + sigma_t eps in normalised pose space, as a learned residual on top of the exact
answer for unit-Gaussian data, sigma_t / (alpha_t^2 + sigma_t^2) * x_t (the data are z-scored, so this is a
sensible baseline; without it the normalised MLP cannot carry the scale of x_t and fails at large t).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..spec import layout
from .sde import alpha_sigma

PART_DIMS = {"body": 63, "hand": 45, "face": 103}


@dataclass
class NetConfig:
    body_width: int = 512
    hand_width: int = 512
    face_width: int = 256
    fusion_width: int = 256
    time_dim: int = 128
    blocks: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of the time label 999 t (as in DPoser-X)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = (999.0 * t.float())[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm for (N, C) features, computed as a layer norm over (N, groups, C / groups) plus the per-channel
    affine: the same function and parameters, but torch's CPU layer-norm kernel is about 1.5x faster than its
    group-norm kernel at solver batch sizes (1,000 frames), where normalisation was a fifth of the network time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape
        g = self.num_groups
        y = nn.functional.layer_norm(x.reshape(n, g, c // g), (c // g,), eps=self.eps).reshape(n, c)
        return torch.addcmul(self.bias, y, self.weight)


def _norm(width: int) -> GroupNorm:
    return GroupNorm(min(32, width // 8), width)


class TimeDense(nn.Module):
    """act(norm(Linear(h) + Linear(temb))), then dropout."""

    def __init__(self, d_in: int, d_out: int, time_dim: int, dropout: float):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)
        self.time = nn.Linear(time_dim, d_out)
        self.norm = _norm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, temb, time_bias=None):
        """``time_bias``: this layer's time projection self.time(temb), when precomputed (ScoreNet.time_biases)."""
        tb = self.time(temb) if time_bias is None else time_bias
        return self.drop(nn.functional.silu(self.norm(self.lin(h) + tb)))


class ResidualMLP(nn.Module):
    """Input layer, ``blocks`` residual blocks of two TimeDense layers, linear output."""

    def __init__(self, d_in: int, width: int, d_out: int, time_dim: int, blocks: int, dropout: float):
        super().__init__()
        self.inp = TimeDense(d_in, width, time_dim, dropout)
        self.blocks = nn.ModuleList(
            nn.ModuleList([TimeDense(width, width, time_dim, dropout), TimeDense(width, width, time_dim, dropout)])
            for _ in range(blocks))
        self.out = nn.Linear(width, d_out)

    def time_layers(self) -> list[TimeDense]:
        return [self.inp] + [layer for pair in self.blocks for layer in pair]

    def features(self, x, temb, time_biases=None):
        return self.inp(x, temb, None if time_biases is None else time_biases[0])

    def head(self, h, temb, time_biases=None):
        tb = time_biases[1:] if time_biases is not None else [None] * (2 * len(self.blocks))
        for i, (a, b) in enumerate(self.blocks):
            h = h + b(a(h, temb, tb[2 * i]), temb, tb[2 * i + 1])
        return self.out(h)


class ScoreNet(nn.Module):
    """eps-prediction network over the 256-D normalised whole-body vector.

    ``forward(x, t, part_mask, outputs)``: x (N, 256), t (N,) in (0, 1], part_mask (N, 4) bool for body, left
    hand, right hand, face (None = all visible). Hidden parts are zeroed at the input and in the fusion features.
    ``outputs``: four bools, the parts whose predicted noise the caller uses (None = all); the part heads of the
    others are skipped and their output dims hold only the cheap terms, so they must be ignored. The solvers pass
    it when they hold parts fixed: one-frame hand completion skips the body and face heads, about half the work.
    ``time_biases``: the layers' time projections for this t, precomputed by :meth:`time_biases` (the solvers
    compute them for every step of their schedule in one batched product; at batch 1 the per-layer projections
    are a quarter of the network's time).
    """

    def __init__(self, cfg: NetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or NetConfig()
        e = cfg.time_dim
        self.time_embed = nn.Sequential(nn.Linear(e, e), nn.SiLU())
        self.body = ResidualMLP(63, cfg.body_width, 63, e, cfg.blocks, cfg.dropout)
        self.hand = ResidualMLP(45, cfg.hand_width, 45, e, cfg.blocks, cfg.dropout)
        self.face = ResidualMLP(103, cfg.face_width, 103, e, cfg.blocks, cfg.dropout)
        feat = cfg.body_width + 2 * cfg.hand_width + cfg.face_width + 4
        self.fusion = ResidualMLP(feat, cfg.fusion_width, cfg.fusion_width, e, cfg.blocks, cfg.dropout)
        self.fusion_out = nn.Linear(cfg.fusion_width, layout.DIM)
        nn.init.zeros_(self.fusion_out.weight)
        nn.init.zeros_(self.fusion_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, part_mask: torch.Tensor | None = None,
                outputs: tuple[bool, bool, bool, bool] | None = None,
                time_biases: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        n = x.shape[0]
        want_body, want_left, want_right, want_face = outputs or (True, True, True, True)
        if part_mask is None:
            part_mask = torch.ones(n, 4, dtype=torch.bool, device=x.device)
        m = part_mask.to(x.dtype)
        # the solvers and samplers use one t for the whole batch: embed it once and let every time projection
        # broadcast, instead of projecting n identical rows in each layer
        shared_t = n == 1 or bool((t == t[0]).all())
        if time_biases is None:
            temb = self.time_embed(timestep_embedding(t[:1] if shared_t else t, self.cfg.time_dim).to(x.dtype))
            temb2 = temb if shared_t else torch.cat([temb, temb])
            tb = dict.fromkeys(("body", "hand", "face", "fusion"))
        else:
            temb = temb2 = None
            tb = dict(time_biases)
            if not shared_t:
                tb["hand"] = [torch.cat([b, b]) for b in tb["hand"]]
        xb, xl, xr, xf = (x[:, layout.PART_SLICES[p]] for p in layout.PARTS)
        xb, xl, xr, xf = xb * m[:, 0:1], xl * m[:, 1:2], xr * m[:, 2:3], xf * m[:, 3:4]
        hb = self.body.features(xb, temb, tb["body"])
        hh = self.hand.features(torch.cat([xl, xr]), temb2, tb["hand"])
        hl, hr = hh[:n], hh[n:]
        hf = self.face.features(xf, temb, tb["face"])
        out = torch.cat([
            self.body.head(hb, temb, tb["body"]) if want_body else xb.new_zeros(n, 63),
            *(self.hand.head(hh, temb2, tb["hand"]) if want_left or want_right else xl.new_zeros(2 * n, 45)).split(n),
            self.face.head(hf, temb, tb["face"]) if want_face else xf.new_zeros(n, 103),
        ], dim=1)
        fused = torch.cat([hb * m[:, 0:1], hl * m[:, 1:2], hr * m[:, 2:3], hf * m[:, 3:4], m], dim=1)
        f = self.fusion.head(self.fusion.features(fused, temb, tb["fusion"]), temb, tb["fusion"])
        a, s = alpha_sigma(t.float())
        gaussian_eps = (s / (a * a + s * s))[:, None] * torch.cat([xb, xl, xr, xf], dim=1)
        return gaussian_eps + out + self.fusion_out(f)

    def time_biases(self, t: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every layer's time projection for the times t (m,): per module, one (m, width) tensor per layer.
        Row i, sliced to (1, width), is what :meth:`forward` computes for a batch sharing t[i]."""
        temb = self.time_embed(timestep_embedding(t, self.cfg.time_dim).to(self.time_embed[0].weight.dtype))
        return {name: [layer.time(temb) for layer in getattr(self, name).time_layers()]
                for name in ("body", "hand", "face", "fusion")}


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
