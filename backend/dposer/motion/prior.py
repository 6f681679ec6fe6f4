"""The motion prior at inference: :func:`load_motion_prior`, and :meth:`MotionPrior.fill` /
:meth:`MotionPrior.sample_like` on takes of any frame rate (resampled by time to the prior's rate and back)."""
from __future__ import annotations

import json

import numpy as np
import torch

from ..core.torch_rotations import axis_angle_to_quaternion, matrix_to_quaternion, quaternion_to_axis_angle
from .checkpoint import DEFAULT, read_motion
from .take import RATE
from .masks import MAX_GAP
from .model import MotionConfig, MotionNet, _slerp, finish, prepare, sample

EDGE_RAMP = 3.0  # internal frames over which the residual grows from 0 at an observed cell (no pop at the edge)


class MotionPrior:
    def __init__(self, net: MotionNet, resid_scale: float, info: dict | None = None):
        self.net = net.eval()
        self.resid_scale = float(resid_scale)
        self.info = info or {}

    @property
    def frames(self) -> int:
        return self.net.cfg.frames

    # -- windows on a take's own time axis --------------------------------------------------------------

    def window(self, rot: np.ndarray, mask: np.ndarray, fps: float, t0: float, frames: int | None = None):
        """(quat (W, 22, 4), missing (W, 22)) of the take on the internal grid t0 + k / RATE, k < W (default: the
        prior's window). A cell is observed when both source frames around its time are; cells outside the take
        are missing."""
        w = frames or self.frames
        n = len(rot)
        pos = (t0 + np.arange(w) / RATE) * fps
        inside = (pos >= -1e-6) & (pos <= n - 1 + 1e-6)
        pos = np.clip(pos, 0, n - 1)
        i0 = np.floor(pos + 1e-6).astype(int).clip(0, n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        frac = np.where(pos - i0 < 1e-6, 0.0, pos - i0)
        q = axis_angle_to_quaternion(torch.as_tensor(rot, dtype=torch.float32))
        q = _slerp(q[i0], q[i1], torch.as_tensor(frac, dtype=torch.float32)[:, None, None])
        missing = mask[i0] | (mask[i1] & (frac > 0)[:, None]) | ~inside[:, None]
        return q, torch.as_tensor(missing)

    @torch.no_grad()
    def _run(self, quats, missing, steps: int, noise=None, start: float = 1.0):
        """Quaternions (B, W, 22, 4) of the windows with their missing cells filled (residual ramped in from
        the observed cells). ``start`` < 1: the windows' own values are re-noised to that level and denoised
        (variations)."""
        q = torch.stack(quats)
        m = torch.stack(missing)
        x6, b6, turn = prepare(q, m)
        r_start = (x6 - b6) * m[..., None] if start < 1 else None
        r = sample(self.net, b6, m, self.resid_scale, steps=steps, noise=noise, start=start, r_start=r_start)
        r = r * edge_ramp(m)[..., None]
        out = matrix_to_quaternion(finish(b6, r, turn))
        return torch.where(m[..., None], out, q)

    def _at_frames(self, qw, t0: float, frames: np.ndarray, fps: float) -> torch.Tensor:
        """Quaternions (len(frames), 22, 4) of a filled grid ``qw`` (K, 22, 4) at the take's frames (SLERP)."""
        k = (frames / fps - t0) * RATE
        k0 = np.clip(np.floor(k + 1e-6).astype(int), 0, len(qw) - 1)
        k1 = np.minimum(k0 + 1, len(qw) - 1)
        frac = torch.as_tensor(np.clip(k - k0, 0, 1), dtype=torch.float32)[:, None, None]
        return _slerp(qw[k0], qw[k1], frac)

    def region_start(self, first: int, last: int, n: int, fps: float) -> float | None:
        """Start time of the window over missing frames first..last, on a grid through the observed frame before
        them (or after), centred on them where the take allows; None when the gap is longer than trained."""
        span = (min(last + 1, n - 1) - max(first - 1, 0)) / fps * RATE
        if span > MAX_GAP + 1:
            return None
        w = self.frames
        anchor = (first - 1) / fps if first > 0 else (last + 1) / fps
        centre = 0.5 * (first + last) / fps
        t0 = centre - 0.5 * (w - 1) / RATE
        t0 = min(max(t0, 0.0), max(0.0, (n - 1) / fps - (w - 1) / RATE))  # stay inside the take if it can
        return anchor - np.round((anchor - t0) * RATE) / RATE

    # -- the public operations --------------------------------------------------------------------------

    def fill_region(self, rot, mask, fps, first, last, steps: int = 10):
        """Filled quaternions (last - first + 1, 22, 4) of frames first..last, or None when it does not fit."""
        t0 = self.region_start(first, last, len(rot), fps)
        if t0 is None:
            return None
        q, m = self.window(rot, mask, fps, t0)
        qw = self._run([q], [m], steps)[0]
        return self._at_frames(qw, t0, np.arange(first, last + 1), fps)

    def sample_like(self, rot: np.ndarray, fps: float, strength: float = 0.3, seed: int = 0,
                    lock: np.ndarray | None = None, steps: int = 10) -> np.ndarray:
        """A variation (F, 22, 3) of the take ``rot`` (F, 22, 3) at ``fps``: its motion re-noised to ``strength``
        (0 = the take itself, 1 = unrelated motion) and denoised, window by window (each window continues from
        the last one's second half). Cells of ``lock`` (F, 22) keep the take's values exactly."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        rot = np.asarray(rot, np.float64)
        n = len(rot)
        lock = np.zeros((n, 22), bool) if lock is None else np.asarray(lock, bool)
        if strength == 0 or lock.all():
            return rot.copy()
        k_total = int(np.floor((n - 1) / fps * RATE + 1e-6)) + 1
        grid_q, _ = self.window(rot, np.zeros((n, 22), bool), fps, 0.0, frames=k_total)
        _, keep = self.window(rot, ~lock, fps, 0.0, frames=k_total)
        keep = ~keep  # grid cells whose source frames are both locked
        done = torch.zeros(k_total, dtype=torch.bool)
        gen = torch.Generator().manual_seed(seed)
        w, hop = self.frames, self.frames // 2
        s = 0
        while True:
            a = min(s, max(0, k_total - w))
            idx = torch.arange(a, min(a + w, k_total))
            q = torch.zeros(w, 22, 4)
            q[..., 0] = 1
            q[:len(idx)] = grid_q[idx]
            missing = torch.ones(w, 22, dtype=torch.bool)
            missing[:len(idx)] = ~(keep[idx] | done[idx][:, None])
            noise = torch.randn(1, w, 22, 6, generator=gen)
            qw = self._run([q], [missing], steps, noise=noise, start=float(strength))[0]
            grid_q[idx] = qw[:len(idx)]
            done[idx] = True
            if a + w >= k_total:
                break
            s += hop
        out = quaternion_to_axis_angle(self._at_frames(grid_q, 0.0, np.arange(n), fps)).double().numpy()
        out[lock] = rot[lock]
        return out


def edge_ramp(m: torch.Tensor) -> torch.Tensor:
    """(B, W, 22) weight in [0, 1]: distance (frames) of each missing cell to its joint's nearest observed cell,
    over EDGE_RAMP, capped at 1; 1 for a joint never observed."""
    b, w, j = m.shape
    idx = torch.arange(w)[None, :, None].expand(b, w, j)
    obs = ~m
    prev = torch.where(obs, idx, torch.full_like(idx, -10 ** 6)).cummax(1).values
    nxt = torch.where(obs, idx, torch.full_like(idx, 10 ** 6)).flip(1).cummin(1).values.flip(1)
    d = torch.minimum(idx - prev, nxt - idx).float()
    return (d / EDGE_RAMP).clamp(max=1.0)


def load_motion_prior(path=None, device: str = "cpu") -> MotionPrior:
    """The motion prior of ``path`` (default: the bundled ``weights/motion.safetensors``); weights fp32."""
    tensors, meta = read_motion(path or DEFAULT)
    cfg = MotionConfig(**json.loads(meta["net_config"]))
    net = MotionNet(cfg)
    net.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")})
    return MotionPrior(net.to(device), float(meta["resid_scale"]), json.loads(meta.get("info", "{}")))


def random_motion_prior(seed: int = 0, cfg: MotionConfig | None = None) -> MotionPrior:
    """A prior with random weights (its output layer too): for testing the mechanics without a trained file."""
    torch.manual_seed(seed)
    net = MotionNet(cfg or MotionConfig(width=64, ff=128, layers=1))
    torch.nn.init.normal_(net.out.weight, std=0.02)
    return MotionPrior(net, 0.14)
