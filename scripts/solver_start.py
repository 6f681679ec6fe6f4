"""Exploratory (2026-11-30): does the body completion solver do better when it starts the missing joints from a free
answer (the Gaussian conditional mean fitted to AMASS train, or the mirrored other limb) instead of from a random
draw around the mean? Prints mean MPJPE (mm) per test set and task of `dposer bench heldout` (150 poses each), for
the default checkpoint. Starts: 'random (now)' is `dposer.tasks.complete` as shipped; 'from X +s' starts from X
plus s standard deviations of noise (normalised units). A measurement on the held-out sets, not a tuning run:
nothing shipped was chosen from it (docs/model_card.md).

    python scripts/solver_start.py      # about 4 minutes on 2 cores; needs `dposer corpus` for the Bandai sets
"""
import numpy as np
import torch

from dposer.eval import bench, heldout
from dposer.tasks import pose_tasks as tasks
from dposer.core.prior import load_prior
from dposer.core.solver import solve

START = {"mode": "noise", "scale": 0.0}
_shipped = tasks._solve_filled


def _solve_from_given(prior, x, free, k, seed, cfg, init_noise, temporal, progress, cancel):
    """tasks._solve_filled, but the free dims start from the values given in the pose (plus scaled noise)."""
    if START["mode"] == "noise":
        return _shipped(prior, x, free, k, seed, cfg, init_noise, temporal, progress, cancel)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    x = torch.where(free, x + noise * START["scale"], x)
    return solve(prior, x, free, cfg=cfg, seed=seed, progress=progress, cancel=cancel, temporal=temporal)


def main():
    torch.set_num_threads(1)
    tasks._solve_filled = _solve_from_given
    prior = load_prior()
    sets, pools = heldout.test_sets(n=150), heldout.body_pools()
    for set_name, truth in sets.items():
        for task in heldout.TASKS:
            case = heldout._case(task, truth, pools["AMASS"])
            err = {}
            START["mode"] = "noise"
            err["random (now)"] = bench.completion_errors(bench.run_completion(prior, case)[0], case)["mpjpe_mm"]
            gauss = heldout.gaussian_conditional(pools["AMASS"], truth, task)
            err["gauss"] = bench.completion_errors(gauss, case)["mpjpe_mm"]
            for name, start in (("from gauss", gauss), ("from mirror", heldout.mirrored_limb(truth, task))):
                if start is None:
                    continue
                for scale in (0.0, 0.3):
                    START.update(mode="given", scale=scale)
                    res = bench.run_completion(prior, heldout._case(task, start, pools["AMASS"]))[0]
                    err[f"{name} +{scale}"] = bench.completion_errors(res, case)["mpjpe_mm"]
            print(set_name, task, " ".join(f"{k}={np.mean(v):.1f}" for k, v in err.items()), flush=True)


if __name__ == "__main__":
    main()
