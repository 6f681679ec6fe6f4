"""The ``dposer`` command line."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np


class MissingExtra(Exception):
    """A command needs an optional dependency that is not installed."""


def _need(module: str, extra: str, what: str) -> None:
    """Fail before any work when ``what`` needs ``module`` from the package extra ``extra``."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {module}, which is not installed: pip install 'blender-dposer[{extra}]'") \
            from None


def _outputs(a, npz: str | None = "output", extra: tuple = ()) -> None:
    """Check every output path of a command before any work (folder exists, not an input); a.output becomes the
    exact file numpy will write (``.npz`` appended like numpy does)."""
    from .io import check_output

    inputs = [getattr(a, k, None) for k in ("input", "targets", "checkpoint")]
    if npz:
        setattr(a, npz, check_output(getattr(a, npz), inputs, npz=True))
    for k in extra:
        if getattr(a, k, None):
            check_output(getattr(a, k), inputs + [getattr(a, npz, None) if npz else None])


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

    _outputs(a, extra=("image",))
    if a.image:
        _need("matplotlib", "plot", "--image")
    prior = load_prior(a.checkpoint, a.device, a.precision)
    steps = a.steps if a.steps is not None else (1000 if a.sampler == "em" else 100)
    batch = min(a.n, 4096)
    chunks = (a.n + batch - 1) // batch
    poses = sample(prior, a.n, seed=a.seed, sampler=a.sampler, steps=steps, batch=batch, parts=a.parts,
                   progress=_bar(steps * chunks, f"sampling ({a.sampler}, {steps} steps)"))
    from .io import save_npz

    print(f"wrote {a.n} poses to {save_npz(a.output, poses)} (keys: {', '.join(poses)})")
    if a.image:
        from .render import pose_grid
        from .sampling import to_vectors

        pose_grid(to_vectors(poses)[: a.image_count], a.image, title=f"dposer sample --seed {a.seed}")
        print(f"wrote {a.image}")


def cmd_evaluate(a):
    from .evaluation import evaluate_generation, markdown_table
    from .prior import load_prior

    _outputs(a, npz=None, extra=("json",))
    prior = load_prior(a.checkpoint, a.device, a.precision)
    t0 = time.time()
    res = evaluate_generation(prior, n=a.n, seed=a.seed, sampler=a.sampler, steps=a.steps, root=a.data)
    table = markdown_table(res)
    print(table)
    print(f"({time.time() - t0:.0f} s)")
    if a.json:
        from .io import write_text

        print(f"wrote {write_text(a.json, json.dumps(res, indent=1))}")
    if a.repeat_seeds > 1:  # precision / coverage move by ~0.01 between seeds at n = 1000: show the spread
        from .evaluation import seed_spread_table

        runs = [res] + [evaluate_generation(prior, n=a.n, seed=a.seed + i, sampler=a.sampler, steps=a.steps,
                                            root=a.data) for i in range(1, a.repeat_seeds)]
        print(seed_spread_table(runs, seeds=list(range(a.seed, a.seed + a.repeat_seeds))))


def _load_input(path, hands="absolute"):
    from .data import load_task_input

    return load_task_input(path, hands)


def _file_fps(path, ps):
    from .data import file_fps

    return file_fps(path, ps)


def _save(a, result: dict, ps=None):
    from .io import save_npz

    out = {k: v for k, v in result.items()}
    if ps is not None:
        for k in ("trans", "betas"):
            if k in ps.extras:
                out[k] = ps.extras[k]
    inputs = [getattr(a, k, None) for k in ("input", "targets")]
    print(f"wrote {save_npz(a.output, out, inputs)} (keys: {', '.join(out)})")


def _solver_cfg(a, base):
    cfg = base
    if getattr(a, "schedule", None):
        cfg = cfg.with_(schedule=a.schedule)
    if getattr(a, "steps", None) is not None:
        cfg = cfg.with_(steps=a.steps)
    return cfg


def cmd_complete(a):
    from .prior import load_prior
    from .tasks import COMPLETE, complete

    from .layout import names_to_dims

    names_to_dims(a.missing)  # report unknown names before loading anything
    _outputs(a, extra=("image",))
    if a.image:
        _need("matplotlib", "plot", "--image")
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    cfg = _solver_cfg(a, COMPLETE)
    fps = a.fps or _file_fps(a.input, ps) if a.clip else None
    if a.clip:
        print(f"clip completion: {len(ps)} frames at {fps or 30:g} fps"
              f"{'' if a.fps or fps else ' (no frame rate in the file; --fps sets it)'}")
    res = complete(prior, pose, a.missing, hypotheses=a.hypotheses, seed=a.seed, cfg=cfg, combine=a.combine,
                   progress=_bar(cfg.steps, "complete"), clip=a.clip, fps=fps)
    _save(a, res, ps)
    if a.image:
        from .render import pose_grid
        from .sampling import to_vectors

        k = min(a.image_count, len(ps))
        pairs = np.stack([ps.vectors[:k], to_vectors(res)[:k]], 1).reshape(2 * k, -1)
        labels = [f"{lab} {i}" for i in range(k) for lab in ("input", "completed")]
        pose_grid(pairs, a.image, cols=2, labels=labels, title=f"dposer complete --missing {a.missing}")
        print(f"wrote {a.image}")


def cmd_clean(a):
    from pathlib import Path

    if Path(a.input).suffix.lower() == ".bvh":  # cleaned in its own channels: no prior, no SMPL-X
        from .bvh_channels import clean_file

        return clean_file(a.input, a.output, a.strength)
    from .prior import load_prior
    from .tasks import CLEAN, clean

    _outputs(a)
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
    _save(a, res, ps)


def cmd_vary(a):
    from .prior import load_prior
    from .tasks import vary

    _outputs(a)
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    if not 0 <= a.index < len(ps):
        raise ValueError(f"--index {a.index} is out of range: the input holds {len(ps)} poses")
    one = {k: v[a.index : a.index + 1] for k, v in pose.items()}
    res = vary(prior, one, a.n, strength=a.strength, seed=a.seed, lock=a.lock or ())
    _save(a, res)


def cmd_refine(a):
    from .prior import load_prior
    from .tasks import REFINE, refine

    _outputs(a)
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    res = refine(prior, pose, strength=a.strength, lock=a.lock or (), seed=a.seed,
                 progress=_bar(REFINE.steps, "refine"))
    _save(a, res, ps)


def cmd_fit(a):
    from .prior import load_prior
    from .io import Npz
    from .tasks import FIT, fit

    _outputs(a)
    path = Path(a.targets)
    if path.suffix == ".json":
        try:
            targets = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a JSON file of targets ({e})") from None
        if not isinstance(targets, dict):
            raise ValueError(f"{path}: targets must be a JSON object {{joint: [x, y, z] or rows}}")
    else:
        npz = Npz(path)
        targets = {k: npz[k] for k in npz}
    prior = load_prior(a.checkpoint, a.device, a.precision)
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
    _save(a, res, ps)


def cmd_bench(a):
    import dataclasses
    from pathlib import Path

    _need("matplotlib", "plot", "dposer bench")
    if a.write:
        _outputs(a, npz=None, extra=("write",))
    from . import bench
    from .prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    if a.name == "heldout":
        from . import heldout

        against = load_prior(a.against, a.device, a.precision) if a.against else None
        heldout.run_cli(a, prior, against)
    else:
        bench.run_cli(a, prior)


def cmd_convert(a):
    from .convert import convert_bvh, save_npz

    src, dst = Path(a.input), Path(a.output)
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src}")
    if src.is_dir():
        takes = sorted(src.rglob("*.bvh"), key=str) + sorted(src.rglob("*.BVH"), key=str)
        if not takes:
            raise ValueError(f"no .bvh files under {src}")
        if dst.suffix.lower() == ".npz" or (dst.exists() and not dst.is_dir()):
            raise ValueError(f"a folder of takes needs an output folder, got {dst}")
        if dst.resolve() == src.resolve():
            raise ValueError("the output folder must differ from the input folder (never overwrite the takes)")
        jobs = [(t, dst / t.relative_to(src).with_suffix(".npz")) for t in takes]
    else:
        if dst.is_dir() or dst.suffix.lower() != ".npz":
            dst = (dst if dst.is_dir() or not dst.suffix else dst.parent) / (src.stem + ".npz")
        if dst.resolve() == src.resolve():
            raise ValueError("the output must differ from the input")
        jobs = [(src, dst)]
    failed = 0
    for take, out in jobs:
        try:
            r = convert_bvh(take, skeleton=a.skeleton)
        except ValueError as e:  # BvhError: report, go on with the other takes of a folder
            if len(jobs) == 1:
                raise
            print(f"{take}: error: {e}", file=sys.stderr)
            failed += 1
            continue
        save_npz(out, r)
        print(f"{take} -> {out}: {len(r['body_pose'])} frames at {float(r['mocap_framerate']):g} fps, "
              f"skeleton {r['skeleton']}, unit {r['unit']}, fit error {r['fit_error_deg_mean']:.1f} deg mean "
              f"/ {r['fit_error_deg_max']:.1f} max")
    if failed:
        raise ValueError(f"{failed} of {len(jobs)} takes failed to convert")


def cmd_batch(a):
    from . import batch

    if a.engine == "ray":
        _need("ray", "ray", "--engine ray")
    options = {k: getattr(a, k) for k in batch.OPTIONS[a.task] if getattr(a, k, None) is not None}
    try:
        report = batch.run(a.task, a.input, a.output, engine=a.engine, workers=a.workers, threads=a.threads,
                           ray_address=a.ray_address, gpus_per_take=a.gpus_per_take, shard=a.shard, **options)
    except KeyboardInterrupt:
        print(f"dposer batch: interrupted; finished takes are recorded in {Path(a.output) / batch.report_name(a.shard)}"
              ": run the same command again to go on", file=sys.stderr)
        return 130
    s = report["summary"]
    for rel, rec in report["takes"].items():
        if rec["status"] == "failed":
            print(f"{rel}: failed: {rec['error']}", file=sys.stderr)
    print(f"dposer batch {a.task}: {s['done']} done, {s['failed']} failed, {s['skipped']} skipped (done before) of "
          f"{s['takes']} takes, {s['frames_done']} frames in {s['seconds']:.1f} s; report: "
          f"{Path(a.output) / batch.report_name(a.shard)}")
    return 1 if s["failed"] else 0


def cmd_corpus(a):
    from .corpus import build

    if a.out and len(a.dataset) > 1:
        raise ValueError("--out names one file: give one --dataset with it")
    for ds in a.dataset:
        build(ds, a.out, root=a.data, limit=a.limit)


def cmd_export(a):
    import torch

    from .prior import load_prior, save_prior

    _outputs(a, npz=None, extra=("out",))
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

    _outputs(a, npz=None, extra=("out",))
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
    d.add_argument("--timeout", type=_number(0.0, 3600.0, lo_open=True), default=10.0, help="network timeout in seconds (default 10)")
    d.add_argument("--no-convert", action="store_true", help="only download the .ckpt files")
    d.set_defaults(func=cmd_download_official)


def _at_least(lo: int):
    """argparse type: an integer >= lo."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    return parse


def _number(lo: float, hi: float, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] (or (lo, hi])."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v > hi or (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {text}")
        return v
    return parse


def _shard(text: str) -> tuple[int, int]:
    """argparse type: 'I/N' with 0 <= I < N."""
    i, sep, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if not sep or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def _names(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, unless it is None/False or the help text already names it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


POSITIVE, SEED = _at_least(1), _at_least(0)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="dposer", description="DPoser-X whole-body pose prior")
    p.add_argument("--version", action="version", version=f"dposer {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)  # subcommands are _Parser too (argparse uses type(p))

    def common(sp, checkpoint=True):
        if checkpoint:
            sp.add_argument("--checkpoint", default=None, help="prior checkpoint (default: the bundled one)")
        sp.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
        sp.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: faster network on CPUs with native bfloat16, ~0.4%% error in its output")

    t = sub.add_parser("train", help="train a prior (masked mixed training)")
    t.add_argument("--config", required=True, help="JSON config, e.g. backend/dposer/configs/default.json")
    t.add_argument("--out", required=True, help="output folder (last.safetensors, prior.safetensors, log.jsonl)")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--steps", type=POSITIVE, default=None, help="override the config's step count")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    t.add_argument("--stop-at", type=POSITIVE, default=None, help="stop after this step (resume later with --resume)")
    t.add_argument("--init", default=None, help="start from this prior checkpoint's weights (fine-tuning)")
    t.add_argument("--data", default=None, help="data folder (default: $DPOSER_DATA or ../shared/data)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate whole-body poses to an npz with the six SMPL-X keys")
    common(s)
    s.add_argument("--n", type=POSITIVE, default=16)
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--sampler", choices=["ddim", "em"], default="ddim",
                   help="ddim: deterministic, 100 steps; em: the paper's Euler-Maruyama, 1000 steps")
    s.add_argument("--steps", type=POSITIVE, default=None)
    s.add_argument("--parts", default=None,
                   help="sample only these parts from their marginal, e.g. right_hand or body,face (default: all)")
    s.add_argument("--output", required=True)
    s.add_argument("--image", default=None, help="also save a PNG grid of the first poses")
    s.add_argument("--image-count", type=POSITIVE, default=12)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="held-out generation metrics (FID, precision/coverage, APD, NN distance)")
    common(e)
    e.add_argument("--n", type=POSITIVE, default=1000)
    e.add_argument("--seed", type=SEED, default=0)
    e.add_argument("--sampler", choices=["ddim", "em"], default="ddim")
    e.add_argument("--steps", type=POSITIVE, default=None)
    e.add_argument("--data", default=None)
    e.add_argument("--json", default=None, help="also write the results as JSON")
    e.add_argument("--repeat-seeds", type=POSITIVE, default=1,
                   help="also rerun with the next seeds and print mean +- std of precision, density and coverage")
    e.set_defaults(func=cmd_evaluate)

    cv = sub.add_parser("convert", help="BVH take(s) -> SMPL-X body poses (npz) on the built-in skeleton")
    cv.add_argument("--input", required=True, help="a .bvh file or a folder (searched recursively)")
    cv.add_argument("--output", required=True, help="an .npz file, or a folder (mirrors the input folder)")
    cv.add_argument("--skeleton", default=None,
                    help="name preset (e.g. bandai_bvh, cmu_bvh, mixamo; default: detected from the joint names)")
    cv.set_defaults(func=cmd_convert)

    co = sub.add_parser("corpus", help="convert the shared Bandai Namco BVH sets into caches outside the repo")
    co.add_argument("--dataset", type=int, nargs="+", choices=[1, 2], default=[2, 1],
                    help="2: training source (2,902 takes); 1: held out for benchmarks (174 takes)")
    co.add_argument("--out", default=None, help="cache file (default ~/.cache/dposer/bandai<N>.npz; $DPOSER_CACHE)")
    co.add_argument("--data", default=None)
    co.add_argument("--limit", type=int, default=None, help="only the first N takes (quick checks)")
    co.set_defaults(func=cmd_corpus)

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
        sp.add_argument("--seed", type=SEED, default=0)
        return sp

    c = task("complete", "fill in missing joints (observed joints kept exactly), K ranked hypotheses")
    c.add_argument("--missing", required=True, help="comma-separated part/group/joint names, e.g. right_hand,left_leg")
    c.add_argument("--hypotheses", type=POSITIVE, default=1)
    c.add_argument("--combine", choices=["best", "mean"], default="mean",
                   help="standard keys hold the mean of the hypotheses (the best estimate) or the rank-1 hypothesis")
    c.add_argument("--clip", action="store_true",
                   help="the rows are the frames of one take: solve them together as a motion (smooth, coherent "
                        "hypotheses) instead of frame by frame")
    c.add_argument("--fps", type=float, default=None,
                   help="frame rate of the take for --clip (default: from the file, else 30)")
    c.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    c.add_argument("--steps", type=POSITIVE, default=None)
    c.add_argument("--image", default=None, help="also save a PNG of the first inputs next to their completions")
    c.add_argument("--image-count", type=POSITIVE, default=3)
    c.set_defaults(func=cmd_complete)

    cl = task("clean", "find and repair the faults of a mocap clip (spikes, pops, held limbs, limit breaks, jitter); "
                       "a .bvh input is cleaned in its own channels into a .bvh --output")
    cl.add_argument("--strength", type=_number(0.0, 1.0), default=0.5,
                    help="0 = change nothing; higher finds more faults, smooths jitter more and leans more on the prior")
    cl.add_argument("--parts", default="body", help="what may change (default: body)")
    cl.add_argument("--lock", type=_names, default=None, help="joints kept exactly")
    cl.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    cl.add_argument("--steps", type=POSITIVE, default=None)
    cl.set_defaults(func=cmd_clean)

    v = task("vary", "N variations of one pose (strength 0 = identical, 1 = unrelated)")
    v.add_argument("--index", type=SEED, default=0, help="which pose of the input file")
    v.add_argument("--n", type=POSITIVE, default=8)
    v.add_argument("--strength", type=_number(0.0, 1.0), default=0.3, help="0 = identical, 1 = unrelated")
    v.add_argument("--lock", type=_names, default=None)
    v.set_defaults(func=cmd_vary)

    r = task("refine", "make implausible poses plausible with a small change")
    r.add_argument("--strength", type=_number(0.0, 1.0, lo_open=True), default=0.3,
                   help="how far poses may move, in (0, 1]")
    r.add_argument("--lock", type=_names, default=None)
    r.set_defaults(func=cmd_refine)

    f = task("fit", "pose that puts chosen joints at 3D targets (built-in skeleton frame), rest from the prior",
             input_required=False)
    f.add_argument("--targets", required=True, help="JSON {joint: [x, y, z] or [[x, y, z], ...]} or npz keyed by joint")
    f.add_argument("--free", default="body,hands", help="what may move (default: body,hands)")
    f.add_argument("--smplx-model", default=None,
                   help="solve on your own SMPL-X model (folder holding smplx/SMPLX_*.npz; needs the smplx extra)")
    f.add_argument("--gender", default="neutral", choices=["neutral", "female", "male"])
    f.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    f.add_argument("--steps", type=POSITIVE, default=None)
    f.set_defaults(func=cmd_fit)

    ba = sub.add_parser("batch", help="clean or complete a folder of takes (npz, AMASS npz, BVH) with a report, "
                        "in local worker processes or on a Ray cluster")
    bsub = ba.add_subparsers(dest="task", required=True)
    for name, help_ in (("clean", "clean every take (as dposer clean)"),
                        ("complete", "complete every take as a clip (as dposer complete --clip)")):
        bt = bsub.add_parser(name, help=help_)
        common(bt)
        bt.add_argument("--input", required=True, help="a folder (searched recursively for .npz and .bvh) or a "
                        "glob such as 'day1/**/*.bvh' (quote it)")
        bt.add_argument("--output", required=True, help="output folder: mirrors the input names, plus "
                        "batch_report.json; a re-run into it skips the takes already done")
        bt.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: worker processes here; ray: Ray tasks (pip install 'blender-dposer[ray]')")
        bt.add_argument("--workers", type=POSITIVE, default=None, help="local worker processes (default: one per core)")
        bt.add_argument("--threads", type=POSITIVE, default=None,
                        help="torch threads per take (default: cores // workers); a Ray task asks for that many CPUs")
        bt.add_argument("--ray-address", default=None,
                        help="Ray cluster to join (e.g. auto, or ray://head:10001); default: start a local one")
        bt.add_argument("--gpus-per-take", type=_number(0.0, 64.0), default=None,
                        help="GPUs a Ray task asks for (default: 1 when the cluster has GPUs, else 0)")
        bt.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                        help="only every N-th take from the I-th (0-based), with its own report: one shard per task "
                             "of a Slurm array (--shard $SLURM_ARRAY_TASK_ID/N)")
        bt.add_argument("--hands", choices=["absolute", "relative"], default="absolute",
                        help="hand convention of six-key inputs")
        bt.add_argument("--seed", type=SEED, default=0, help="batch seed; each take's comes from it and its path")
        bt.add_argument("--steps", type=POSITIVE, default=None, help="solver steps (default: the task's)")
        bt.set_defaults(func=cmd_batch)
        if name == "clean":
            bt.add_argument("--strength", type=_number(0.0, 1.0), default=0.5,
                            help="0 = stay on the data, 1 = prior and smoothing dominate")
            bt.add_argument("--parts", default="body", help="what may change (default: body)")
            bt.add_argument("--lock", type=_names, default=None, help="joints kept exactly")
        else:
            bt.add_argument("--missing", required=True, help="part/group/joint names, e.g. left_hand,right_hand")
            bt.add_argument("--hypotheses", type=POSITIVE, default=1)
            bt.add_argument("--combine", choices=["best", "mean"], default="mean")
            bt.add_argument("--fps", type=_number(0.0, 10000.0, lo_open=True), default=None,
                            help="frame rate (default: each take's own, else 30)")

    b = sub.add_parser("bench", help="benchmarks against baseline priors on held-out data (docs/benchmarks.md)")
    common(b)
    b.add_argument("name", choices=["completion", "clip", "generation", "clean", "schedule", "steps", "ranking", "speed",
                                    "batch", "all", "quick", "heldout"],
                   help="heldout (not in 'all'): body completion on the AMASS test split, the two whole AMASS takes and "
                        "converted Bandai dataset-1 against the mirrored other limb and baselines fitted to AMASS and "
                        "to AMASS + Bandai dataset-2 (needs the `dposer corpus` caches)")
    b.add_argument("--label", default="(checkpoint)", help="heldout: row label of --checkpoint")
    b.add_argument("--against", default=None, help="heldout: a second checkpoint to compare with (paired)")
    b.add_argument("--against-label", default="(against)", help="heldout: row label of --against")
    b.add_argument("--n", type=POSITIVE, default=None, help="test poses per completion task (default 150)")
    b.add_argument("--hypotheses", type=POSITIVE, default=None,
                   help="heldout: hypotheses per pose, the checkpoints' answer being their mean (default 1)")
    b.add_argument("--every", type=POSITIVE, default=1,
                   help="clean: every n-th Bandai dataset-1 clip, sorted by name (default 1: all 174)")
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
        rc = args.func(args)
    except (DataError, CheckpointError, FileNotFoundError, ValueError, MissingExtra) as e:
        print(f"dposer {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
