"""A VPoser-style VAE prior per part (MLP encoder/decoder, latent 32, KL-annealed), a baseline of the benchmarks
(:mod:`dposer.eval.baselines`): used as VPoser is used in fitting, the solver optimises the latent z of each part
(decoded pose + data term + w ||z||^2) with the same Adam steps. :class:`VAEPrior` exposes ``solve``, which
:func:`dposer.core.solver.solve` delegates to.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from ..core.prior import Normalizer
from ..core.sde import alpha_sigma
from ..spec import layout
from .baselines import (PART_BLOCKS, _DenoiserPrior, _key, _save_cache, cache_dir, load_cache, part_rows,
                        training_rows)


class PartVAE(nn.Module):
    def __init__(self, dim: int, latent: int = 32, width: int = 512):
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(nn.Linear(dim, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                                 nn.LeakyReLU(0.2), nn.Linear(width, dim))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def forward(self, x, gen=None):
        mu, logvar = self.encode(x)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


def train_vae(x: torch.Tensor, steps: int = 3000, latent: int = 32, kl_max: float = 0.05, batch: int = 256,
              lr: float = 1e-3, seed: int = 0) -> tuple[PartVAE, dict]:
    """Reconstruction (sum of squared errors, normalised units) + KL weight annealed linearly from 0 to ``kl_max``
    over the first 40% of the steps (VPoser-style); Adam, cosine-free constant lr."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = PartVAE(x.shape[1], latent)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    x = x.float()
    log = {}
    for step in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = x[idx]
        rec, mu, logvar = vae(xb, gen)
        recon = ((rec - xb) ** 2).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
        w = kl_max * min(1.0, step / (0.4 * steps))
        loss = recon + w * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == steps - 1:
            log = {"recon": recon.item(), "kl": kl.item()}
    vae.eval()
    for q in vae.parameters():
        q.requires_grad_(False)
    return vae, log


class VAEPrior(_DenoiserPrior):
    """Per-part VAEs (body; hand shared by both hands); the face is held at its training mean (no face VAE).

    ``solve`` replaces the DPoser loop: each part with free dims is decoded from a latent z (N, 32) that Adam
    optimises (same steps and lr as the config) against the task's data term + ``observed_weight`` x the squared
    error on the part's observed dims + ``latent_weight`` x ||z||^2 / latent (the VPoser fitting recipe)."""

    def __init__(self, vaes: dict[str, PartVAE], normalizer: Normalizer, latent_weight: float = 0.1,
                 observed_weight: float = 1.0, info: dict | None = None):
        self.vaes = vaes
        self.normalizer = normalizer
        self.latent_weight = latent_weight
        self.observed_weight = observed_weight
        self.device = torch.device("cpu")
        self.dim = layout.DIM
        self.info = info or {}
        self.name = "vae"

    def with_weight(self, w: float) -> "VAEPrior":
        other = copy.copy(self)
        other.latent_weight = w
        return other

    def _part_vae(self, part):
        return self.vaes["hand" if part.endswith("hand") else part]

    def decode_parts(self, z: dict[str, torch.Tensor], base: torch.Tensor) -> torch.Tensor:
        out = base.clone()
        for part, zp in z.items():
            out[:, PART_BLOCKS[part]] = self._part_vae(part).dec(zp)
        return out

    def denoise(self, x_t, t, mask=None):
        """Reconstruction through each part's VAE (encoder mean) of x_t / alpha_t - only used to rank one or two
        hypotheses; the face block passes through."""
        a, _ = alpha_sigma(t)
        x = x_t / a[:, None]
        out = x.clone()
        for part in ("body", "left_hand", "right_hand"):
            sl = PART_BLOCKS[part]
            out[:, sl] = self._part_vae(part).dec(self._part_vae(part).encode(x[:, sl])[0])
        return out

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        z = {p: torch.randn(n, self._part_vae(p).latent, generator=gen) for p in ("body", "left_hand", "right_hand")}
        return self.decode_parts(z, torch.zeros(n, layout.DIM))

    def solve(self, x_init: torch.Tensor, free: torch.Tensor | None = None,
              data_loss: Callable | None = None, cfg=None, seed: int = 0, part_mask=None,
              progress: Callable | None = None, cancel: Callable | None = None) -> torch.Tensor:
        from ..core.solver import Cancelled, SolverConfig, learning_rate

        cfg = cfg or SolverConfig()
        if cfg.optimizer != "adam":  # the latent is fitted with Adam, as VPoser is; keep the step count
            cfg = cfg.with_(optimizer="adam", lr=0.2, lr_decay="cosine")
        gen = torch.Generator().manual_seed(seed)
        x_fixed = x_init.detach().clone()
        n = len(x_fixed)
        free_b = (torch.ones_like(x_fixed, dtype=torch.bool) if free is None else free.bool().expand_as(x_fixed))
        base = torch.where(free_b, torch.zeros_like(x_fixed), x_fixed)  # face / untouched parts: mean (0) or fixed
        parts = [p for p in ("body", "left_hand", "right_hand") if free_b[:, PART_BLOCKS[p]].any()]
        z = {}
        for p in parts:
            sl = PART_BLOCKS[p]
            obs = ~free_b[:, sl]
            mu = self._part_vae(p).encode(x_fixed[:, sl])[0] if obs.all() else None
            init = torch.randn(n, self._part_vae(p).latent, generator=gen)
            z[p] = (mu if mu is not None else init).clone().requires_grad_(True)
        if not parts:
            return x_fixed
        opt = torch.optim.Adam(list(z.values()), lr=cfg.lr, betas=(0.9, 0.99))
        for k in range(cfg.steps):
            opt.param_groups[0]["lr"] = learning_rate(cfg, k)  # the same step sizes as dposer.core.solver.solve
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled at iteration {k} of {cfg.steps}")
            dec = self.decode_parts(z, base)
            x = torch.where(free_b, dec, x_fixed)
            per = torch.zeros(n)
            for p in parts:
                sl = PART_BLOCKS[p]
                obs = (~free_b[:, sl]).float()
                per = per + self.observed_weight * (((dec[:, sl] - x_fixed[:, sl]) ** 2) * obs).sum(1) / obs.sum(1).clamp_min(1)
                per = per + self.latent_weight * (z[p] ** 2).mean(1)
            if data_loss is not None:
                per = per + data_loss(x, k)
            opt.zero_grad(set_to_none=True)
            per.sum().backward()
            opt.step()
            if progress is not None:
                progress(k + 1, cfg.steps)
        with torch.no_grad():
            return torch.where(free_b, self.decode_parts(z, base), x_fixed).detach()


def vae_prior(normalizer: Normalizer, root=None, steps: int = 3000, latent: int = 32, kl_max: float = 0.05,
              latent_weight: float = 0.1, rows=None, use_cache: bool = True) -> VAEPrior:
    key = _key("vae", steps, latent, kl_max, normalizer.mean.tolist()[:5], normalizer.std.tolist()[:5])
    path = cache_dir() / f"vae_{key}.pt"
    vaes, info = {}, {"steps": steps, "latent": latent, "kl_max": kl_max}
    saved = load_cache(path) if use_cache else None
    if saved is not None:
        for part in ("body", "hand"):
            vaes[part] = PartVAE(saved[part]["dim"], latent)
            vaes[part].load_state_dict(saved[part]["state"])
            vaes[part].eval()
            for q in vaes[part].parameters():
                q.requires_grad_(False)
        info.update(saved["info"])
    else:
        x, p = rows if rows is not None else training_rows(normalizer, root=root)
        for part in ("body", "hand"):
            xs = part_rows(x, p, part)
            vaes[part], info[part] = train_vae(xs, steps, latent, kl_max)
        if use_cache:
            _save_cache({**{q: {"dim": m.dec[-1].out_features, "state": m.state_dict()} for q, m in vaes.items()},
                         "info": info}, path)
    return VAEPrior(vaes, normalizer, latent_weight, info=info)
