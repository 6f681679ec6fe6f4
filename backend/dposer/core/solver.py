"""The DPoser solver: one optimisation loop that every task (complete, clean, vary, fit, refine) reuses through
its own data term (method.md sections 5.2-5.4).

Each step draws a time t from the schedule, noises the current estimate x (normalised pose space) to x_t,
denoises it in one Tweedie step with the frozen prior (no gradient through the network) and adds the DPoser
regulariser w(t) * ||x - stopgrad(D(x_t, t))||^2 to the task's data term. Only the free dims move; fixed dims are
held exactly. Two optimisers: Adam (the DPoser default), or gradient descent preconditioned by the curvature of
the prior term ('denoise'), whose step with no data term is x <- x + lr (D(x_t, t) - x): an annealed
renoise-denoise iteration that reaches Adam's completion quality in half the steps (docs/benchmarks.md).

The loop (:func:`solve_denoiser`) sees the prior only as a :class:`dposer.core.denoiser.Denoiser`, a callable on
(x_t, t); :func:`solve` binds the prior's speed options into one (:func:`dposer.core.denoiser.as_denoiser`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .denoiser import Denoiser, as_denoiser
from .prior import Prior
from .sde import alpha_sigma


class Cancelled(Exception):
    """Raised when the cancel callback returns True between iterations."""


@dataclass
class SolverConfig:
    steps: int = 200
    lr: float = 0.1
    schedule: str = "truncated"  # 'truncated' (linear t_max -> t_min) or 'uniform' (t ~ U(1e-3, 1))
    t_max: float = 0.15
    t_min: float = 0.05
    prior_weight: float = 1.0
    weighting: str = "snr"  # 'snr': w = 0.5 sqrt(1 + alpha/sigma); 'const': w = 0.5
    lr_decay: str = "none"  # 'none', 'cosine' (lr annealed to 0) or 'linear' (lr -> lr_end)
    lr_end: float = 0.0  # the last step's lr for lr_decay='linear'
    t_power: float = 1.0  # truncated schedule shape: t = t_min + (t_max - t_min) * frac^t_power (>1: more low-t steps)
    # 'adam', or 'denoise': x moves the fraction lr of the way to the denoised estimate. 'denoise' is made for
    # prior-only problems (completion); with a stiff data term (clean's) its gradient step needs a tiny lr, and
    # Adam, which normalises the step per dim, is the right tool
    optimizer: str = "adam"

    def with_(self, **kw) -> "SolverConfig":
        return replace(self, **kw)


def timestep(cfg: SolverConfig, k: int, gen: torch.Generator | None) -> float:
    """t for step k: truncated linear annealing (t_max down to t_min) or uniform on (1e-3, 1)."""
    if cfg.schedule == "truncated":
        return cfg.t_min + ((cfg.steps - 1 - k) / max(1, cfg.steps)) ** cfg.t_power * (cfg.t_max - cfg.t_min)
    if cfg.schedule == "uniform":
        return 1e-3 + (1 - 1e-3) * torch.rand((), generator=gen).item()
    raise ValueError(f"schedule must be 'truncated' or 'uniform', got {cfg.schedule!r}")


def learning_rate(cfg: SolverConfig, k: int) -> float:
    """The step size at step k: constant, annealed from cfg.lr to 0 (cosine), or linear from cfg.lr to cfg.lr_end."""
    if cfg.lr_decay == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * k / cfg.steps))
    if cfg.lr_decay == "linear":
        return cfg.lr + (cfg.lr_end - cfg.lr) * k / max(1, cfg.steps - 1)
    if cfg.lr_decay == "none":
        return cfg.lr
    raise ValueError(f"lr_decay must be 'none', 'cosine' or 'linear', got {cfg.lr_decay!r}")


def dposer_weight(cfg: SolverConfig, t: torch.Tensor) -> torch.Tensor:
    a, s = alpha_sigma(t)
    return 0.5 * torch.sqrt(1 + a / s) if cfg.weighting == "snr" else torch.full_like(t, 0.5)


def solve(prior: Prior, x_init: torch.Tensor, free: torch.Tensor | None = None,
          data_loss: Callable[[torch.Tensor, int], torch.Tensor] | None = None, cfg: SolverConfig | None = None,
          seed: int = 0, part_mask: torch.Tensor | None = None,
          progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
          temporal=None) -> torch.Tensor:
    """Minimise data_loss(x, k) + prior_weight * L_DPoser(x; t_k) over the free dims of x (N, D normalised).

    ``free``: bool (N, D) or (D,), True where x may change (default: everything). ``data_loss`` returns a
    per-sample (N,) loss. ``temporal`` (a :class:`dposer.tasks.temporal.Temporal`, for rows that are the frames of
    clips): draws the noise correlated over each clip's frames and low-passes the denoised estimate along time, so
    the rows are solved as motions instead of independent frames. Returns the solution (N, D), detached.
    """
    if hasattr(prior, "solve"):  # a prior with its own optimiser (the VAE baseline fits its latent; dposer.eval.baselines)
        if temporal is not None:
            raise ValueError("this prior has its own optimiser and cannot solve clips (temporal)")
        return prior.solve(x_init, free, data_loss, cfg, seed=seed, part_mask=part_mask, progress=progress, cancel=cancel)
    cfg = cfg or SolverConfig()
    # the network may skip the heads of parts that stay fixed (their denoised values are never used), and a
    # deterministic schedule's time projections are computed for every step in one batched product (exact; a
    # quarter of the network's time at batch 1)
    used = None if free is None else free.to(x_init.device).bool().expand_as(x_init).any(0)
    ts = [timestep(cfg, k, None) for k in range(cfg.steps)] if cfg.schedule == "truncated" else None
    return solve_denoiser(as_denoiser(prior, part_mask, used, ts), x_init, free, data_loss, cfg, seed, progress,
                          cancel, temporal)


def solve_denoiser(denoiser: Denoiser, x_init: torch.Tensor, free: torch.Tensor | None = None,
                   data_loss: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                   cfg: SolverConfig | None = None, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, temporal=None) -> torch.Tensor:
    """The loop of :func:`solve` on any :class:`dposer.core.denoiser.Denoiser` (arguments as there)."""
    cfg = cfg or SolverConfig()
    if cfg.optimizer not in ("adam", "denoise"):
        raise ValueError(f"optimizer must be 'adam' or 'denoise', got {cfg.optimizer!r}")
    if cfg.optimizer == "denoise" and cfg.prior_weight <= 0:
        raise ValueError("the 'denoise' optimizer needs prior_weight > 0 (its step is scaled by the prior term)")
    gen = torch.Generator().manual_seed(seed)
    x_fixed = x_init.detach().clone()
    x = x_fixed.clone().requires_grad_(data_loss is not None or cfg.optimizer == "adam")
    free_b = None if free is None else free.to(x.device).bool().expand_as(x)
    opt = torch.optim.Adam([x], lr=cfg.lr, betas=(0.9, 0.99)) if cfg.optimizer == "adam" else None
    n, d = x.shape
    for k in range(cfg.steps):
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled at iteration {k} of {cfg.steps}")
        lr = learning_rate(cfg, k)
        t = torch.full((n,), timestep(cfg, k, gen), device=x.device)
        with torch.no_grad():
            a, s = alpha_sigma(t)
            eps = (torch.randn(x.shape, generator=gen) if temporal is None else temporal.noise(gen)).to(x.device)
            x_hat = denoiser(a[:, None] * x + s[:, None] * eps, t)
            if temporal is not None:
                x_hat = temporal.smooth(x_hat)
        w = cfg.prior_weight * dposer_weight(cfg, t) if opt is not None or data_loss is not None else None
        if opt is not None:
            per_sample = w * ((x - x_hat) ** 2).mean(1)
            if data_loss is not None:
                per_sample = per_sample + data_loss(x, k)
            opt.param_groups[0]["lr"] = lr
            opt.zero_grad(set_to_none=True)
            per_sample.sum().backward()
            if free_b is not None:
                x.grad.masked_fill_(~free_b, 0.0)
            opt.step()
            if free_b is not None:
                with torch.no_grad():
                    x.copy_(torch.where(free_b, x, x_fixed))
        else:
            # gradient descent divided by the prior term's curvature 2 w / d: with no data term the step is
            # x <- x + lr (x_hat - x)
            grad = x.detach() - x_hat
            if data_loss is not None:
                grad = grad + torch.autograd.grad(data_loss(x, k).sum(), x)[0] * (d / (2 * w[:, None]))
            x_new = x.detach() - lr * grad
            if free_b is not None:
                x_new = torch.where(free_b, x_new, x_fixed)
            x = x_new.requires_grad_(data_loss is not None)
        if progress is not None:
            progress(k + 1, cfg.steps)
    return x.detach()


@torch.no_grad()
def plausibility(prior: Prior, x: torch.Tensor, seed: int = 0, ts=(0.05, 0.1, 0.15), draws: int = 2,
                 part_mask: torch.Tensor | None = None, dims: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared one-step denoising residual of x (N, D normalised) over a few noise levels; lower = more
    plausible under the prior. Used to rank hypotheses. ``dims``: bool (D,), average the residual over these dims
    only (the filled-in joints), which also lets the network skip the heads of the other parts. All noise levels
    and draws go through the network as one batch."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    reps = len(ts) * draws
    t = torch.tensor([t0 for t0 in ts for _ in range(draws)], dtype=torch.float32).repeat_interleave(n).to(x.device)
    eps = torch.cat([torch.randn(x.shape, generator=gen) for _ in range(reps)]).to(x.device)
    xr = x.repeat(reps, 1)
    a, s = alpha_sigma(t)
    mask = None if part_mask is None else part_mask.repeat(reps, 1)
    res = (as_denoiser(prior, mask, dims)(a[:, None] * xr + s[:, None] * eps, t) - xr) ** 2
    res = res[:, dims.to(x.device)].mean(1) if dims is not None else res.mean(1)
    return res.reshape(reps, n).mean(0)
