"""Held-out evaluation of generated poses (model card numbers) against the test splits.

Rows compared at equal sample counts: the prior, a Gaussian fitted to the training split (the FID floor:
FID only compares means and covariances), and the held-out validation split itself (real data: the ceiling).
"""
from __future__ import annotations

import numpy as np
import torch

from ..formats import data
from ..spec import layout
from . import metrics
from ..core.prior import Prior
from ..core.sampling import sample


def _part_rows(vectors: np.ndarray, part: str) -> np.ndarray:
    """Raw rows of a part: body 63-D; hands 45-D in right-hand convention (both hands pooled when present)."""
    return vectors[:, layout.PART_SLICES["body" if part == "body" else "right_hand"]]


def _gaussian_samples(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu, cov = metrics.stats(train)
    return rng.multivariate_normal(mu, cov, size=n).astype(np.float32)


def _as_vectors(rows: np.ndarray, part: str) -> np.ndarray:
    v = np.zeros((len(rows), layout.DIM), np.float32)
    v[:, layout.PART_SLICES["body" if part == "body" else "right_hand"]] = rows
    return v


def _row(name, rows, part, test, train_joints, fid_stats):
    test_joints = metrics.part_joints(_as_vectors(test, part), "body" if part == "body" else "right_hand")
    joints = metrics.part_joints(_as_vectors(rows, part), "body" if part == "body" else "right_hand")
    r = {"rows": name, "n": len(rows)}
    r["fid_shipped"] = metrics.fid_from_stats(*metrics.stats(rows), fid_stats["mu"], fid_stats["sigma"])
    r["fid_test"] = metrics.fid(rows, test)
    r.update(metrics.prdc(test, rows, k=3))
    r["apd_cm"] = 100 * metrics.apd(joints[:500])
    r["nn_mm"] = 1000 * metrics.nearest_neighbour_distance(joints, train_joints)
    r["nn_test_mm"] = 1000 * metrics.nearest_neighbour_distance(test_joints, joints)
    return r


def evaluate_generation(prior: Prior, n: int = 1000, seed: int = 0, sampler: str = "ddim",
                        steps: int | None = None, root=None) -> dict[str, list[dict]]:
    """Per part (body, hand): rows for the prior, the Gaussian baseline and held-out real data.

    Body rows are the body poses of whole-body samples. Hand rows: the hand prior (right hands sampled from their
    marginal, the network seeing no other part), and the hands of the whole-body samples (left ones mirrored).

    Columns: FID against the shipped training statistics and against the test split; precision, recall,
    density, coverage (k=3, Euclidean in raw axis-angle, real = test split); APD (cm, built-in skeleton);
    nn_mm: mean per-joint distance of each sample to its nearest training pose (mm; small = copies or
    realistic, large = off-manifold); nn_test_mm: each test pose to its nearest sample (mm; small = the samples
    cover the test poses).
    """
    vec = layout.dict_to_vectors(sample(prior, n, seed=seed, sampler=sampler, steps=steps))
    hand_prior = layout.dict_to_vectors(sample(prior, n, seed=seed, sampler=sampler, steps=steps, parts="right_hand"))
    root = data.data_root(root)
    out = {}
    for part, fid_file in (("body", "body_fid_statistics.npz"), ("hand", "hand_fid_statistics.npz")):
        test = _part_rows(data.load_part_set(part, "test", root).vectors, part)
        train = _part_rows(data.load_part_set(part, "train", root).vectors, part)
        val = _part_rows(data.load_part_set(part, "val", root).vectors, part)[:n]
        fid_stats = dict(np.load(root / "dposer_x" / fid_file))
        train_joints = metrics.part_joints(_as_vectors(train, part), "body" if part == "body" else "right_hand")
        ours = _part_rows(vec, part)
        if part == "hand":  # pool the mirrored left hands with the right hands, then take n
            ours = np.concatenate([ours, layout.mirrored_hand(vec, "left_hand")])[
                np.random.default_rng(seed).permutation(2 * n)[:n]]
        rows = [_row("dposer (ours)" if part == "body" else "dposer: hands of whole-body samples", ours, part, test,
                     train_joints, fid_stats)]
        if part == "hand":
            rows.insert(0, _row("dposer (ours): hand prior", _part_rows(hand_prior, part), part, test, train_joints,
                                fid_stats))
        rows += [
            _row("gaussian fit to train", _gaussian_samples(train, n, seed), part, test, train_joints, fid_stats),
            _row("real: held-out val split", val, part, test, train_joints, fid_stats),
        ]
        out[part] = rows
    return out


def markdown_table(results: dict[str, list[dict]]) -> str:
    cols = ["rows", "n", "fid_shipped", "fid_test", "precision", "recall", "density", "coverage", "apd_cm", "nn_mm", "nn_test_mm"]
    lines = []
    for part, rows in results.items():
        lines.append(f"\n**{part}**\n")
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows:
            lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def seed_spread_table(runs: list[dict[str, list[dict]]], seeds: list[int]) -> str:
    """Mean +- standard deviation over several seeds of precision, density and coverage, per part and row."""
    cols = ("precision", "density", "coverage")
    lines = [f"\nseeds {seeds[0]}..{seeds[-1]} (mean +- std over {len(runs)} runs)\n"]
    for part in runs[0]:
        lines.append(f"\n**{part}**\n")
        lines.append("| rows | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for i, row in enumerate(runs[0][part]):
            vals = [[run[part][i][c] for run in runs] for c in cols]
            lines.append(f"| {row['rows']} | " + " | ".join(f"{np.mean(v):.3f} +- {np.std(v):.3f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"
