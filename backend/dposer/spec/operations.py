"""One declaration per operation: each argument's kind, default, range and help, written once. The server's
request validation (:mod:`dposer.serve.server`), the command line (:mod:`dposer.cli`) and the Blender add-on's
properties (``blender_dposer.params``) are built from these declarations.

Ranges are the domain's (a strength in [0, 1]); ``limit`` is the protocol's cap on a request (more hypotheses than
the server accepts in one request is ``limit_exceeded``, not a wrong value), applied by the server and the add-on
but not by the command line, which runs the task in its own process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .protocol import MAX_FRAMES, MAX_HYPOTHESES, MAX_N, MAX_POSES, MAX_SEED, MAX_STEPS

@dataclass(frozen=True)
class Arg:
    """One argument of an operation. ``kind``: int, float, bool, choice, names (part/group/joint names),
    body_names (names of the root and body joints a motion holds), pose / clip (SMPL-X keys, ``rows`` at most),
    targets (joint -> positions) or id (a request id)."""
    name: str
    kind: str
    default: object = None
    required: bool = False  # a request must carry it (its default then only seeds the command line and the add-on)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # the range excludes lo, e.g. (0, 1]
    limit: int | None = None  # the protocol's cap on one request (int arguments)
    choices: tuple = ()
    rows: int | None = None  # pose / clip: the most rows a request may carry
    help: str = ""

    @property
    def top(self) -> float | None:
        """The highest value a request may carry: the range's end, else the protocol's limit."""
        return self.hi if self.hi is not None else self.limit

    def check(self, value) -> None:
        """ValueError with a message for a person when a number is outside the range (and the limit)."""
        if self.lo is None and self.top is None:
            return
        v = float(value)
        low_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        if not math.isfinite(v) or low_bad or (self.top is not None and v > self.top):
            raise ValueError(f"{self.name} must be in {self.range_text()}, got {value:g}")

    def range_text(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.top is None else f"{self.top:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}]"

    @property
    def soft_min(self):
        """A slider's lower end: lo, or a step above it when lo itself is excluded."""
        if self.lo is None:
            return None
        return self.lo + 0.01 if self.lo_open else self.lo

    def with_(self, **changes) -> "Arg":
        return replace(self, **changes)


def _seed(help_: str = "random seed (the same seed, the same result)") -> Arg:
    return Arg("seed", "int", 0, lo=0, hi=MAX_SEED, help=help_)


LOCK = Arg("lock", "names", (), help="joints kept exactly")
HYPOTHESES = Arg("hypotheses", "int", 1, lo=1, limit=MAX_HYPOTHESES,
                 help="solutions tried (on a clip, each one whole motion); their mean is the best estimate")

OPERATIONS: dict[str, dict[str, Arg]] = {op: {a.name: a for a in args} for op, args in {
    "ping": (),
    "version": (),
    "shutdown": (),
    "cancel": (Arg("target", "id", required=True, help="the id of the request to cancel"),),
    "complete": (
        Arg("pose", "pose", required=True, rows=MAX_FRAMES, help="the observed joints (SMPL-X keys)"),
        Arg("missing", "names", (), help="comma-separated part/group/joint names, e.g. right_hand,left_leg"),
        HYPOTHESES, _seed(),
        Arg("clip", "bool", False, help="the rows are the frames of one take: solve them together as a motion"),
        Arg("fps", "float", None, lo=1.0, hi=1000.0, help="frame rate of the take (default: from the file, else 30)"),
    ),
    "clean": (
        Arg("clip", "clip", required=True, rows=MAX_FRAMES, help="the frames of one take (SMPL-X keys, trans)"),
        Arg("strength", "float", 0.5, lo=0.0, hi=1.0, help="0 = change nothing; higher finds more faults, smooths "
            "jitter more and leans more on the prior"),
        Arg("parts", "names", "body", help="what may change"),
        LOCK, _seed(),
    ),
    "vary": (
        Arg("pose", "clip", required=True, rows=MAX_FRAMES,
            help="the pose to vary (one row), or with clip the frames of a take (SMPL-X keys, trans)"),
        Arg("n", "int", 8, required=True, lo=1, limit=MAX_N, help="how many variations"),
        Arg("strength", "float", 0.3, lo=0.0, hi=1.0, help="0 = identical, 1 = unrelated poses"),
        _seed(), LOCK,
        Arg("steps", "int", 50, lo=1, limit=MAX_STEPS, help="denoising steps from t = 1"),
        Arg("clip", "bool", False, help="the rows are the frames of one take: N variations of the whole motion, each "
            "key (N, frames, width); with a translation, planted feet stay planted"),
        Arg("fps", "float", None, lo=1.0, hi=1000.0, help="frame rate of the take (default: from the file, else 30)"),
    ),
    "refine": (
        Arg("pose", "pose", required=True, rows=MAX_POSES, help="the poses to refine"),
        Arg("strength", "float", 0.3, lo=0.0, hi=1.0, lo_open=True,
            help="how far the poses may move towards the prior, in (0, 1]"),
        LOCK, _seed(),
    ),
    "fit": (
        Arg("targets", "targets", required=True, help="JSON {joint: [x, y, z] or [[x, y, z], ...]}"),
        Arg("pose", "pose", None, rows=MAX_POSES, help="a starting pose (SMPL-X keys)"),
        Arg("free", "names", "body,hands", help="what may move"),
        _seed(),
    ),
    "fill": (
        Arg("clip", "clip", required=True, rows=MAX_FRAMES,
            help="the frames of one take around the gap: global_orient and body_pose (trans optional)"),
        Arg("first", "int", 0, required=True, lo=0, hi=MAX_FRAMES - 1, help="the first frame to fill (a row of clip, "
            "0-based)"),
        Arg("last", "int", 0, required=True, lo=0, hi=MAX_FRAMES - 1, help="the last frame to fill (inclusive)"),
        Arg("parts", "body_names", "body", help="the joints to fill: body (the root and 21 body joints), root, groups "
            "such as left_leg, or body joint names"),
        Arg("fps", "float", None, lo=1.0, hi=1000.0, help="frame rate of the take (default: from the file, else 30)"),
        Arg("steps", "int", 10, lo=1, limit=MAX_STEPS, help="motion-prior sampler steps (without a motion prior: "
            "unused)"),
    ),
    "sample": (
        Arg("n", "int", 16, required=True, lo=1, limit=MAX_N, help="how many poses"),
        _seed(),
        Arg("sampler", "choice", "ddim", choices=("ddim", "em"),
            help="ddim: deterministic, 100 steps; em: the paper's Euler-Maruyama, 1000 steps"),
        Arg("steps", "int", None, lo=1, limit=MAX_STEPS, help="sampler steps (default: the sampler's)"),
    ),
}.items()}


def arg(op: str, name: str) -> Arg:
    """The declaration of ``op``'s argument ``name``."""
    return OPERATIONS[op][name]
