"""The ``dposer`` command line's parser: subcommands and their options (the tasks' options come from the operations'
declarations, :mod:`dposer.spec.operations`)."""
from __future__ import annotations

import argparse
import math

from ..spec.operations import arg
from .commands import (cmd_batch, cmd_bench, cmd_clean, cmd_complete, cmd_convert, cmd_corpus, cmd_download_official,
                       cmd_evaluate, cmd_export, cmd_fit, cmd_import_official, cmd_info, cmd_refine, cmd_sample,
                       cmd_train, cmd_vary)


def add_official_commands(sub) -> None:
    from ..core.official import HUB_FILES, HUB_REPO

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


def _at_least(lo: int, hi: int | None = None):
    """argparse type: an integer >= lo (and <= hi)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {v}")
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


def add_declared(sp, op: str, name: str, **override) -> None:
    """Add ``--name`` to ``sp`` from the declaration of ``op``'s argument (dposer.spec.operations): its type and
    range, default and help; ``override`` replaces argparse keywords (e.g. ``required=True``). The protocol's
    per-request limits do not apply here."""
    a = arg(op, name)
    kw: dict = {"default": a.default, "help": a.help}
    if a.kind == "bool":
        kw["action"] = "store_true"
    elif a.kind == "choice":
        kw["choices"] = list(a.choices)
    elif a.kind == "int":
        kw["type"] = _at_least(int(a.lo), None if a.hi is None else int(a.hi))
    elif a.kind == "float":
        kw["type"] = _number(a.lo, a.hi, lo_open=a.lo_open)
    elif a.kind == "names" and isinstance(a.default, tuple):  # a list (lock); a string default stays a string
        kw.update(type=_names, default=None)
    kw.update(override)
    sp.add_argument(f"--{name.replace('_', '-')}", **kw)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

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
    for name in ("n", "seed", "sampler", "steps"):
        add_declared(s, "sample", name)
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
        add_declared(sp, "complete", "seed")
        return sp

    c = task("complete", "fill in missing joints (observed joints kept exactly), K ranked hypotheses")
    add_declared(c, "complete", "missing", required=True, default=None, type=str)
    add_declared(c, "complete", "hypotheses")
    c.add_argument("--combine", choices=["best", "mean"], default="mean",
                   help="standard keys hold the mean of the hypotheses (the best estimate) or the rank-1 hypothesis")
    add_declared(c, "complete", "clip")
    add_declared(c, "complete", "fps")
    c.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    c.add_argument("--steps", type=POSITIVE, default=None)
    c.add_argument("--image", default=None, help="also save a PNG of the first inputs next to their completions")
    c.add_argument("--image-count", type=POSITIVE, default=3)
    c.set_defaults(func=cmd_complete)

    cl = task("clean", "find and repair the faults of a mocap clip (spikes, pops, held limbs, limit breaks, jitter); "
                       "a .bvh input is cleaned in its own channels into a .bvh --output")
    for name in ("strength", "parts", "lock"):
        add_declared(cl, "clean", name)
    cl.add_argument("--schedule", choices=["truncated", "uniform"], default=None)
    cl.add_argument("--steps", type=POSITIVE, default=None)
    cl.set_defaults(func=cmd_clean)

    v = task("vary", "N variations of one pose, or with --clip of a whole take (strength 0 = identical, 1 = unrelated)")
    v.add_argument("--index", type=SEED, default=0, help="which pose of the input file (without --clip)")
    for name in ("n", "strength", "lock", "clip", "fps"):
        add_declared(v, "vary", name)
    v.set_defaults(func=cmd_vary)

    r = task("refine", "make implausible poses plausible with a small change")
    for name in ("strength", "lock"):
        add_declared(r, "refine", name)
    r.set_defaults(func=cmd_refine)

    f = task("fit", "pose that puts chosen joints at 3D targets (built-in skeleton frame), rest from the prior",
             input_required=False)
    f.add_argument("--targets", required=True, help="JSON {joint: [x, y, z] or [[x, y, z], ...]} or npz keyed by joint")
    add_declared(f, "fit", "free")
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
        add_declared(bt, "complete", "seed", help="batch seed; each take's comes from it and its path")
        bt.add_argument("--steps", type=POSITIVE, default=None, help="solver steps (default: the task's)")
        bt.set_defaults(func=cmd_batch)
        if name == "clean":
            for arg_name in ("strength", "parts", "lock"):
                add_declared(bt, "clean", arg_name)
        else:
            add_declared(bt, "complete", "missing", required=True, default=None, type=str)
            add_declared(bt, "complete", "hypotheses")
            bt.add_argument("--combine", choices=["best", "mean"], default="mean")
            add_declared(bt, "complete", "fps", help="frame rate (default: each take's own, else 30)")

    b = sub.add_parser("bench", help="benchmarks against baseline priors on held-out data (docs/benchmarks.md)")
    common(b)
    b.add_argument("name", choices=["completion", "clip", "generation", "clean", "schedule", "steps", "ranking", "speed",
                                    "batch", "hands", "vary", "all", "quick", "heldout"],
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
    from ..motion.cli import add_commands as add_motion_commands

    add_motion_commands(sub, b, add_declared)
    return p
