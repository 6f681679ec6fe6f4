"""Unconditional generation: a deterministic DDIM (probability-flow) sampler and the paper's Euler-Maruyama
reverse-SDE sampler (1000 steps)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..spec import layout
from .prior import Prior
from .sde import alpha_sigma, drift_diffusion


@torch.no_grad()
def ddim(prior: Prior, n: int, steps: int = 100, t_end: float = 1e-3, gen: torch.Generator | None = None,
         mask: torch.Tensor | None = None, progress: Callable[[int, int], None] | None = None,
         x0: torch.Tensor | None = None, t_start: float = 1.0, fixed: torch.Tensor | None = None,
         cancel: Callable[[], bool] | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0); returns normalised x_0 estimates (n, 256).

    By default starts from x_1 ~ N(0, I). With ``x0`` (normalised poses) and ``t_start`` < 1 it starts from x0
    noised to t_start (SDEdit: a variation of x0 whose distance grows with t_start); dims where ``fixed`` is True
    are re-imposed from x0 (noised to the current t) at every step and exactly at the end. ``noise`` (n, 256): the
    starting noise (default drawn from ``gen``), e.g. one draw shared by rows that should answer alike.
    """
    if noise is None:
        noise = torch.randn(n, layout.DIM, generator=gen).to(prior.device)
    ts = torch.linspace(t_start, t_end, steps + 1, device=prior.device)
    if x0 is None:
        x = noise
    else:
        a, s = alpha_sigma(ts[:1])
        x = a * x0 + s * noise
    for i in range(steps):
        if cancel is not None and cancel():
            from .solver import Cancelled

            raise Cancelled(f"cancelled at step {i} of {steps}")
        t = ts[i].expand(n)
        eps = prior.eps(x, t, mask)
        a, s = alpha_sigma(t[:1])
        pred = (x - s * eps) / a
        a2, s2 = alpha_sigma(ts[i + 1 : i + 2])
        x = a2 * pred + s2 * eps
        if fixed is not None:
            x = torch.where(fixed, a2 * x0 + s2 * noise, x)
        if progress:
            progress(i + 1, steps)
    out = prior.denoise(x, ts[-1].expand(n), mask)
    return out if fixed is None else torch.where(fixed, x0, out)


@torch.no_grad()
def euler_maruyama(prior: Prior, n: int, steps: int = 1000, t_end: float = 5e-3, gen: torch.Generator | None = None,
                   mask: torch.Tensor | None = None, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """The paper's reverse-SDE predictor (no corrector), returning the noise-free mean of the last step."""
    x = torch.randn(n, layout.DIM, generator=gen).to(prior.device)
    ts = torch.linspace(1.0, t_end, steps + 1, device=prior.device)
    mean = x
    for i in range(steps):
        if cancel is not None and cancel():
            from .solver import Cancelled

            raise Cancelled(f"cancelled at step {i} of {steps}")
        t = ts[i].expand(n)
        dt = (ts[i + 1] - ts[i]).item()  # negative
        f, g2 = drift_diffusion(x, t)
        score = prior.score(x, t, mask)
        mean = x + (f - g2[:, None] * score) * dt
        z = torch.randn(x.shape, generator=gen).to(prior.device)
        x = mean + (g2[:, None] * -dt).sqrt() * z
        if progress:
            progress(i + 1, steps)
    return mean


SAMPLERS = {"ddim": ddim, "em": euler_maruyama}


def sample(prior: Prior, n: int, seed: int = 0, sampler: str = "ddim", steps: int | None = None,
           batch: int = 4096, progress=None, cancel=None, parts=None) -> dict[str, np.ndarray]:
    """Draw ``n`` whole-body poses; returns the six SMPL-X keys (global_orient zeros) as float32 arrays.

    ``parts`` (e.g. ``"right_hand"`` or ``["body", "face"]``; default all four) samples only those parts from
    their marginal under the prior (the network sees the other parts as absent) and leaves the others at zero.
    ``progress(done, total)`` counts sampler steps over all batches; ``cancel()`` is polled every step."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    part_mask = layout.part_mask_from_names(parts)
    gen = torch.Generator().manual_seed(seed)
    fn = SAMPLERS[sampler]
    steps = steps or (100 if sampler == "ddim" else 1000)
    n_batches = (n + batch - 1) // batch
    chunks = []
    for b, start in enumerate(range(0, n, batch)):
        prog = None if progress is None else (lambda i, s, b=b: progress(b * steps + i, n_batches * steps))
        m = min(batch, n - start)
        mask = None if part_mask.all() else torch.from_numpy(part_mask).to(prior.device).expand(m, 4)
        x = fn(prior, m, steps=steps, gen=gen, progress=prog, cancel=cancel, mask=mask)
        raw = prior.denormalize(x).cpu()
        chunks.append(raw * torch.from_numpy(layout.dims_from_part_mask(part_mask)))
    return layout.vectors_to_dict(torch.cat(chunks).numpy())


to_vectors = layout.dict_to_vectors  # six-key dict -> (N, 256) vectors (the name bench and cli import)
