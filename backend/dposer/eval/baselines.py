"""Baseline pose priors with the :class:`dposer.core.prior.Prior` interface, for the benchmarks (docs/benchmarks.md).

Every baseline is fitted on exactly the training split the default checkpoint was trained on
(:class:`dposer.train.train.TrainingData` ``("train", mirror_wholebody=True)``: AMASS body, hand, face and EgoBody
whole-body rows plus their mirror images), in the same normalised 256-D space (the checkpoint's own
:class:`~dposer.core.prior.Normalizer`), and plugs into the same tasks (complete / clean / fit) through the same solver,
so only the prior changes between benchmark rows.

* :class:`MixturePrior` - Gaussians and Gaussian mixtures have an exact diffused density at every t of the sub-VP
  SDE (x_t = a x_0 + s eps gives N(a mu, a^2 S + s^2 I) per component), hence an exact Tweedie denoiser
  E[x_0 | x_t] and eps. :func:`gaussian_prior` (one 256-D Gaussian, cross-part covariance from EgoBody),
  :func:`part_gmm_prior` (a GMM per part fitted by our own EM, K chosen on the validation split) and
  :func:`smplify_gmm_prior` (the classic SMPLify 8-component body GMM, 63-D marginal) are all MixturePriors.
  A hidden part (``mask``) is marginalised: the denoiser conditions only on the visible dims.
* :func:`gaussian_conditional` - the closed-form conditional mean of the Gaussian: linear regression from observed
  to missing dims, no solver (the bar to clear).
* :class:`dposer.eval.vae_prior.VAEPrior` - a VPoser-style VAE per part (:mod:`dposer.eval.vae_prior`).
* :func:`combiner_prior` - the bundled network with its fusion output switched off: independent part networks, the
  DPoser-X "Combiner" (caveat: those part networks were trained jointly with the fusion module).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..formats import data
from ..spec import layout
from ..core.prior import Normalizer, Prior
from ..core.sde import alpha_sigma

PART_BLOCKS = layout.PART_SLICES  # the blocks of the block-diagonal mixtures are the model's parts


def cache_dir() -> Path:
    """Where fitted baselines are cached (never in the repo): $DPOSER_CACHE or ~/.cache/dposer/baselines."""
    p = Path(os.environ.get("DPOSER_CACHE", Path.home() / ".cache" / "dposer" / "baselines"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def load_cache(path: Path) -> dict | None:
    """A cached fit, read through torch's weights-only unpickler (tensors and plain containers; nothing in the
    file runs). None when absent or refused (a stale or foreign file): the baseline is then fitted again."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError...: refit
        import warnings

        warnings.warn(f"ignoring baseline cache {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return None


def _save_cache(obj, path: Path) -> None:
    from ..formats.npz import atomic_write

    with atomic_write(path) as f:
        torch.save(obj, f)


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------
# Training rows in normalised space

def training_rows(normalizer: Normalizer, split: str = "train", root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows the default checkpoint trains on, normalised: (M, 256) float64 values and (M, 256) presence.

    Hand-only rows are used once in the right-hand slot and once (mirrored) in the left slot, as separate rows.
    """
    from ..train.train import TrainingData

    td = TrainingData(split, root=root, mirror_wholebody=(split == "train"))
    vecs, pres = [], []
    for name, ps in td.sources.items():
        v, p = ps.vectors.copy(), ps.present.copy()
        vecs.append(v)
        pres.append(p)
        if name == "hand":
            vl = np.zeros_like(v)
            left, right = layout.PART_SLICES["left_hand"], layout.PART_SLICES["right_hand"]
            vl[:, left] = layout.mirrored_hand(v, "right_hand")
            pl = np.zeros_like(p)
            pl[:, left] = p[:, right]
            vecs.append(vl)
            pres.append(pl)
    v = torch.from_numpy(np.concatenate(vecs))
    p = torch.from_numpy(np.concatenate(pres))
    x = normalizer.normalize(v.float()).double()
    return torch.where(p, x, torch.zeros_like(x)), p


def part_rows(x: torch.Tensor, present: torch.Tensor, part: str) -> torch.Tensor:
    """Rows of one part (hands: both slots pooled; the normaliser maps both into one convention)."""
    if part == "hand":
        return torch.cat([part_rows(x, present, "left_hand"), part_rows(x, present, "right_hand")])
    sl = PART_BLOCKS[part]
    keep = present[:, sl].all(1)
    return x[keep][:, sl]


# ---------------------------------------------------------------------------------------------------------
# Exact Gaussian-mixture denoisers

class Mixture:
    """A Gaussian mixture over a block of dims (normalised space), stored by eigendecomposition."""

    def __init__(self, weights, means, covs, min_eig: float = 1e-4):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        covs = 0.5 * (covs + covs.transpose(1, 2))
        lam, vec = torch.linalg.eigh(covs)
        self.lam = lam.clamp_min(min_eig)  # (K, D)
        self.vec = vec  # (K, D, D)
        self.covs = self.vec @ torch.diag_embed(self.lam) @ self.vec.transpose(1, 2)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def denoise(self, y: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t = y] for x_t = a x_0 + s eps; y (N, D), a, s (N, 1)."""
        y = y.double()
        a, s = a.double(), s.double()
        logp, means = [], []
        for k in range(len(self.weights)):
            v = a * a * self.lam[k] + s * s  # (N, D)
            z = (y - a * self.means[k]) @ self.vec[k]  # (N, D)
            logp.append(torch.log(self.weights[k]) - 0.5 * ((z * z / v) + torch.log(v)).sum(1))
            means.append(self.means[k] + (a * self.lam[k] / v * z) @ self.vec[k].T)
        r = torch.softmax(torch.stack(logp), 0)  # (K, N)
        return (r[:, :, None] * torch.stack(means)).sum(0)

    def denoise_visible(self, y: torch.Tensor, a: torch.Tensor, s: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Posterior mean of every dim given only the visible dims ``vis`` (D,) bool of y (the rest marginalised)."""
        y = y.double()
        a, s = a.double(), s.double()
        if not vis.any():
            return (self.weights[:, None] * self.means).sum(0).expand(len(y), -1).clone()
        logp, means = [], []
        yv = y[:, vis]
        for k in range(len(self.weights)):
            S = self.covs[k]
            Svv, Sav = S[vis][:, vis], S[:, vis]
            mu = self.means[k]
            out_k, lp_k, chol = [], [], {}
            for i in range(len(y)):  # per-row noise level (the solver uses one t per batch: one factorisation)
                key = (a[i].item(), s[i].item())
                if key not in chol:
                    chol[key] = torch.linalg.cholesky(a[i] ** 2 * Svv + s[i] ** 2 * torch.eye(int(vis.sum()), dtype=S.dtype))
                L = chol[key]
                d = (yv[i] - a[i] * mu[vis])[:, None]
                sol = torch.cholesky_solve(d, L)
                out_k.append(mu + a[i] * (Sav @ sol)[:, 0])
                lp_k.append(-0.5 * (d * sol).sum() - torch.log(torch.diagonal(L)).sum())
            means.append(torch.stack(out_k))
            logp.append(torch.log(self.weights[k]) + torch.stack(lp_k))
        r = torch.softmax(torch.stack(logp), 0)
        return (r[:, :, None] * torch.stack(means)).sum(0)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        out = torch.empty(n, self.dim, dtype=torch.float64)
        for k in range(len(self.weights)):
            rows = comp == k
            out[rows] = self.means[k] + (z[rows] * self.lam[k].sqrt()) @ self.vec[k].T
        return out

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        out = []
        for k in range(len(self.weights)):
            z = (x - self.means[k]) @ self.vec[k]
            out.append(torch.log(self.weights[k]) - 0.5 * ((z * z / self.lam[k]) + torch.log(self.lam[k])).sum(1)
                       - 0.5 * self.dim * math.log(2 * math.pi))
        return torch.logsumexp(torch.stack(out), 0)


class _DenoiserPrior:
    """The rest of the :class:`dposer.core.prior.Prior` interface from a subclass's ``denoise`` and ``normalizer``."""

    def eps(self, x_t, t, mask=None):
        a, s = alpha_sigma(t)
        return (x_t - a[:, None] * self.denoise(x_t, t, mask)) / s[:, None]

    def score(self, x_t, t, mask=None):
        return -self.eps(x_t, t, mask) / alpha_sigma(t)[1][:, None]

    def normalize(self, raw):
        return self.normalizer.normalize(raw)

    def denormalize(self, x):
        return self.normalizer.denormalize(x)


class MixturePrior(_DenoiserPrior):
    """A prior made of independent Gaussian-mixture blocks over the 256-D normalised vector (a block may span
    several parts; a single 256-D Gaussian is one block). Same interface as :class:`dposer.core.prior.Prior`."""

    def __init__(self, blocks: list[tuple[slice, Mixture]], normalizer: Normalizer, name: str = "mixture"):
        self.blocks = blocks
        self.normalizer = normalizer
        self.device = torch.device("cpu")
        self.dim = layout.DIM
        self.name = name
        self.info = {"baseline": name}

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        a, s = alpha_sigma(t.double())
        a, s = a[:, None], s[:, None]
        out = torch.zeros(x_t.shape, dtype=torch.float64)
        if mask is None or bool(mask.all()):
            for sl, mix in self.blocks:
                out[:, sl] = mix.denoise(x_t[:, sl], a, s)
            return out.to(x_t.dtype)
        vis_dims = torch.from_numpy(layout.dims_from_part_mask(mask.cpu().numpy()))
        for pattern in torch.unique(vis_dims, dim=0):
            rows = (vis_dims == pattern).all(1)
            for sl, mix in self.blocks:
                vis = pattern[sl]
                if vis.all():
                    out[rows, sl] = mix.denoise(x_t[rows][:, sl], a[rows], s[rows])
                else:
                    out[rows, sl] = mix.denoise_visible(x_t[rows][:, sl], a[rows], s[rows], vis)
        return out.to(x_t.dtype)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """Exact samples, normalised (n, 256)."""
        gen = torch.Generator().manual_seed(seed)
        out = torch.zeros(n, layout.DIM, dtype=torch.float64)
        for sl, mix in self.blocks:
            out[:, sl] = mix.sample(n, gen)
        return out.float()


# ---------------------------------------------------------------------------------------------------------
# Gaussian

def gaussian_moments(x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (256,), (256, 256) from rows with missing parts: each block of the covariance (part p,
    part q) from the rows where both parts are present, centred on those rows' own means (so within-part blocks
    use every row of the part, cross-part blocks the EgoBody rows); projected to the nearest PSD matrix."""
    mu = torch.zeros(layout.DIM, dtype=torch.float64)
    cov = torch.zeros(layout.DIM, layout.DIM, dtype=torch.float64)
    has = {p: present[:, sl].all(1) for p, sl in PART_BLOCKS.items()}
    for p, sl in PART_BLOCKS.items():
        mu[sl] = x[has[p]][:, sl].mean(0)
    for p, sp in PART_BLOCKS.items():
        for q, sq in PART_BLOCKS.items():
            rows = has[p] & has[q]
            if rows.sum() < 2:
                continue
            xp, xq = x[rows][:, sp], x[rows][:, sq]
            cov[sp, sq] = (xp - xp.mean(0)).T @ (xq - xq.mean(0)) / (rows.sum() - 1)
    cov = 0.5 * (cov + cov.T)
    lam, vec = torch.linalg.eigh(cov)
    return mu, vec @ torch.diag(lam.clamp_min(1e-4)) @ vec.T


def gaussian_prior(normalizer: Normalizer, root=None, rows=None) -> MixturePrior:
    x, p = rows if rows is not None else training_rows(normalizer, root=root)
    mu, cov = gaussian_moments(x, p)
    return MixturePrior([(slice(0, layout.DIM), Mixture(torch.ones(1), mu[None], cov[None]))], normalizer, "gaussian")


def gaussian_conditional(prior: MixturePrior, pose: dict, missing, rows=None) -> np.ndarray:
    """Closed-form conditional mean of a Gaussian: the missing dims (``missing`` plus every key absent from
    ``pose``) by linear regression on the observed ones. Returns raw vectors (N, 256).

    With ``rows`` (normalised training values, presence) the Gaussian is fitted on the training rows where every
    part involved (observed or missing and named) is present - an ordinary least-squares regression on the rows that
    have both sides (EgoBody for hands given the body). Without, the prior's own (single-block) Gaussian is used."""
    ps = data.from_smplx_dict(pose)
    free = ~ps.present[0]
    named = np.zeros(layout.DIM, bool)
    named[layout.names_to_dims(missing)] = True
    free |= named
    x = prior.normalize(torch.from_numpy(ps.vectors)).double()
    if rows is None:
        (_, mix), = prior.blocks
        mu, S = mix.means[0], mix.covs[0]
    else:
        xr, pr = rows
        need = torch.from_numpy(ps.present[0] | named)
        keep = (pr | ~need).all(1)
        xs = xr[keep]
        mu = xs.mean(0)
        S = torch.cov(xs.T) + 1e-4 * torch.eye(layout.DIM, dtype=torch.float64)
    o, m = torch.from_numpy(~free), torch.from_numpy(free)
    coef = torch.linalg.solve(S[o][:, o], S[o][:, m]).T  # (M, O)
    out = x.clone()
    out[:, m] = mu[m] + (x[:, o] - mu[o]) @ coef.T
    raw = prior.denormalize(out.float()).numpy()
    raw[:, ~free] = ps.vectors[:, ~free]
    return raw


# ---------------------------------------------------------------------------------------------------------
# GMM: our own EM

def fit_gmm(x: torch.Tensor, k: int, iters: int = 100, reg: float = 1e-3, seed: int = 0) -> Mixture:
    """Full-covariance EM (k-means++ initialisation, ``reg`` added to every covariance's diagonal)."""
    x = x.double()
    n, d = x.shape
    gen = torch.Generator().manual_seed(seed)
    centres = [x[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centres)).min(1).values ** 2
        centres.append(x[torch.multinomial(d2 / d2.sum(), 1, generator=gen)].squeeze(0))
    resp = torch.nn.functional.one_hot(torch.cdist(x, torch.stack(centres)).argmin(1), k).double()
    eye = torch.eye(d, dtype=torch.float64)
    prev = -math.inf
    for _ in range(iters):
        nk = resp.sum(0) + 1e-10
        w = nk / n
        mu = (resp.T @ x) / nk[:, None]
        cov = torch.stack([((x - mu[j]) * resp[:, j:j + 1]).T @ (x - mu[j]) / nk[j] + reg * eye for j in range(k)])
        L = torch.linalg.cholesky(cov)
        logp = []
        for j in range(k):
            z = torch.linalg.solve_triangular(L[j], (x - mu[j]).T, upper=False)
            logp.append(torch.log(w[j]) - 0.5 * (z * z).sum(0) - torch.log(torch.diagonal(L[j])).sum())
        logp = torch.stack(logp, 1)
        ll = torch.logsumexp(logp, 1).mean().item()
        resp = torch.softmax(logp, 1)
        if ll - prev < 1e-5:
            break
        prev = ll
    return Mixture(w, mu, cov)


GMM_KS = (1, 2, 4, 8, 16)


def select_gmm(train: torch.Tensor, val: torch.Tensor, ks=GMM_KS, iters: int = 100) -> tuple[Mixture, dict]:
    """Fit one GMM per K in ``ks`` on train, keep the best mean validation log-likelihood."""
    scores, best = {}, None
    for k in ks:
        g = fit_gmm(train, k, iters)
        scores[k] = g.log_likelihood(val).mean().item()
        if best is None or scores[k] > scores[best[0]]:
            best = (k, g)
    return best[1], scores


def part_gmm_prior(normalizer: Normalizer, root=None, ks=GMM_KS, iters: int = 100, rows=None, val_rows=None,
                   use_cache: bool = True) -> MixturePrior:
    """One GMM per part (body, hand - shared by both hands -, face), K picked per part on the validation split."""
    key = _key("part_gmm", ks, iters, normalizer.mean.tolist()[:5], normalizer.std.tolist()[:5])
    path = cache_dir() / f"part_gmm_{key}.pt"
    saved = load_cache(path) if use_cache else None
    if saved is not None:
        mixes = {p: Mixture(*saved[p]) for p in ("body", "hand", "face")}
        chosen = saved["chosen"]
    else:
        x, p = rows if rows is not None else training_rows(normalizer, root=root)
        xv, pv = val_rows if val_rows is not None else training_rows(normalizer, "val", root)
        mixes, chosen = {}, {}
        for part in ("body", "hand", "face"):
            mixes[part], scores = select_gmm(part_rows(x, p, part), part_rows(xv, pv, part), ks, iters)
            chosen[part] = {"k": len(mixes[part].weights), "val_loglik": scores}
        if use_cache:
            _save_cache({**{q: (m.weights, m.means, m.covs) for q, m in mixes.items()}, "chosen": chosen}, path)
    prior = MixturePrior([(PART_BLOCKS["body"], mixes["body"]), (PART_BLOCKS["left_hand"], mixes["hand"]),
                          (PART_BLOCKS["right_hand"], mixes["hand"]), (PART_BLOCKS["face"], mixes["face"])],
                         normalizer, "gmm_parts")
    prior.info["chosen"] = chosen
    return prior


def smplify_gmm_prior(normalizer: Normalizer, root=None, rest: MixturePrior | None = None) -> MixturePrior:
    """The SMPLify 8-component GMM (69-D SMPL body pose; its first 63 dims are body joints 1-21, which SMPL and
    SMPL-X share) as the body block, moved into the normalised space. Hands and face come from ``rest`` (our
    per-part GMM) - SMPLify has none."""
    g = np.load(data.data_root(root) / "dposer_x" / "smplify_gmm_8.npz")
    body = layout.PART_SLICES["body"]  # SMPL's first 63 dims are the SMPL-X body block
    m = normalizer.mean[body].double()
    sd = normalizer.std[body].double()
    means = (torch.from_numpy(g["means"][:, body]).double() - m) / sd
    covs = torch.from_numpy(g["covars"][:, body, body]).double() / sd[:, None] / sd[None, :]
    body = Mixture(torch.from_numpy(g["weights"]).double() / g["weights"].sum(), means, covs)
    blocks = [(PART_BLOCKS["body"], body)]
    if rest is not None:
        blocks += [(sl, mix) for sl, mix in rest.blocks if sl.start >= 63]
    return MixturePrior(blocks, normalizer, "smplify_gmm")


# ---------------------------------------------------------------------------------------------------------
# Combiner: the bundled network with the fusion output off

class _NoFusion(nn.Module):
    def forward(self, f):
        return torch.zeros(f.shape[0], layout.DIM, dtype=f.dtype, device=f.device)


def combiner_prior(prior: Prior) -> Prior:
    """Independent part networks: a copy of ``prior`` whose fusion residual is zero (its fusion branch skipped)."""
    net = copy.deepcopy(prior.net)
    net.fusion_out = _NoFusion()
    net.fusion = _SkipFusion(net.cfg.fusion_width)
    out = Prior(net, prior.normalizer, dict(prior.info, baseline="combiner"), prior.device)
    return out


class _SkipFusion(nn.Module):
    """Stands in for the fusion MLP (its output is discarded by _NoFusion); avoids computing it."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def time_layers(self) -> list:
        return []

    def features(self, x, temb, time_biases=None):
        return x[:, :1]

    def head(self, h, temb, time_biases=None):
        return h
