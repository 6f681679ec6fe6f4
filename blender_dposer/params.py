# SPDX-License-Identifier: GPL-3.0-or-later
"""One declaration of each operator parameter's default and range, shared by the panel, the operators and their
checks. bpy-free (tests read it without Blender).

Operators take any value a script passes and refuse one out of range with a report (the scene unchanged);
Blender's hard ``min``/``max`` would silently clamp it instead. The sliders get the range as soft limits. The
ranges are the backend's (docs/protocol.md, section 5: 32 hypotheses, n <= 1000, strengths).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # the range excludes lo, e.g. (0, 1]
    description: str = ""

    def check(self, value) -> None:
        """ValueError with a message for the artist when ``value`` is out of range."""
        if self.lo is None and self.hi is None:
            return
        v = float(value)
        low_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        if not math.isfinite(v) or low_bad or (self.hi is not None and v > self.hi):
            raise ValueError(f"{self.name} must be in {self.range_text()}, got {value:g}")

    def range_text(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}]"

    @property
    def soft_min(self):
        """The slider's lower end: lo, or a step above it when lo itself is excluded."""
        if self.lo is None:
            return None
        return self.lo + 0.01 if self.lo_open else self.lo


SEED = Param("seed", 0, 0, 2**31 - 1)
HYPOTHESES = Param("hypotheses", 1, 1, 32, description="Solutions tried (on a frame range, each one whole motion); "
                   "their mean, the best estimate, is written (or shown first, with Preview)")
COMPLETE_PREVIEW = Param("preview", False, description="With more than one hypothesis: show the best estimate and keep "
                         "the hypotheses to cycle through (Next/Previous), then Accept or Cancel (original keys back)")
REFINE_STRENGTH = Param("strength", 0.3, 0.0, 1.0, lo_open=True,
                        description="How far the pose may move towards the prior, in (0, 1]")
CLEAN_STRENGTH = Param("strength", 0.5, 0.0, 1.0, description="0 = change nothing; higher finds more faults, smooths "
                       "jitter more and leans more on the prior")
VARY_COUNT = Param("count", 8, 1, 1000, description="How many variations")
VARY_STRENGTH = Param("strength", 0.3, 0.0, 1.0, description="0 = identical, 1 = unrelated poses")
VARY_START_OFFSET = Param("start_offset", 0, 0, 100000, description="On an animated rig: each copy starts up to this "
                          "many frames later than the original (spread over the copies, seeded), so the crowd is not "
                          "in lockstep")
VARY_SPACING = Param("spacing", 0.0, 0.0, None, description="Grid spacing (0 = from the rig's size)")


def bpy_prop(p: Param, label: str, hard: bool = False, **kw):
    """A bpy property for ``p`` (needs bpy): its default and description, its range as the slider's soft limits.
    ``hard``: the range is also the hard limit (the panel's inputs, which only the UI sets); an operator keeps
    soft limits only, so that a script's out-of-range value reaches its check and is refused, not clamped."""
    from bpy.props import BoolProperty, FloatProperty, IntProperty

    if isinstance(p.default, bool):
        return BoolProperty(name=label, default=p.default, description=p.description, **kw)
    limits = {}
    if p.soft_min is not None:
        limits["soft_min"] = p.soft_min
    if p.hi is not None:
        limits["soft_max"] = p.hi
    if hard:
        limits.update({k.replace("soft_", ""): v for k, v in limits.items()})
    prop = IntProperty if isinstance(p.default, int) else FloatProperty
    return prop(name=label, default=p.default, description=p.description, **limits, **kw)
