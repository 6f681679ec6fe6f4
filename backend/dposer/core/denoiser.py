"""What the solver needs from a prior: a :class:`Denoiser`, k-diffusion style, a callable on (x_t, t) that returns
the denoised estimate D(x_t, t) of x_0 (normalised pose space, the VP schedule of :mod:`dposer.core.sde`).

The prior owns its speed options: :meth:`dposer.core.prior.Prior.denoiser` binds the part mask, the parts whose outputs
are used (the network skips the other heads) and the schedule's times (their time projections are computed once,
in one batched product), so the solver loop (:func:`dposer.core.solver.solve_denoiser`) and
:func:`dposer.core.solver.plausibility` only ever call ``denoiser(x_t, t)``. Precision (``fp32`` / ``bf16``) is the
prior's own (:class:`dposer.core.prior.Prior`).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch


class Denoiser(Protocol):
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t (N, D) noised at times t (N,) -> the denoised estimate of x_0 (N, D)."""
        ...


def as_denoiser(prior, part_mask: torch.Tensor | None = None, used_dims: torch.Tensor | None = None,
                ts: Sequence[float] | None = None) -> Denoiser:
    """``prior`` as a :class:`Denoiser`: its own ``denoiser(part_mask, used_dims, ts)`` when it has one (the
    built-in :class:`dposer.core.prior.Prior`, with its speed-ups), else ``prior.denoise(x_t, t, part_mask)`` (the
    baselines of :mod:`dposer.eval.baselines`). ``used_dims``: bool (D,), the dims whose denoised values the caller
    uses (the others may hold garbage); ``ts``: the times the caller will ask for, in any order."""
    bind = getattr(prior, "denoiser", None)
    if bind is not None:
        return bind(part_mask, used_dims, ts)
    return lambda x_t, t: prior.denoise(x_t, t, part_mask)
