"""Held-out body completion of checkpoints against baselines fitted to the same body data (``dposer bench heldout``).

    dposer bench heldout --checkpoint A.safetensors [--against B.safetensors] [--n 300] [--hypotheses K]

Test sets: the AMASS body test split (what ``bench completion`` uses), the two whole AMASS takes in the shared data
(other subjects than the training poses; ``n`` frames spread evenly over their 1,101) and converted Bandai Namco
dataset-1 frames (``dposer corpus`` cache; never trained on), ``n`` frames spread evenly over all 174 takes.
Tasks: left_leg, right_arm, trunk (the joints are filled in; the rest of the body is given). Rows: each checkpoint
(the default completion solver; with ``hypotheses`` K > 1 the mean of K, as ``dposer complete --hypotheses K``
returns it) and, for each body training pool - AMASS train (v1's body data) and AMASS train + converted Bandai
dataset-2 (v2's: every ``stride``-th frame, plus mirror images) - the nearest neighbour on the observed joints and
the Gaussian conditional mean (least squares on the pool); and, for a limb, its mirror image: the other side's limb
mirrored across the body (free, no data). Intervals: 95% bootstrap over the test poses; checkpoint differences are
paired (the same poses). With two checkpoints the hand tasks of ``bench completion`` (hands given body, pinky +
ring given hand) are compared too.
"""
from __future__ import annotations

import time

import numpy as np

from . import bench
from ..formats import data
from ..spec import layout
from ..train.corpus import default_path, load_body
from ..tasks.pose_tasks import complete

TASKS = ("left_leg", "right_arm", "trunk")
MIRRORED = "mirrored other limb"


def _vec(body: np.ndarray) -> np.ndarray:
    v = np.zeros((len(body), layout.DIM), np.float32)
    v[:, layout.PART_SLICES["body"]] = body
    return v


def _spread(x: np.ndarray, n: int) -> np.ndarray:
    return x[np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int)]


def test_sets(root=None, n: int = 300, bandai1=None) -> dict[str, np.ndarray]:
    amass = data.load_part_set("body", "test", root).vectors
    takes = np.concatenate([_vec(t.vectors[:, layout.PART_SLICES["body"]])
                            for t in (data.load_amass_take(root), data.load_finger_take(root))])
    return {"AMASS body test split": amass[:n], "AMASS takes (500 + 601 frames, unseen)": _spread(takes, n),
            "Bandai Namco dataset-1 (converted, held out)": _vec(_spread(load_body(bandai1 or default_path(1)), n))}


def mirrored_limb(truth: np.ndarray, missing: str) -> np.ndarray | None:
    """The missing limb filled with the other side's, mirrored (``layout.mirror_pose``); None for the trunk."""
    if not missing.startswith(("left_", "right_")):
        return None
    m = layout.names_to_dims(missing)
    out = truth.copy()
    out[:, m] = layout.mirror_pose(truth)[:, m]
    return out


def body_pools(root=None, bandai2=None, stride: int = 4) -> dict[str, np.ndarray]:
    amass = data.load_part_set("body", "train", root).vectors
    b2 = _vec(load_body(bandai2 or default_path(2), stride))
    return {"AMASS": amass, "AMASS + Bandai-2": np.concatenate([amass, b2, layout.mirror_pose(b2)])}


def gaussian_conditional(pool: np.ndarray, truth: np.ndarray, missing: str) -> np.ndarray:
    """Conditional mean of a Gaussian fitted to the pool's body dims: least squares of the missing dims on the rest."""
    m = layout.names_to_dims(missing)
    body = layout.PART_SLICES["body"]
    o = np.setdiff1d(np.arange(body.start, body.stop), m)
    x = pool[:, body].astype(np.float64)
    mu, S = x.mean(0), np.cov(x.T) + 1e-6 * np.eye(x.shape[1])
    coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    out = truth.copy()
    out[:, m] = mu[m] + (truth[:, o] - mu[o]) @ coef
    return out


def _case(task: str, truth: np.ndarray, pool: np.ndarray) -> bench.CompletionCase:
    return bench.CompletionCase(task, {"body_pose": truth[:, layout.KEY_SLICES["body_pose"]]}, truth, task, "body", "body", pool, pool.mean(0))


def _completed(prior, case: bench.CompletionCase, hypotheses: int) -> np.ndarray:
    """What ``dposer complete`` returns under the standard keys: the hypothesis, or the mean of several."""
    res = complete(prior, case.pose, case.missing, hypotheses=hypotheses, seed=0)
    return layout.dict_to_vectors({key: res[key] for key in layout.KEY_SLICES})


def _ci(x: np.ndarray, digits: int = 1) -> str:
    lo, hi = bench.bootstrap_ci(x)
    return f"{x.mean():.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def run(priors: dict, root=None, n: int = 300, stride: int = 4, log=print, hypotheses: int = 1) -> tuple[str, dict]:
    """Markdown tables and {set: {task: {row: per-pose MPJPE mm}}} for the checkpoints in ``priors`` (label ->
    Prior)."""
    sets, pools = test_sets(root, n), body_pools(root, stride=stride)
    res: dict = {}
    lines = ["Body pools: " + ", ".join(f"{k} {len(v):,} rows" for k, v in pools.items()) + ".", ""]
    for set_name, truth in sets.items():
        res[set_name] = {}
        lines += [f"**{set_name}** ({len(truth)} poses): MPJPE mm over the moved body joints "
                  "[95% bootstrap interval], mean geodesic deg of the filled joints", "",
                  "| method | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
        rows: dict[str, list] = {}
        for task in TASKS:
            errs = {}
            for pool_name, pool in pools.items():
                case = _case(task, truth, pool)
                errs[f"nearest neighbour ({pool_name})"] = bench.completion_errors(bench.baseline_nearest(case), case)
                errs[f"Gaussian conditional ({pool_name})"] = bench.completion_errors(
                    gaussian_conditional(pool, truth, task), case)
            mirrored = mirrored_limb(truth, task)
            if mirrored is not None:
                errs[MIRRORED] = bench.completion_errors(mirrored, case)
            case = _case(task, truth, pools["AMASS"])
            for label, prior in priors.items():
                t0 = time.time()
                errs[label] = bench.completion_errors(_completed(prior, case, hypotheses), case)
                log(f"heldout: {set_name} / {task} / {label}: {errs[label]['mpjpe_mm'].mean():.1f} mm "
                    f"({time.time() - t0:.0f} s)")
            res[set_name][task] = {k: e["mpjpe_mm"] for k, e in errs.items()}
            for k, e in errs.items():
                rows.setdefault(k, {})[task] = f"{_ci(e['mpjpe_mm'])} mm, {e['geodesic_deg'].mean():.1f} deg"
        for k, cells in rows.items():
            lines.append(f"| {k} | " + " | ".join(cells.get(task, "n/a") for task in TASKS) + " |")
        lines.append("")
    labels = list(priors)
    lines += ["Paired differences of MPJPE (mm; negative = the first is better) [95% paired bootstrap interval]:", "",
              "| test set | task | " + " | ".join(_pairs(labels)) + " |", "|---|---|" + "---|" * len(_pairs(labels))]
    for set_name, tasks in res.items():
        for task, r in tasks.items():
            cells = [_ci(r[a] - r[b]) if b in r else "n/a" for a, b in _pair_keys(labels)]
            lines.append(f"| {set_name} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines), res


def _pair_keys(labels: list[str]) -> list[tuple[str, str]]:
    out = []
    if len(labels) > 1:
        out.append((labels[-1], labels[0]))
    for lab in labels:
        for pool in ("AMASS", "AMASS + Bandai-2"):
            out.append((lab, f"Gaussian conditional ({pool})"))
        out.append((lab, MIRRORED))
    return out


def _pairs(labels: list[str]) -> list[str]:
    return [f"{a} - {b}" for a, b in _pair_keys(labels)]


def hand_tasks(priors: dict, root=None, n: int = 150, hypotheses: int = 1) -> str:
    """Hands given body and pinky + ring given hand (``bench completion``'s hand tasks): each checkpoint, default
    solver (``hypotheses`` as in :func:`run`); paired difference of the last against the first."""
    labels = list(priors)
    lines = ["| task | " + " | ".join(f"{lab} mm" for lab in labels) +
             (f" | {labels[-1]} - {labels[0]} mm (paired)" if len(labels) > 1 else "") + " |",
             "|---|" + "---|" * (len(labels) + (len(labels) > 1))]
    for case in bench.completion_cases("test", n, root):
        if case.scope != "hands":
            continue
        errs = {lab: bench.completion_errors(_completed(p, case, hypotheses), case)["mpjpe_mm"]
                for lab, p in priors.items()}
        cells = [_ci(errs[lab], 2) for lab in labels]
        if len(labels) > 1:
            cells.append(_ci(errs[labels[-1]] - errs[labels[0]], 2))
        lines.append(f"| {case.name} ({len(case.truth)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_cli(a, prior, against=None) -> None:
    """``dposer bench heldout`` (parsed arguments ``a``): the held-out body section for ``prior`` (and ``against``)."""
    priors = {f"DPoser {a.label}": prior}
    if against is not None:
        priors = {f"DPoser {a.against_label}": against, **priors}
    t0 = time.time()
    k = a.hypotheses or 1
    body, _ = run(priors, a.data, n=a.n or 300, hypotheses=k)
    body = (f"Checkpoints: the mean of {k} hypotheses per pose (`dposer complete --hypotheses {k}`).\n\n" if k > 1 else
            "Checkpoints: one hypothesis per pose (`dposer complete`'s default).\n\n") + body
    body += "\n\nHand tasks (test split):\n\n" + hand_tasks(priors, a.data, hypotheses=k)
    print(f"## heldout ({time.time() - t0:.0f} s)\n{body}\n", flush=True)
    if a.write:
        cmd = "dposer bench heldout" + " ".join(f" --{k} {v}" for k, v in (
            ("checkpoint", a.checkpoint), ("label", a.label), ("against", a.against),
            ("against-label", a.against_label if a.against else None), ("n", a.n), ("hypotheses", a.hypotheses),
            ("write", a.write)) if v)
        bench.write_section(a.write, "heldout", body + f"\n\n*({time.time() - t0:.0f} s)*", cmd)
