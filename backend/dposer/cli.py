"""The ``dposer`` command line."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def _bar(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, dynamic_ncols=True, file=sys.stderr)

    def progress(i, n):
        bar.update(1)
        if i == n:
            bar.close()
    return progress


def cmd_train(a):
    from .train import TrainConfig, train

    cfg = TrainConfig.load(a.config)
    if a.steps:
        cfg.steps = a.steps
    cmd = "dposer " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    res = train(cfg, a.out, seed=a.seed, resume=a.resume, data_root=a.data, command=cmd, stop_at=a.stop_at,
                init=a.init)
    if res["history"]:
        print(json.dumps(res["history"][-1]))


def cmd_sample(a):
    from .prior import load_prior
    from .sampling import sample

    prior = load_prior(a.checkpoint, a.device, a.precision)
    steps = a.steps or (1000 if a.sampler == "em" else 100)
    batch = min(a.n, 4096)
    chunks = (a.n + batch - 1) // batch
    poses = sample(prior, a.n, seed=a.seed, sampler=a.sampler, steps=steps, batch=batch, parts=a.parts,
                   progress=_bar(steps * chunks, f"sampling ({a.sampler}, {steps} steps)"))
    np.savez(a.output, **poses)
    print(f"wrote {a.n} poses to {a.output} (keys: {', '.join(poses)})")
    if a.image:
        from .render import pose_grid
        from .sampling import to_vectors

        pose_grid(to_vectors(poses)[: a.image_count], a.image, title=f"dposer sample --seed {a.seed}")
        print(f"wrote {a.image}")


def cmd_evaluate(a):
    from .evaluation import evaluate_generation, markdown_table
    from .prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    t0 = time.time()
    res = evaluate_generation(prior, n=a.n, seed=a.seed, sampler=a.sampler, steps=a.steps, root=a.data)
    table = markdown_table(res)
    print(table)
    print(f"({time.time() - t0:.0f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.repeat_seeds > 1:  # precision / coverage move by ~0.01 between seeds at n = 1000: show the spread
        from .evaluation import seed_spread_table

        runs = [res] + [evaluate_generation(prior, n=a.n, seed=a.seed + i, sampler=a.sampler, steps=a.steps,
                                            root=a.data) for i in range(1, a.repeat_seeds)]
        print(seed_spread_table(runs, seeds=list(range(a.seed, a.seed + a.repeat_seeds))))


def _load_input(path, hands="absolute"):
    from .data import load_pose_file

    ps = load_pose_file(path, hands=hands)
    pose = ps.to_dict()
    for key in list(pose):  # keys absent from the input stay absent, so the solver fills them in
        if key != "global_orient" and not ps.present[:, _key_dims(key)].all():
            pose.pop(key)
    return ps, pose


def _key_dims(key):
    from .layout import KEY_SLICES

    return KEY_SLICES[key]


def _save(path, result: dict, ps=None):
    out = {k: v for k, v in result.items()}
    if ps is not None:
        for k in ("trans", "betas"):
            if k in ps.extras:
                out[k] = ps.extras[k]
    np.savez(path, **out)
    print(f"wrote {path} (keys: {', '.join(out)})")


def _solver_cfg(a, base):
    cfg = base
    if getattr(a, "schedule", None):
        cfg = cfg.with_(schedule=a.schedule)
    if getattr(a, "steps", None):
        cfg = cfg.with_(steps=a.steps)
    return cfg


def cmd_complete(a):
    from .prior import load_prior
    from .tasks import COMPLETE, complete

    from .layout import names_to_dims

    names_to_dims(a.missing)  # report unknown names before loading anything
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    cfg = _solver_cfg(a, COMPLETE)
    res = complete(prior, pose, a.missing, hypotheses=a.hypotheses, seed=a.seed, cfg=cfg, combine=a.combine,
                   progress=_bar(cfg.steps, "complete"))
    _save(a.output, res, ps)
    if a.image:
        from .render import pose_grid
        from .sampling import to_vectors

        k = min(a.image_count, len(ps))
        pairs = np.stack([ps.vectors[:k], to_vectors(res)[:k]], 1).reshape(2 * k, -1)
        labels = [f"{lab} {i}" for i in range(k) for lab in ("input", "completed")]
        pose_grid(pairs, a.image, cols=2, labels=labels, title=f"dposer complete --missing {a.missing}")
        print(f"wrote {a.image}")


def cmd_clean(a):
    from .prior import load_prior
    from .tasks import CLEAN, clean

    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    from .cleaning import summary

    cfg = _solver_cfg(a, CLEAN)
    res = clean(prior, pose, strength=a.strength, parts=a.parts, lock=a.lock or (), seed=a.seed, cfg=cfg,
                progress=_bar(cfg.steps, "clean"))
    repaired = res.pop("repaired")
    print(f"clean: {summary(repaired, res['cuts'])}; jitter {float(res['jitter_deg']):.2f} deg")
    for r in repaired:
        print(f"  {r['kind']:8s} {r['joint']:15s} frames {r['first']}-{r['last']}")
    for key in ("joint", "first", "last", "kind"):  # plain arrays (no pickled objects in the .npz)
        res[f"repaired_{key}"] = np.asarray([r[key] for r in repaired])
    _save(a.output, res, ps)


def cmd_vary(a):
    from .prior import load_prior
    from .tasks import vary

    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    if not 0 <= a.index < len(ps):
        raise ValueError(f"--index {a.index} is out of range: the input holds {len(ps)} poses")
    one = {k: v[a.index : a.index + 1] for k, v in pose.items()}
    res = vary(prior, one, a.n, strength=a.strength, seed=a.seed, lock=a.lock or ())
    _save(a.output, res)


def cmd_refine(a):
    from .prior import load_prior
    from .tasks import REFINE, refine

    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    res = refine(prior, pose, strength=a.strength, lock=a.lock or (), seed=a.seed,
                 progress=_bar(REFINE.steps, "refine"))
    _save(a.output, res, ps)


def cmd_fit(a):
    from .prior import load_prior
    from .tasks import FIT, fit

    prior = load_prior(a.checkpoint, a.device, a.precision)
    path = Path(a.targets)
    if path.suffix == ".json":
        targets = json.loads(path.read_text())
    else:
        targets = dict(np.load(path, allow_pickle=False))
    pose = None
    ps = None
    if a.input:
        ps, pose = _load_input(a.input, a.hands)
    cfg = _solver_cfg(a, FIT)
    body = None
    if a.smplx_model:
        from .skeleton import SmplxSkeleton

        body = SmplxSkeleton(a.smplx_model, gender=a.gender)
    res = fit(prior, targets, pose=pose, free=a.free, seed=a.seed, cfg=cfg, skeleton=body,
              progress=_bar(cfg.steps, "fit"))
    err = res["target_error"]
    print(f"target error: mean {1000 * err.mean():.1f} mm, max {1000 * err.max():.1f} mm")
    _save(a.output, res, ps)


def cmd_bench(a):
    import dataclasses
    from pathlib import Path

    from . import bench
    from .prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    if a.name == "quick":
        t0 = time.time()
        for name, body in bench.run_quick(prior, a.data).items():
            print(f"## {name}\n{body}\n")
        print(f"bench quick: every table produced, all values finite ({time.time() - t0:.0f} s)")
        return
    sizes = bench.FULL if a.n is None else dataclasses.replace(bench.FULL, n_test=a.n)
    images = Path(a.write).parent / "images" if a.write else None
    ctx = bench.Context(prior, a.data, sizes, images)
    names = list(bench.BENCHES) if a.name == "all" else [a.name]
    for name in names:
        t0 = time.time()
        body = bench.BENCHES[name](ctx)
        print(f"## {name} ({time.time() - t0:.0f} s)\n{body}\n", flush=True)
        if a.write:
            cmd = f"dposer bench {a.name}" + (f" --n {a.n}" if a.n else "") + f" --write {a.write}"
            bench.write_section(a.write, name, body + f"\n\n*({time.time() - t0:.0f} s)*", cmd)


def cmd_export(a):
    import torch

    from .prior import load_prior, save_prior

    prior = load_prior(a.checkpoint)
    save_prior(a.out, prior.net, prior.normalizer, prior.info, dtype=torch.float16 if a.fp16 else torch.float32)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB)")


def cmd_info(a):
    from . import __version__
    from .model import count_parameters
    from .prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    print(json.dumps({"version": __version__, "device": str(prior.device), "parameters": count_parameters(prior.net),
                      "arch": getattr(prior.net, "arch", "dposer-scorenet"), "dim": prior.dim,
                      "net_config": prior.net.cfg.to_dict(), "val": prior.info.get("val"),
                      "command": prior.info.get("command")}, indent=1))


# ---- the authors' released DPoser-X weights (dposer.official, docs/official_weights.md)

def cmd_import_official(a):
    from .official import import_official

    info = import_official(a.checkpoint, a.out, a.kind)
    print(f"wrote {a.out}: official DPoser-X {info['kind']} model ({info['dim']}-D), EMA weights, "
          f"from {info['file']} (sha256 {info['sha256'][:16]}...)")


def cmd_download_official(a):
    from .official import download_official

    for kind, path in download_official(a.out, a.kind, timeout=a.timeout, convert_to_safetensors=not a.no_convert,
                                        log=lambda m: print(m, file=sys.stderr)).items():
        print(f"{kind}: {path}")


def add_official_commands(sub) -> None:
    from .official import HUB_FILES, HUB_REPO

    def kinds(text):
        names = [k for k in text.split(",") if k]
        bad = [k for k in names if k not in HUB_FILES]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(HUB_FILES)} (comma-separated)")
        return names

    o = sub.add_parser("import-official", help="convert an official DPoser-X Lightning .ckpt to a dposer .safetensors")
    o.add_argument("checkpoint", help="the authors' last.ckpt (body, hand, face or wholebody/mixed)")
    o.add_argument("--kind", choices=list(HUB_FILES), default=None, help="expected model (default: detected)")
    o.add_argument("--out", required=True, help="output .safetensors")
    o.set_defaults(func=cmd_import_official)

    d = sub.add_parser("download-official", help=f"download the released weights from Hugging Face {HUB_REPO} "
                       "(needs the 'official' extra and network) and convert them")
    d.add_argument("--out", default="dposer-x", help="folder for the downloads (hub paths kept) and conversions")
    d.add_argument("--kind", type=kinds, default=list(HUB_FILES), help="comma-separated subset of "
                   f"{','.join(HUB_FILES)} (default: all)")
    d.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds (default 10)")
    d.add_argument("--no-convert", action="store_true", help="only download the .ckpt files")
    d.set_defaults(func=cmd_download_official)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dposer", description="DPoser-X whole-body pose prior")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, checkpoint=True):
        if checkpoint:
            sp.add_argument("--checkpoint", default=None, help="prior checkpoint (default: the bundled one)")
        sp.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
        sp.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: faster network on CPUs with native bfloat16, ~0.4%% error in its output")

    t = sub.add_parser("train", help="train a prior (masked mixed training)")
    t.add_argument("--config", required=True, help="JSON config, e.g. backend/dposer/configs/default.json")
    t.add_argument("--out", required=True, help="output folder (last.safetensors, prior.safetensors, log.jsonl)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="override the config's step count")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    t.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later with --resume)")
    t.add_argument("--init", default=None, help="start from this prior checkpoint's weights (fine-tuning)")
    t.add_argument("--data", default=None, help="data folder (default: $DPOSER_DATA or ../shared/data)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate whole-body poses to an npz with the six SMPL-X keys")
    common(s)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sampler", choices=["ddim", "em"], default="ddim",
                   help="ddim: deterministic, 100 steps; em: the paper's Euler-Maruyama, 1000 steps")
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--parts", default=None,
                   help="sample only these parts from their marginal, e.g. right_hand or body,face (default: all)")
    s.add_argument("--output", required=True)
    s.add_argument("--image", default=None, help="also save a PNG grid of the first poses")
    s.add_argument("--image-count", type=int, default=12)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="held-out generation metrics (FID, precision/coverage, APD, NN distance)")
    common(e)
    e.add_argument("--n", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--sampler", choices=["ddim", "em"], default="ddim")
    e.add_argument("--steps", type=int, default=None)
    e.add_argument("--data", default=None)
    e.add_argument("--json", default=None, help="also write the results as JSON")
    e.add_argument("--repeat-seeds", type=int, default=1,
                   help="also rerun with the next seeds and print mean +- std of precision, density and coverage")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write an inference-only checkpoint (optionally fp16)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--fp16", action="store_true")
    x.set_defaults(func=cmd_export)

    def task(name, help_, input_required=True):
        sp = sub.add_parser(name, help=help_)
        common(sp)
        sp.add_argument("--input", required=input_required,
                        help="npz: six SMPL-X keys (any subset), AMASS 'poses', or a body-only / hand-only file")
        sp.add_argument("--hands", choices=["absolute", "relative"], default="absolute",
                        help="hand convention of a six-key input ('relative' = relative to the MANO mean hand)")
        sp.add_argument("--output", required=True)
        sp.add_argument("--seed", type=int, default=0)
        return sp

    c = task("complete", "fill in missing joints (observed joints kept exactly), K ranked hypotheses")
    c.add_argument("--missing", required=True, help="comma-separated part/group/joint names, e.g. right_hand,left_leg")
    c.add_argument("--hypotheses", type=int, default=1)
    c.add_argument("--combine", choices=["best", "mean"], default="best",
                   help="standard keys hold the rank-1 hypothesis (best) or the mean of the hypotheses")
    c.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    c.add_argument("--steps", type=int, default=None)
    c.add_argument("--image", default=None, help="also save a PNG of the first inputs next to their completions")
    c.add_argument("--image-count", type=int, default=3)
    c.set_defaults(func=cmd_complete)

    cl = task("clean", "find and repair the faults of a mocap clip (spikes, pops, held limbs, limit breaks, jitter)")
    cl.add_argument("--strength", type=float, default=0.5)
    cl.add_argument("--parts", default="body", help="what may change (default: body)")
    cl.add_argument("--lock", type=lambda s: [x for x in s.split(",") if x], default=None, help="joints kept exactly")
    cl.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    cl.add_argument("--steps", type=int, default=None)
    cl.set_defaults(func=cmd_clean)

    v = task("vary", "N variations of one pose (strength 0 = identical, 1 = unrelated)")
    v.add_argument("--index", type=int, default=0, help="which pose of the input file")
    v.add_argument("--n", type=int, default=8)
    v.add_argument("--strength", type=float, default=0.3)
    v.add_argument("--lock", type=lambda s: [x for x in s.split(",") if x], default=None)
    v.set_defaults(func=cmd_vary)

    r = task("refine", "make implausible poses plausible with a small change")
    r.add_argument("--strength", type=float, default=0.3)
    r.add_argument("--lock", type=lambda s: [x for x in s.split(",") if x], default=None)
    r.set_defaults(func=cmd_refine)

    f = task("fit", "pose that puts chosen joints at 3D targets (built-in skeleton frame), rest from the prior",
             input_required=False)
    f.add_argument("--targets", required=True, help="JSON {joint: [x, y, z] or [[x, y, z], ...]} or npz keyed by joint")
    f.add_argument("--free", default="body,hands", help="what may move (default: body,hands)")
    f.add_argument("--smplx-model", default=None,
                   help="solve on your own SMPL-X model (folder holding smplx/SMPLX_*.npz; needs the smplx extra)")
    f.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
    f.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    f.add_argument("--steps", type=int, default=None)
    f.set_defaults(func=cmd_fit)

    b = sub.add_parser("bench", help="benchmarks against baseline priors on held-out data (docs/benchmarks.md)")
    common(b)
    b.add_argument("name", choices=["completion", "generation", "clean", "schedule", "steps", "ranking", "speed", "all",
                                    "quick"])
    b.add_argument("--n", type=int, default=None, help="test poses per completion task (default 150)")
    b.add_argument("--data", default=None)
    b.add_argument("--write", default=None, help="update this markdown file's section, e.g. docs/benchmarks.md")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="describe a checkpoint")
    common(i)
    i.set_defaults(func=cmd_info)

    add_official_commands(sub)
    return p


def main(argv=None) -> int:
    from .data import DataError
    from .prior import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"dposer {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
