"""What Clean changes on takes without faults: every repair that moves a body joint by more than ``--over`` mm.

    python scripts/clean_changes.py [--dataset 1|2] [--every N] [--over 20]

Cleans each unfaulted Bandai Namco clip (at least the fault model's 37 frames) with the default settings and lists
the repairs (joint, frames, kind) whose frames change a joint by more than ``--over`` mm, largest first, with a count
per joint. Dataset 2 (the prior's training data) is where the cleaner is tuned; dataset 1 is the held-out set of
`dposer bench clean`: read its list to understand a result, not to tune.
"""
from __future__ import annotations

import argparse
from collections import Counter

from dposer.tasks import faults
from dposer.eval import metrics
from dposer.eval.cleaning import _BODY, bandai_takes
from dposer.core.prior import load_prior
from dposer.tasks.pose_tasks import clean


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=int, choices=[1, 2], default=2)
    ap.add_argument("--every", type=int, default=None, help="every N-th clip by name (default: 1 for dataset 1, 60 for 2)")
    ap.add_argument("--over", type=float, default=20.0)
    a = ap.parse_args()
    every = a.every or (1 if a.dataset == 1 else 60)
    prior = load_prior()
    events, n = [], 0
    for t in bandai_takes(every=every, dataset=a.dataset):
        if len(t.vectors) < faults.FaultModel().min_frames:
            continue
        n += 1
        res = clean(prior, {"body_pose": t.vectors[:, _BODY], "global_orient": t.orient})
        v = t.vectors.copy()
        v[:, _BODY] = res["body_pose"]
        d = 1000 * (metrics.part_joints(v, "body") - metrics.part_joints(t.vectors, "body")).norm(dim=-1)
        for r in res["repaired"]:
            mm = float(d[r["first"]:r["last"] + 1].max())
            if mm > a.over:
                events.append((mm, t.name, r["joint"], r["first"], r["last"], r["kind"]))
    events.sort(reverse=True)
    print(f"dataset-{a.dataset}, {n} clips: {len(events)} repairs move a joint > {a.over:g} mm, in "
          f"{len({e[1] for e in events})} clips; by joint {dict(Counter(e[2] for e in events))}")
    for mm, name, joint, first, last, kind in events:
        print(f"  {mm:6.1f} mm  {name}  {joint}  frames {first}-{last}  {kind}")


if __name__ == "__main__":
    main()
