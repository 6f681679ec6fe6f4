"""The ``dposer`` commands: one ``cmd_<name>(args)`` per subcommand of :mod:`.parser`."""
from __future__ import annotations

import importlib
import json
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
    from ..formats.npz import check_output

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
    from ..train.train import TrainConfig, train

    cfg = TrainConfig.load(a.config)
    if a.steps:
        cfg.steps = a.steps
    cmd = "dposer " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    res = train(cfg, a.out, seed=a.seed, resume=a.resume, data_root=a.data, command=cmd, stop_at=a.stop_at,
                init=a.init)
    if res["history"]:
        print(json.dumps(res["history"][-1]))


def cmd_sample(a):
    from ..core.prior import load_prior
    from ..core.sampling import sample

    _outputs(a, extra=("image",))
    if a.image:
        _need("matplotlib", "plot", "--image")
    prior = load_prior(a.checkpoint, a.device, a.precision)
    steps = a.steps if a.steps is not None else (1000 if a.sampler == "em" else 100)
    batch = min(a.n, 4096)
    chunks = (a.n + batch - 1) // batch
    poses = sample(prior, a.n, seed=a.seed, sampler=a.sampler, steps=steps, batch=batch, parts=a.parts,
                   progress=_bar(steps * chunks, f"sampling ({a.sampler}, {steps} steps)"))
    from ..formats.npz import save_npz

    print(f"wrote {a.n} poses to {save_npz(a.output, poses)} (keys: {', '.join(poses)})")
    if a.image:
        from ..eval.render import pose_grid
        from ..core.sampling import to_vectors

        pose_grid(to_vectors(poses)[: a.image_count], a.image, title=f"dposer sample --seed {a.seed}")
        print(f"wrote {a.image}")


def cmd_evaluate(a):
    from ..eval.evaluation import evaluate_generation, markdown_table
    from ..core.prior import load_prior

    _outputs(a, npz=None, extra=("json",))
    prior = load_prior(a.checkpoint, a.device, a.precision)
    t0 = time.time()
    res = evaluate_generation(prior, n=a.n, seed=a.seed, sampler=a.sampler, steps=a.steps, root=a.data)
    table = markdown_table(res)
    print(table)
    print(f"({time.time() - t0:.0f} s)")
    if a.json:
        from ..formats.npz import write_text

        print(f"wrote {write_text(a.json, json.dumps(res, indent=1))}")
    if a.repeat_seeds > 1:  # precision / coverage move by ~0.01 between seeds at n = 1000: show the spread
        from ..eval.evaluation import seed_spread_table

        runs = [res] + [evaluate_generation(prior, n=a.n, seed=a.seed + i, sampler=a.sampler, steps=a.steps,
                                            root=a.data) for i in range(1, a.repeat_seeds)]
        print(seed_spread_table(runs, seeds=list(range(a.seed, a.seed + a.repeat_seeds))))


def _load_input(path, hands="absolute"):
    from ..formats.data import load_task_input

    return load_task_input(path, hands)


def _file_fps(path, ps):
    from ..formats.data import file_fps

    return file_fps(path, ps)


def _save(a, result: dict, ps=None):
    from ..formats.npz import save_npz

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
    from ..core.prior import load_prior
    from ..tasks.pose_tasks import COMPLETE, complete

    from ..spec.layout import names_to_dims

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
        from ..eval.render import pose_grid
        from ..core.sampling import to_vectors

        k = min(a.image_count, len(ps))
        pairs = np.stack([ps.vectors[:k], to_vectors(res)[:k]], 1).reshape(2 * k, -1)
        labels = [f"{lab} {i}" for i in range(k) for lab in ("input", "completed")]
        pose_grid(pairs, a.image, cols=2, labels=labels, title=f"dposer complete --missing {a.missing}")
        print(f"wrote {a.image}")


def cmd_clean(a):
    if Path(a.input).suffix.lower() == ".bvh":  # cleaned in its own channels: no prior, no SMPL-X
        from ..formats.bvh_channels import clean_file

        return clean_file(a.input, a.output, a.strength)
    from ..core.prior import load_prior
    from ..tasks.pose_tasks import CLEAN, clean

    _outputs(a)
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    from ..tasks.cleaning import summary

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
    from ..core.prior import load_prior
    from ..tasks.pose_tasks import vary

    _outputs(a)
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    if a.clip:
        return _vary_clip(a, prior, ps, pose)
    if not 0 <= a.index < len(ps):
        raise ValueError(f"--index {a.index} is out of range: the input holds {len(ps)} poses")
    one = {k: v[a.index : a.index + 1] for k, v in pose.items()}
    res = vary(prior, one, a.n, strength=a.strength, seed=a.seed, lock=a.lock or ())
    _save(a, res)


def _vary_clip(a, prior, ps, pose):
    from ..tasks.vary_clip import DDIM_STEPS, anchor_frames, ddim_steps, vary_clip

    fps = a.fps or _file_fps(a.input, ps) or 30.0
    if "trans" in ps.extras:
        pose["trans"] = ps.extras["trans"]
    steps = ddim_steps(DDIM_STEPS, a.strength)
    print(f"vary --clip: {a.n} variations of {len(ps)} frames at {fps:g} fps"
          f"{'' if 'trans' in pose else ' (no translation in the file: feet are not re-planted)'}")
    res = vary_clip(prior, pose, a.n, strength=a.strength, seed=a.seed, lock=a.lock or (), fps=fps,
                    progress=_bar(steps, "vary"))
    res["fps"] = np.float32(fps)
    if "betas" in ps.extras:
        res["betas"] = ps.extras["betas"]
    _save(a, res)
    print(f"{len(anchor_frames(len(ps), fps))} anchor frames x {a.n} variations through the prior; every key is "
          "(variations, frames, width)")


def cmd_refine(a):
    from ..core.prior import load_prior
    from ..tasks.pose_tasks import REFINE, refine

    _outputs(a)
    prior = load_prior(a.checkpoint, a.device, a.precision)
    ps, pose = _load_input(a.input, a.hands)
    res = refine(prior, pose, strength=a.strength, lock=a.lock or (), seed=a.seed,
                 progress=_bar(REFINE.steps, "refine"))
    _save(a, res, ps)


def cmd_fit(a):
    from ..core.prior import load_prior
    from ..formats.npz import Npz
    from ..tasks.pose_tasks import FIT, fit

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
        from ..core.kinematics import SmplxSkeleton

        body = SmplxSkeleton(a.smplx_model, gender=a.gender)
    res = fit(prior, targets, pose=pose, free=a.free, seed=a.seed, cfg=cfg, skeleton=body,
              progress=_bar(cfg.steps, "fit"))
    err = res["target_error"]
    print(f"target error: mean {1000 * err.mean():.1f} mm, max {1000 * err.max():.1f} mm")
    _save(a, res, ps)


def cmd_bench(a):
    _need("matplotlib", "plot", "dposer bench")
    if a.write:
        _outputs(a, npz=None, extra=("write",))
    from ..eval import bench
    from ..core.prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    if a.name == "heldout":
        from ..eval import heldout

        against = load_prior(a.against, a.device, a.precision) if a.against else None
        heldout.run_cli(a, prior, against)
    else:
        bench.run_cli(a, prior)


def cmd_convert(a):
    from ..formats.convert import convert_bvh, save_npz

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
    from ..serve import batch

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
    from ..train.corpus import build

    if a.out and len(a.dataset) > 1:
        raise ValueError("--out names one file: give one --dataset with it")
    for ds in a.dataset:
        build(ds, a.out, root=a.data, limit=a.limit)


def cmd_export(a):
    import torch

    from ..core.prior import load_prior, save_prior

    _outputs(a, npz=None, extra=("out",))
    prior = load_prior(a.checkpoint)
    save_prior(a.out, prior.net, prior.normalizer, prior.info, dtype=torch.float16 if a.fp16 else torch.float32)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB)")


def cmd_info(a):
    from .. import __version__
    from ..core.model import count_parameters
    from ..core.prior import load_prior

    prior = load_prior(a.checkpoint, a.device, a.precision)
    print(json.dumps({"version": __version__, "device": str(prior.device), "parameters": count_parameters(prior.net),
                      "arch": getattr(prior.net, "arch", "dposer-scorenet"), "dim": prior.dim,
                      "net_config": prior.net.cfg.to_dict(), "val": prior.info.get("val"),
                      "command": prior.info.get("command")}, indent=1))


# ---- the authors' released DPoser-X weights (dposer.core.official, docs/official_weights.md)

def cmd_import_official(a):
    from ..core.official import import_official

    _outputs(a, npz=None, extra=("out",))
    info = import_official(a.checkpoint, a.out, a.kind)
    print(f"wrote {a.out}: official DPoser-X {info['kind']} model ({info['dim']}-D), EMA weights, "
          f"from {info['file']} (sha256 {info['sha256'][:16]}...)")


def cmd_download_official(a):
    from ..core.official import download_official

    for kind, path in download_official(a.out, a.kind, timeout=a.timeout, convert_to_safetensors=not a.no_convert,
                                        log=lambda m: print(m, file=sys.stderr)).items():
        print(f"{kind}: {path}")
