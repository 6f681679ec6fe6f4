"""Generation metrics: FID, precision/recall/density/coverage (k-NN), APD and nearest-neighbour distance."""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from ..spec import layout
from ..core import kinematics as skeleton


def fid_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between two Gaussians (pytorch-fid numerics)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def fid(samples: np.ndarray, reference: np.ndarray) -> float:
    return fid_from_stats(*stats(samples), *stats(reference))


def _kth(d: torch.Tensor, k: int) -> torch.Tensor:
    """Distance to the k-th nearest other point (self-distance 0 excluded) for a square distance matrix."""
    return d.kthvalue(k + 1, dim=1).values


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Precision, recall, density, coverage of Naeem et al. (2020) with Euclidean k-NN balls."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    r_rad = _kth(torch.cdist(r, r), k)
    f_rad = _kth(torch.cdist(f, f), k)
    d_rf = torch.cdist(r, f)  # (R, F)
    inside = d_rf < r_rad[:, None]
    return {
        "precision": inside.any(0).double().mean().item(),
        "recall": (d_rf < f_rad[None, :]).any(1).double().mean().item(),
        "density": inside.double().sum(0).mean().item() / k,
        "coverage": (d_rf.min(1).values < r_rad).double().mean().item(),
    }


def part_joints(vectors: np.ndarray, part: str) -> torch.Tensor:
    """Joint positions on the built-in skeleton for a part: 'body' -> 22 joints (pelvis at rest, zero root);
    'right_hand'/'left_hand' -> 15 finger joints relative to the wrist (wrist and arm at rest)."""
    v = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    full = torch.zeros(len(v), layout.DIM)
    if part == "body":
        body = layout.PART_SLICES["body"]
        full[:, body] = v[:, body]
        return skeleton.joints_from_vector(full)[:, :22]
    sl = layout.PART_SLICES[part]
    full[:, sl] = v[:, sl]
    j = skeleton.joints_from_vector(full)
    wrist = layout.JOINT_INDEX[part.replace("_hand", "_wrist")]
    first = 25 if part == "left_hand" else 40
    return j[:, first:first + 15] - j[:, wrist : wrist + 1]


def apd(joints: torch.Tensor) -> float:
    """Average pairwise distance (mean per-joint Euclidean, metres) over ordered pairs i != j."""
    n = len(joints)
    flat = joints.reshape(n, -1, 3)
    d = (flat[:, None] - flat[None]).norm(dim=-1).mean(-1)
    return float(d.sum() / (n * (n - 1)))


def nearest_neighbour_distance(joints: torch.Tensor, reference: torch.Tensor, chunk: int = 512) -> float:
    """Mean over samples of the mean per-joint distance (metres) to the closest reference pose."""
    ref = reference.reshape(len(reference), -1, 3)
    out = []
    for s in range(0, len(joints), chunk):
        q = joints[s : s + chunk].reshape(-1, ref.shape[1], 3)
        d = (q[:, None] - ref[None]).norm(dim=-1).mean(-1)
        out.append(d.min(1).values)
    return float(torch.cat(out).mean())
