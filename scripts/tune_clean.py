"""Tuning set for the cleaner's thresholds: Bandai Namco dataset-2 clips (training data of the prior, never the
held-out dataset-1 that `dposer bench clean` reports), with the same fault model and metrics as the benchmark.

    python scripts/tune_clean.py [--every 60] [--set NAME=VALUE ...]

prints ours / the better filter over all frames and on fault frames, and the unfaulted takes' mean / max change.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dposer.tasks import cleaning, faults
from dposer.eval.cleaning import Take, _tune_filters, bandai_takes, clean_methods, run_clean_bench, tuning_takes
from dposer.core.prior import load_prior


def dataset2_takes(every: int, root=None) -> list[Take]:
    """Every ``every``-th dataset-2 clip by name, converted once and cached outside the repository."""
    cache = Path.home() / ".cache" / "dposer" / f"tune_clean_dataset2_every{every}.npz"
    if cache.exists():
        z = np.load(cache)
        names = sorted({k.split("/")[0] for k in z.files})
        return [Take(n, z[f"{n}/v"], z[f"{n}/orient"], z[f"{n}/trans"], float(z[f"{n}/fps"])) for n in names]
    takes = bandai_takes(root, every=every, dataset=2)
    arrays = {}
    for t in takes:
        arrays |= {f"{t.name}/v": t.vectors, f"{t.name}/orient": t.orient, f"{t.name}/trans": t.trans,
                   f"{t.name}/fps": np.float64(t.fps)}
    np.savez(cache, **arrays)
    return takes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=60)
    ap.add_argument("--set", nargs="*", default=[])
    a = ap.parse_args()
    for kv in a.set:
        k, v = kv.split("=")
        setattr(cleaning, k, type(getattr(cleaning, k))(v))
    model = faults.FaultModel()
    sigma, cutoff, _ = _tune_filters(tuning_takes(), model)
    prior = load_prior()
    methods = clean_methods(prior, sigma, cutoff)
    takes = [t for t in dataset2_takes(a.every) if len(t.vectors) >= model.min_frames]
    rows = run_clean_bench(prior, takes, methods, model, seed0=1000)
    names = list(methods)
    ours = rows[names[0]]
    best = min(names[2:], key=lambda n: np.mean([m["err"] for m in rows[n]]))
    r_all = np.mean([m["err"] for m in ours]) / np.mean([m["err"] for m in rows[best]])
    r_ff = np.nanmean([m["err_fault"] for m in ours]) / np.nanmean([m["err_fault"] for m in rows[best]])
    worst = max(zip([m["clean_max"] for m in ours], [t.name for t in takes]))
    print(f"{len(takes)} dataset-2 clips {a.set}: ours/filter all {r_all:.3f} fault {r_ff:.3f}; "
          f"unfaulted mean {np.mean([m['clean_mean'] for m in ours]):.3f} max {worst[0]:.1f} ({worst[1]}); "
          f"ours err {np.mean([m['err'] for m in ours]):.2f} filter {np.mean([m['err'] for m in rows[best]]):.2f}")
    for name in names:
        print(f"  {name}: err {np.mean([m['err'] for m in rows[name]]):.2f} fault "
              f"{np.nanmean([m['err_fault'] for m in rows[name]]):.2f} skate {np.nanmean([m['skate'] for m in rows[name]]):.1f}")


if __name__ == "__main__":
    main()
