"""The motion prior's commands, registered into the ``dposer`` parser by :func:`add_commands`:
``motion-corpus``, ``motion-train``, ``fill`` and ``bench fill``."""
from __future__ import annotations

import shlex
import sys


def cmd_motion_corpus(a):
    from . import corpus

    corpus.build(root=a.data, out=a.out)


def cmd_motion_train(a):
    from .model import MotionConfig
    from .train import MotionTrainConfig, train

    cfg = MotionTrainConfig(net=MotionConfig(frames=a.frames, width=a.width, layers=a.layers, ff=2 * a.width),
                            steps=a.steps, batch=a.batch, lr=a.lr, other_share=a.other_share,
                            speed=(a.speed_min, a.speed_max))
    train(a.out, cfg, resume=a.resume, corpus_path=a.corpus, seed=a.seed,
          command="dposer " + " ".join(shlex.quote(x) for x in sys.argv[1:]), log=lambda s: print(s, flush=True))


def cmd_fill(a):
    from .filling import fill_file

    fill_file(a.input, a.output, a.frames, parts=a.parts, fps=a.fps, checkpoint=a.checkpoint, steps=a.steps,
              log=lambda s: print(s, file=sys.stderr))


def cmd_bench_fill(a):
    from .bench import run

    run(checkpoint=a.motion_checkpoint, write=a.write, data=a.data, every=a.every if a.every > 1 else 6)


def add_commands(sub, bench_parser, add_declared) -> None:
    """Add the motion commands to the ``dposer`` subparsers ``sub``; ``bench_parser`` gains the ``fill`` name;
    ``add_declared`` (:func:`dposer.cli.parser.add_declared`) adds the options declared for the ``fill`` op."""
    from .take import RATE

    mc = sub.add_parser("motion-corpus", help="collect the motion prior's training / held-out takes, resampled to "
                        f"{RATE:g} fps, into ~/.cache/dposer/motion/corpus.npz (needs `dposer corpus`)")
    mc.add_argument("--data", default=None)
    mc.add_argument("--out", default=None, help="cache file (default ~/.cache/dposer/motion/corpus.npz)")
    mc.set_defaults(func=cmd_motion_corpus)

    mt = sub.add_parser("motion-train", help="train the motion prior (masked diffusion over windows of motion)")
    mt.add_argument("--out", required=True, help="run folder (last.safetensors, motion.safetensors, log.jsonl)")
    mt.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    mt.add_argument("--corpus", default=None, help="motion corpus (default ~/.cache/dposer/motion/corpus.npz)")
    mt.add_argument("--steps", type=int, default=6000)
    mt.add_argument("--batch", type=int, default=32)
    mt.add_argument("--lr", type=float, default=1e-3)
    mt.add_argument("--frames", type=int, default=96, help="window length at the internal rate")
    mt.add_argument("--width", type=int, default=256)
    mt.add_argument("--layers", type=int, default=4)
    mt.add_argument("--seed", type=int, default=0)
    mt.add_argument("--other-share", type=float, default=0.4,
                    help="share of training windows from takes outside Bandai Namco (other studios, AMASS)")
    mt.add_argument("--speed-min", type=float, default=0.8, help="slowest playback speed of a training window")
    mt.add_argument("--speed-max", type=float, default=1.25, help="fastest playback speed of a training window")
    mt.set_defaults(func=cmd_motion_train)

    f = sub.add_parser("fill", help="fill a gap of frames of a take (body parts) from the motion around it")
    f.add_argument("--input", required=True, help="six-key SMPL-X npz, AMASS npz or BVH take")
    f.add_argument("--frames", required=True, help="A-B: the frames to fill, 0-based, inclusive (e.g. 120-150)")
    add_declared(f, "fill", "parts")
    add_declared(f, "fill", "fps")
    f.add_argument("--output", required=True, help="the same format as the input")
    f.add_argument("--checkpoint", default=None,
                   help="motion prior (default: the bundled one; without one: SLERP or the spline, picked by probes)")
    add_declared(f, "fill", "steps")
    f.set_defaults(func=cmd_fill)

    bench_parser.add_argument("--motion-checkpoint", default=None,
                              help="fill: the motion prior (default: the bundled one; without one: the free answers)")
    every = next(x for x in bench_parser._actions if x.dest == "every")
    every.help += "; fill: every n-th dataset-1 take (the default 1 gives every 6th: all 174 take long)"
    name = next(x for x in bench_parser._actions if x.dest == "name")
    name.choices = list(name.choices) + ["fill"]
    name.help = (name.help or "") + "; fill: gap filling (motion prior) against SLERP, the spline and DPoser"
    original = bench_parser.get_default("func")

    def bench(a):
        return cmd_bench_fill(a) if a.name == "fill" else original(a)
    bench_parser.set_defaults(func=bench)
