# SPDX-License-Identifier: GPL-3.0-or-later
"""The operators' parameters: the operations' declarations (:mod:`dposer.spec.operations`: default, range, help)
shared by the panel, the operators and their checks, plus the few that only the add-on has. bpy-free (tests read
it without Blender).

Operators take any value a script passes and refuse one out of range with a report (the scene unchanged);
Blender's hard ``min``/``max`` would silently clamp it instead. The sliders get the range (and the protocol's
per-request limit, e.g. 32 hypotheses) as soft limits.
"""
from __future__ import annotations

from dposer.spec.operations import Arg, arg


Param = Arg  # a parameter: its name (in the artist's messages), default, range and description


def _in_request(op: str, arg_name: str, **changes) -> Param:
    """The declared argument with the protocol's per-request limit as the end of its range (what one request from
    the add-on may carry)."""
    a = arg(op, arg_name)
    return a.with_(hi=a.top, **changes)


# Blender's IntProperty is 32-bit: the seed an artist types stays below the protocol's 64-bit bound
SEED = arg("complete", "seed").with_(hi=2**31 - 1)
HYPOTHESES = _in_request("complete", "hypotheses", help="Solutions tried (on a frame range, each one whole motion); "
                                                 "their mean, the best estimate, is written (or shown first, with "
                                                 "Preview)")
COMPLETE_PREVIEW = Arg("preview", "bool", False, help="With more than one hypothesis: show the best estimate and keep "
                       "the hypotheses to cycle through (Next/Previous), then Accept or Cancel (original keys back)")
REFINE_STRENGTH = arg("refine", "strength")
CLEAN_STRENGTH = arg("clean", "strength")
VARY_COUNT = _in_request("vary", "n", name="count")
VARY_STRENGTH = arg("vary", "strength")
VARY_START_OFFSET = Arg("start_offset", "int", 0, lo=0, hi=100000, help="On an animated rig: each copy starts up "
                        "to this many frames later than the original (spread over the copies, seeded), so the crowd "
                        "is not in lockstep")
VARY_SPACING = Arg("spacing", "float", 0.0, lo=0.0, help="Grid spacing (0 = from the rig's size)")


def bpy_prop(p: Param, label: str, hard: bool = False, **kw):
    """A bpy property for ``p`` (needs bpy): its default and description, its range as the slider's soft limits.
    ``hard``: the range is also the hard limit (the panel's inputs, which only the UI sets); an operator keeps
    soft limits only, so that a script's out-of-range value reaches its check and is refused, not clamped."""
    from bpy.props import BoolProperty, FloatProperty, IntProperty

    description = p.help[:1].upper() + p.help[1:]
    if isinstance(p.default, bool):
        return BoolProperty(name=label, default=p.default, description=description, **kw)
    limits = {}
    if p.soft_min is not None:
        limits["soft_min"] = p.soft_min
    if p.top is not None:
        limits["soft_max"] = p.top
    if hard:
        limits.update({k.replace("soft_", ""): v for k, v in limits.items()})
    prop = IntProperty if isinstance(p.default, int) else FloatProperty
    return prop(name=label, default=p.default, description=description, **limits, **kw)
