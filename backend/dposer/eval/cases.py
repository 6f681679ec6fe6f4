"""Shared parts of the benchmarks: the completion cases and their errors, the baselines' answers, the sizes, the
priors under test with their tuned knob (:class:`Context`), bootstrap intervals and figure helpers."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from . import metrics
from ..core.prior import Prior
from ..core.torch_rotations import geodesic_degrees
from ..core.solver import SolverConfig
from ..tasks.pose_tasks import COMPLETE, complete
from dataclasses import dataclass


@dataclass
class CompletionCase:
    name: str
    pose: dict  # input with the missing joints still present (they are overwritten by `missing`)
    truth: np.ndarray  # (N, 256)
    missing: str
    scope: str  # 'body' or 'hands': where MPJPE is measured
    nn_on: str  # part whose observed joints the nearest-neighbour baseline matches on
    train_pool: np.ndarray  # (M, 256) rows for the nearest-neighbour baseline
    train_mean: np.ndarray  # (256,)


def _hand_pool(split, root):
    """Hand training rows placed in both hand slots (left mirrored), for baselines on either hand."""
    h = data.load_part_set("hand", split, root).vectors
    both = h.copy()
    both[:, layout.PART_SLICES["left_hand"]] = layout.mirrored_hand(h, "right_hand")
    return both


def completion_cases(split: str = "test", n: int | None = None, root=None) -> list[CompletionCase]:
    """The five completion benchmarks: left_leg, right_arm and trunk (AMASS body), both hands given the body
    (EgoBody whole-body) and pinky+ring given the rest of the hand (hand set)."""
    body = data.load_part_set("body", split, root)
    body_train = data.load_part_set("body", "train", root).vectors
    wb = data.load_wholebody_set(split, root)
    wb_train_set = data.load_wholebody_set("train", root)
    wb_train = np.concatenate([wb_train_set.vectors, layout.mirror_pose(wb_train_set.vectors)])
    hand = data.load_part_set("hand", split, root)
    hand_train = _hand_pool("train", root)
    sel = (lambda a: a[:n]) if n else (lambda a: a)
    cases = []
    for part in ("left_leg", "right_arm", "trunk"):
        v = sel(body.vectors)
        cases.append(CompletionCase(part, layout.vectors_to_dict(v, keys=("body_pose",)), v, part, "body", "body",
                                    body_train, body_train.mean(0)))
    v = sel(wb.vectors)
    hand_mean = hand_train.mean(0)
    wb_mean = wb_train.mean(0)
    wb_mean[layout.HANDS] = hand_mean[layout.HANDS]
    cases.append(CompletionCase("hands_given_body",
                                layout.vectors_to_dict(wb.vectors[: len(v)], keys=layout.KEY_SLICES), v,
                                "left_hand,right_hand", "hands", "body", wb_train, wb_mean))
    v = sel(hand.vectors)
    cases.append(CompletionCase("pinky_ring_given_hand", layout.vectors_to_dict(v, keys=("right_hand_pose",)), v,
                                "right_pinky,right_ring", "hands", "right_hand", hand_train, hand_train.mean(0)))
    return cases


def _descendants(joints: set[int]) -> set[int]:
    out = set(joints)
    for j, p in enumerate(layout.PARENTS):
        if p in out:
            out.add(j)
    return out


def completion_errors(pred: np.ndarray, case: CompletionCase) -> dict[str, np.ndarray]:
    """Per sample: mean geodesic degrees over the filled joints, and MPJPE (mm) over the joints they move on the
    built-in skeleton (body: the 22 body joints, pelvis-relative; hands: finger joints, wrist-relative, computed
    from the hand parts alone)."""
    dims = layout.names_to_dims(case.missing)
    n = len(pred)
    p = torch.from_numpy(pred[:, dims].reshape(n, -1, 3)).double()
    t = torch.from_numpy(case.truth[:, dims].reshape(n, -1, 3)).double()
    geo = geodesic_degrees(p, t).mean(1).numpy()
    vec_joint = {layout.joint_vector_slice(name).start: layout.JOINT_INDEX[name] for name in layout.VECTOR_JOINTS}
    moved = _descendants({vec_joint[d] for d in dims[::3]})
    if case.scope == "body":
        idx = sorted(j for j in moved if j < 22)
        d = metrics.part_joints(pred, "body")[:, idx] - metrics.part_joints(case.truth, "body")[:, idx]
        mpjpe = d.norm(dim=-1).mean(1)
    else:
        errs = []
        for side, first in (("left_hand", 25), ("right_hand", 40)):
            idx = sorted(j - first for j in moved if first <= j < first + 15)
            if idx:
                d = metrics.part_joints(pred, side)[:, idx] - metrics.part_joints(case.truth, side)[:, idx]
                errs.append(d.norm(dim=-1))
        mpjpe = torch.cat(errs, 1).mean(1)
    return {"geodesic_deg": geo, "mpjpe_mm": 1000 * mpjpe.numpy()}


def completion_error(pred: np.ndarray, case: CompletionCase) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in completion_errors(pred, case).items()}


def nearest_training_hand_mm(case: CompletionCase) -> np.ndarray:
    """Per test pose of a hand task: MPJPE (mm, finger joints, wrist-relative) between its true hand(s) and the
    closest training row's in the nearest-neighbour pool. Small values mark near-copies of training poses (the hand
    sets are video frames), which retrieval reproduces and a prior has to reconstruct."""
    sides = [s for s in ("left_hand", "right_hand") if set(layout.names_to_dims(case.missing)) &
             set(range(layout.PART_SLICES[s].start, layout.PART_SLICES[s].stop))]
    truth = torch.cat([metrics.part_joints(case.truth, s) for s in sides], 1)
    pool = torch.cat([metrics.part_joints(case.train_pool, s) for s in sides], 1)
    return np.array([1000 * (pool - truth[i:i + 1]).norm(dim=-1).mean(1).min().item() for i in range(len(truth))])


NOVEL_MM = 2.0  # a test hand farther than this from every training hand counts as novel


def baseline_mean(case: CompletionCase) -> np.ndarray:
    out = case.truth.copy()
    dims = layout.names_to_dims(case.missing)
    out[:, dims] = case.train_mean[dims]
    return out


def baseline_nearest(case: CompletionCase, k: int = 1):
    """Copy the missing joints from the training row closest on the observed joints of the same part(s).
    With ``k`` > 1 also returns the k nearest rows' answers (k, N, 256), closest first."""
    dims = layout.names_to_dims(case.missing)
    obs = np.setdiff1d(layout.names_to_dims(case.nn_on), dims)
    q = torch.from_numpy(case.truth[:, obs])
    ref = torch.from_numpy(case.train_pool[:, obs])
    nn = torch.cdist(q, ref).topk(k, dim=1, largest=False).indices.numpy()  # (N, k)
    hyp = np.repeat(case.truth[None], k, 0)
    for i in range(k):
        hyp[i][:, dims] = case.train_pool[nn[:, i]][:, dims]
    return hyp[0] if k == 1 else (hyp[0], hyp)


def run_completion(prior, case: CompletionCase, cfg: SolverConfig = COMPLETE, hypotheses: int = 1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 vectors (N, 256) and all hypotheses (K, N, 256)."""
    res = complete(prior, case.pose, case.missing, hypotheses=hypotheses, seed=seed, cfg=cfg)
    hyp = layout.dict_to_vectors({key: res[f"{key}_hypotheses"] for key in layout.KEY_SLICES})
    return hyp[0], hyp


# ---------------------------------------------------------------------------------------------------------
# Sizes, the priors under test and their tuning

@dataclass
class Sizes:
    n_test: int | None = 150  # poses per completion case (test split; hands_given_body has 150); None = all
    n_val: int = 64  # poses per case for the validation ablations (schedule, steps, ranking)
    n_tune: int = 48  # poses per case for tuning each prior's one knob
    hypotheses: int = 5
    steps: int | None = None  # solver steps override (None: each task's default)
    gen_n: int = 1000  # generated samples per prior
    gen_steps: int = 100  # DDIM steps
    clean_frames: int | None = None  # truncate takes to this many frames (Bandai: twice that; None: whole takes)
    clean_takes: int | None = None  # Bandai dataset-1 clips in the clean bench (None: all 174)
    clean_every: int = 1  # every n-th Bandai dataset-1 clip (sorted by name) in the clean bench
    gmm_ks: tuple = (1, 2, 4, 8, 16)
    gmm_iters: int = 100
    vae_steps: int = 3000
    step_sweep: tuple = (10, 25, 50, 100, 200, 400)
    speed_reps: int = 5
    bootstrap: int = 1000


FULL = Sizes(n_test=150, n_val=64)
QUICK = Sizes(n_test=8, n_val=8, n_tune=8, hypotheses=3, steps=12, gen_n=48, gen_steps=8, clean_frames=60, clean_takes=2,
              gmm_ks=(1, 2), gmm_iters=10, vae_steps=60, step_sweep=(4, 12), speed_reps=1, bootstrap=100)

# The one knob tuned per solver-based prior, 3 values each. For the diffused priors it is the truncated schedule
# (t_max, t_min): completion has no data term, so Adam makes the prior weight irrelevant there. For the VAE it is the
# weight of its latent norm.
SCHEDULES = ((0.1, 0.02), (0.3, 0.05), (0.5, 0.05))
# The completion solver before the 'denoise' optimiser (a comparison row in `bench steps`, and the Adam half of
# the diffused priors' tuning grid, so no baseline is held to a solver chosen for ours)
ADAM_COMPLETE = SolverConfig(steps=200, lr=0.2, t_max=0.3, t_min=0.05, lr_decay="cosine")
ADAM_LABEL = "DPoser, Adam (previous default: lr 0.2 cosine, t 0.3 -> 0.05)"
SOLVER_SETTINGS = tuple((opt, tmax, tmin) for opt in ("denoise", "adam") for tmax, tmin in SCHEDULES)
VAE_WEIGHTS = (0.01, 0.1, 1.0)
LABELS = {"dposer": "**DPoser (ours)**", "combiner": "Combiner (no fusion)", "gaussian": "Gaussian prior (solver)",
          "gmm_parts": "GMM per part (solver)", "smplify_gmm": "SMPLify GMM-8 body (solver)", "vae": "VAE, VPoser-style (latent fit)",
          "mean": "mean pose", "pool_mean": "mean of the nearest-neighbour pool (constant)",
          "nearest": "nearest neighbour (best-of-5: 5 nearest)",
          "gauss_cond": "Gaussian conditional mean (closed form)"}


HAND_PRIOR = ": hand prior alone"  # generation rows of hands sampled from the hand marginal
GEN_LABELS = {"dposer": "DPoser (ours)", "combiner": "Combiner (no fusion)", "gaussian": "Gaussian (exact samples)",
              "gmm_parts": "GMM per part (exact samples)", "smplify_gmm": "SMPLify GMM-8 body (exact samples)",
              "vae": "VAE, VPoser-style (z ~ N(0, I) decoded)"}


class Context:
    """Our prior, the baselines fitted on the same training split, and each one's tuned knob (lazily built)."""

    def __init__(self, prior: Prior, root=None, sizes: Sizes = FULL, images: Path | None = None):
        self.prior = prior
        self.root = root
        self.sizes = sizes
        self.images = images
        self._priors = None
        self._rows = None
        self.settings: dict = {}
        self.tuning_table = ""
        self.fit_log: dict[str, str] = {}

    @property
    def quick(self) -> bool:
        return self.sizes is QUICK

    @property
    def rows(self):
        if self._rows is None:
            from . import baselines

            self._rows = baselines.training_rows(self.prior.normalizer, root=self.root)
        return self._rows

    @property
    def priors(self) -> dict:
        if self._priors is None:
            from . import baselines as B
            from .vae_prior import vae_prior

            sz = self.sizes
            norm = self.prior.normalizer
            cache = not self.quick
            t0 = time.time()
            g = B.gaussian_prior(norm, rows=self.rows)
            self.fit_log["gaussian"] = f"{time.time() - t0:.0f} s"
            t0 = time.time()
            gmm = B.part_gmm_prior(norm, root=self.root, ks=sz.gmm_ks, iters=sz.gmm_iters, rows=self.rows,
                                   use_cache=cache)
            self.fit_log["gmm_parts"] = (f"K per part chosen on val from {list(sz.gmm_ks)}: " + ", ".join(
                f"{p} {c['k']}" for p, c in gmm.info["chosen"].items()) + f" ({time.time() - t0:.0f} s or cached)")
            t0 = time.time()
            vae = vae_prior(norm, root=self.root, steps=sz.vae_steps, rows=self.rows, use_cache=cache)
            rec = _vae_recon_mm(vae, norm, self.root)
            self.fit_log["vae"] = (f"{sz.vae_steps} Adam steps per part, batch 256, latent 32, KL weight annealed 0 -> 0.05; "
                                   f"final recon (sum of squares, normalised) / KL body {vae.info['body']['recon']:.1f} / "
                                   f"{vae.info['body']['kl']:.1f}, hand {vae.info['hand']['recon']:.1f} / "
                                   f"{vae.info['hand']['kl']:.1f}; body reconstruction through the encoder mean: "
                                   f"{rec['train']:.0f} mm MPJPE on training poses, {rec['test']:.0f} mm on the test split "
                                   f"({time.time() - t0:.0f} s or cached)")
            self._priors = {"dposer": self.prior, "combiner": B.combiner_prior(self.prior), "gaussian": g,
                            "gmm_parts": gmm, "smplify_gmm": B.smplify_gmm_prior(norm, self.root, rest=gmm), "vae": vae}
        return self._priors

    def cfg(self, base: SolverConfig, setting: tuple | None = None) -> SolverConfig:
        """``base``, or the completion solver at a tuning ``setting`` (optimiser, t_max, t_min) with base's steps."""
        cfg = base
        if setting is not None:
            opt, tmax, tmin = setting
            if opt != base.optimizer:
                cfg = (ADAM_COMPLETE if opt == "adam" else COMPLETE).with_(steps=base.steps)
            cfg = cfg.with_(t_max=tmax, t_min=tmin)
        return cfg.with_(steps=self.sizes.steps) if self.sizes.steps else cfg

    def configured(self, name: str, base: SolverConfig = COMPLETE, setting=None, tuned: bool = True):
        """(prior object, solver config) of a solver-based prior at its tuned (or given) setting; with
        ``tuned=False`` the diffused priors keep ``base``'s schedule (cleaning: every prior at the task defaults)."""
        w = (self.setting(name) if tuned else None) if setting is None else setting
        p = self.priors[name]
        if name == "vae":
            return p.with_weight(VAE_WEIGHTS[1] if w is None else w), self.cfg(base)
        return p, self.cfg(base, w)

    def setting(self, name: str):
        if not self.settings:
            self.tune()
        return self.settings[name]

    def tune(self) -> str:
        """Each solver-based prior's one knob, 3 values, on the validation split (rank-1, one hypothesis): the value
        with the lowest mean relative error (MPJPE / mean-pose MPJPE, averaged over the five tasks) is kept."""
        cases = completion_cases("val", self.sizes.n_tune, self.root)
        mean_err = {c.name: completion_error(baseline_mean(c), c)["mpjpe_mm"] for c in cases}
        lines = ["| prior | knob | value | " + " | ".join(f"{c.name} mm" for c in cases) + " | mean rel. error | kept |",
                 "|---|---|---|" + "---|" * (len(cases) + 2)]
        for name in self.priors:
            values = VAE_WEIGHTS if name == "vae" else SOLVER_SETTINGS
            results = []
            for w in values:
                p, cfg = self.configured(name, setting=w)
                errs = [completion_error(run_completion(p, c, cfg)[0], c)["mpjpe_mm"] for c in cases]
                results.append((w, errs, float(np.mean([e / mean_err[c.name] for e, c in zip(errs, cases)]))))
            best = min(results, key=lambda r: r[2])[0]
            self.settings[name] = best
            knob = "latent weight" if name == "vae" else "optimiser, schedule t_max -> t_min"
            for w, errs, rel in results:
                lines.append(f"| {LABELS[name]} | {knob} | {_setting_str(w)} | " + " | ".join(f"{e:.1f}" for e in errs) +
                             f" | {rel:.3f} | {'**yes**' if w == best else ''} |")
        self.tuning_table = "\n".join(lines)
        return self.tuning_table


def _vae_recon_mm(vae, norm, root) -> dict:
    out = {}
    body = vae.vaes["body"]
    for split in ("train", "test"):
        x = data.load_part_set("body", split, root).vectors[:500]
        xn = norm.normalize(torch.from_numpy(x))
        with torch.no_grad():
            xn[:, layout.PART_SLICES["body"]] = body.dec(body.encode(xn[:, layout.PART_SLICES["body"]])[0])
        r = norm.denormalize(xn).numpy()
        out[split] = 1000 * (metrics.part_joints(r, "body") - metrics.part_joints(x, "body")).norm(dim=-1).mean().item()
    return out


def _setting_str(w) -> str:
    return f"{w[0]}, t {w[1]:g} -> {w[2]:g}" if isinstance(w, tuple) else f"latent w {w:g}"


def bootstrap_ci(x: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean by resampling the test poses ``n`` times."""
    x = np.asarray(x, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(x), (n, len(x)))
    m = x[idx].mean(1)
    return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def _fmt_ci(x: np.ndarray, n: int, digits: int = 1) -> str:
    lo, hi = bootstrap_ci(x, n)
    return f"{x.mean():.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _savefig(fig, ctx: Context, name: str) -> str:
    import matplotlib.pyplot as plt

    if ctx.images is None:
        plt.close(fig)
        return ""
    ctx.images.mkdir(parents=True, exist_ok=True)
    from ..formats.npz import atomic_write

    with atomic_write(ctx.images / name) as f:
        fig.savefig(f, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f"\n\n![{name}](images/{name})"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
