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
    res = train(cfg, a.out, seed=a.seed, resume=a.resume, data_root=a.data, command=cmd, stop_at=a.stop_at)
    if res["history"]:
        print(json.dumps(res["history"][-1]))


def cmd_sample(a):
    from .prior import load_prior
    from .sampling import sample

    prior = load_prior(a.checkpoint, a.device)
    steps = a.steps or (1000 if a.sampler == "em" else 100)
    batch = min(a.n, 4096)
    chunks = (a.n + batch - 1) // batch
    poses = sample(prior, a.n, seed=a.seed, sampler=a.sampler, steps=steps, batch=batch,
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

    prior = load_prior(a.checkpoint, a.device)
    t0 = time.time()
    res = evaluate_generation(prior, n=a.n, seed=a.seed, sampler=a.sampler, steps=a.steps, root=a.data)
    table = markdown_table(res)
    print(table)
    print(f"({time.time() - t0:.0f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


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

    prior = load_prior(a.checkpoint, a.device)
    print(json.dumps({"version": __version__, "device": str(prior.device), "parameters": count_parameters(prior.net),
                      "net_config": prior.net.cfg.to_dict(), "val": prior.info.get("val"),
                      "command": prior.info.get("command")}, indent=1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dposer", description="DPoser-X whole-body pose prior")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, checkpoint=True):
        if checkpoint:
            sp.add_argument("--checkpoint", default=None, help="prior checkpoint (default: the bundled one)")
        sp.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")

    t = sub.add_parser("train", help="train a prior (masked mixed training)")
    t.add_argument("--config", required=True, help="JSON config, e.g. backend/dposer/configs/default.json")
    t.add_argument("--out", required=True, help="output folder (last.safetensors, prior.safetensors, log.jsonl)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="override the config's step count")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    t.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later with --resume)")
    t.add_argument("--data", default=None, help="data folder (default: $DPOSER_DATA or ../shared/data)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate whole-body poses to an npz with the six SMPL-X keys")
    common(s)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sampler", choices=["ddim", "em"], default="ddim",
                   help="ddim: deterministic, 100 steps; em: the paper's Euler-Maruyama, 1000 steps")
    s.add_argument("--steps", type=int, default=None)
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
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write an inference-only checkpoint (optionally fp16)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--fp16", action="store_true")
    x.set_defaults(func=cmd_export)

    i = sub.add_parser("info", help="describe a checkpoint")
    common(i)
    i.set_defaults(func=cmd_info)
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
