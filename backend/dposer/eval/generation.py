"""``dposer bench generation``: FID, precision/recall/density/coverage, APD and plausibility proxies of samples."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from . import metrics
from .cases import Context, GEN_LABELS, HAND_PRIOR, _plt, _savefig


def _joint_angles(rows: np.ndarray) -> np.ndarray:
    r = rows.reshape(len(rows), -1, 3)
    return np.linalg.norm(r, axis=-1)


_BODY_PAIRS = None


def _min_pair_distance(joints: torch.Tensor, part: str) -> torch.Tensor:
    """Self-penetration proxy: per pose, the smallest distance between joints of different limbs (body: arm joints
    elbow/wrist vs the trunk, pelvis and legs, and the two legs' knees/ankles/feet; hand: the five fingertip joints)."""
    if part == "body":
        J = layout.JOINT_INDEX
        arms = [J[f"{s}_{j}"] for s in ("left", "right") for j in ("elbow", "wrist")]
        trunk = [J[j] for j in ("pelvis", "spine1", "spine2", "spine3")]
        legs = {s: [J[f"{s}_{j}"] for j in ("knee", "ankle", "foot")] for s in ("left", "right")}
        pairs = [(a, b) for a in arms for b in trunk + legs["left"] + legs["right"]]
        pairs += [(a, b) for a in legs["left"] for b in legs["right"]]
    else:
        tips = [2, 5, 8, 11, 14]  # third joint of index, middle, pinky, ring, thumb (wrist-relative hand joints)
        pairs = [(a, b) for i, a in enumerate(tips) for b in tips[i + 1:]]
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    return (joints[:, a] - joints[:, b]).norm(dim=-1).min(1).values


def generation_rows(vectors: dict[str, np.ndarray], ctx: Context) -> dict[str, list[dict]]:
    """Per part: generation metrics of each prior's raw samples (N, 256) against the test split."""
    from .evaluation import _as_vectors, _part_rows, _row

    root = data.data_root(ctx.root)
    out = {}
    for part, fid_file in (("body", "body_fid_statistics.npz"), ("hand", "hand_fid_statistics.npz")):
        side = "body" if part == "body" else "right_hand"
        test = _part_rows(data.load_part_set(part, "test", root).vectors, part)
        train = _part_rows(data.load_part_set(part, "train", root).vectors, part)
        val = _part_rows(data.load_part_set(part, "val", root).vectors, part)[: ctx.sizes.gen_n]
        fid_stats = dict(np.load(root / "dposer_x" / fid_file))
        train_joints = metrics.part_joints(_as_vectors(train, part), side)
        lim = np.percentile(_joint_angles(train), 99.9, axis=0)
        pen = np.percentile(_min_pair_distance(train_joints, part).numpy(), 0.1)
        rows = []
        sets = dict(vectors)
        sets["real: held-out val split"] = None
        for name, vec in sets.items():
            if name.endswith(HAND_PRIOR) and part != "hand":
                continue
            if vec is None:
                r_rows = val
            elif name.endswith(HAND_PRIOR):
                r_rows = _part_rows(vec, part)
            else:
                r_rows = _part_rows(vec, part)
                if part == "hand":  # pool mirrored left hands with right hands, keep n
                    r_rows = np.concatenate([r_rows, layout.mirrored_hand(vec, "left_hand")])[
                        np.random.default_rng(0).permutation(2 * len(vec))[: len(vec)]]
            r = _row(name, r_rows, part, test, train_joints, fid_stats)
            r["beyond_limits_pct"] = 100 * float((_joint_angles(r_rows) > lim).any(1).mean())
            j = metrics.part_joints(_as_vectors(r_rows, part), side)
            r["penetration_pct"] = 100 * float((_min_pair_distance(j, part).numpy() < pen).mean())
            rows.append(r)
        out[part] = rows
    return out


def bench_generation(ctx: Context) -> str:
    from ..core.sampling import sample, to_vectors

    n = ctx.sizes.gen_n
    vectors = {}
    times = {}
    for name, p in ctx.priors.items():
        t0 = time.time()
        if name in ("dposer", "combiner"):
            v = to_vectors(sample(p, n, seed=0, steps=ctx.sizes.gen_steps))
            # the hand prior alone: right hands from their marginal (the network sees no other part)
            vectors[GEN_LABELS[name] + HAND_PRIOR] = to_vectors(
                sample(p, n, seed=0, steps=ctx.sizes.gen_steps, parts="right_hand"))
        else:
            v = p.denormalize(p.sample(n, seed=0)).numpy().astype(np.float32)
        times[name] = time.time() - t0
        vectors[GEN_LABELS[name]] = v
    res = generation_rows(vectors, ctx)
    cols = [("fid_shipped", "FID vs shipped stats", 3), ("fid_test", "FID vs test", 3), ("precision", "precision", 3),
            ("recall", "recall", 3), ("density", "density", 3), ("coverage", "coverage", 3), ("apd_cm", "APD cm", 1),
            ("beyond_limits_pct", "beyond joint limits %", 1), ("penetration_pct", "self-penetration proxy %", 1)]
    lines = []
    for part, rows in res.items():
        lines += [f"\n**{part}** ({n} samples per prior; DDIM {ctx.sizes.gen_steps} steps for the diffusion priors, exact "
                  "sampling for the mixtures, z ~ N(0, I) decoded for the VAE)\n",
                  "| prior | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for r in rows:
            if part == "body" or "SMPLify" not in r["rows"]:
                lines.append(f"| {r['rows']} | " + " | ".join(f"{r[k]:.{d}f}" for k, _, d in cols) + " |")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, (part, rows) in zip(axes, res.items()):
        for r in rows:
            if part == "hand" and "SMPLify" in r["rows"]:
                continue  # SMPLify has no hands (its hand block is our hand GMM)
            ax.scatter(r["precision"], r["coverage"], s=30)
            ax.annotate(r["rows"].split(" (")[0].split(",")[0][:18], (r["precision"], r["coverage"]), fontsize=6)
        ax.set_xlabel("precision (k=3)")
        ax.set_ylabel("coverage (k=3)")
        ax.set_title(part)
    fig.tight_layout()
    return "\n".join(lines) + _savefig(fig, ctx, "bench_generation.png")
