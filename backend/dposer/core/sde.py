"""The sub-VP SDE of Song et al. (2021) with beta linear from 0.1 to 20 (DPoser-X, method.md section 3).

x_t = alpha_t x_0 + sigma_t eps with B(t) = 0.1 t + 9.95 t^2, alpha_t = exp(-B/2), sigma_t = 1 - exp(-B).
"""
from __future__ import annotations

import torch

BETA_MIN = 0.1
BETA_MAX = 20.0
T_EPS = 1e-5  # smallest training time


def integral_beta(t: torch.Tensor) -> torch.Tensor:
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t


def beta(t: torch.Tensor) -> torch.Tensor:
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Marginal mean scale alpha_t and std sigma_t (sub-VP: no square root on the std)."""
    b = integral_beta(t)
    return torch.exp(-0.5 * b), -torch.expm1(-b)


def perturb(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    a, s = alpha_sigma(t)
    return a[:, None] * x0 + s[:, None] * eps


def drift_diffusion(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward SDE drift f(x, t) = -beta x / 2 and squared diffusion g^2 = beta (1 - exp(-2 B))."""
    b = beta(t)
    g2 = b * (-torch.expm1(-2.0 * integral_beta(t)))
    return -0.5 * b[:, None] * x, g2
