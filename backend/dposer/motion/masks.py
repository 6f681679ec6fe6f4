"""Masks over (frame, joint) cells of a window, True = missing: what the motion prior is trained to fill.

Kinds, drawn per window (:data:`KINDS`, with their probabilities): a gap in time over the whole body, a gap over
one limb (or the upper / lower body), a few joint x frame blobs (spikes, held limbs), keyframes only, a limb over
the whole window (a part never captured), and everything (unconditioned: for variations).
"""
from __future__ import annotations

import torch

from ..spec.skeleton import BODY_MOTION_JOINTS, body_motion_joints

NJ = len(BODY_MOTION_JOINTS)  # root + 21 body joints
LIMBS = ("left_leg", "right_leg", "left_arm", "right_arm")
KINDS = {"body_gap": 0.32, "limb_gap": 0.32, "blobs": 0.12, "keyframes": 0.1, "limb_window": 0.09, "all": 0.05}
MAX_GAP = 64  # longest trained gap, frames at the internal rate (2.1 s at 30 fps)


def part_joints(names) -> torch.Tensor:
    """(22,) bool: the joints of ``names`` ('body' = all 22, the root included; a group such as 'left_leg';
    joint names), comma-separated or a list (:func:`dposer.spec.skeleton.body_motion_joints`)."""
    return torch.from_numpy(body_motion_joints(names))


_LIMB_SETS = [part_joints(x) for x in LIMBS + ("legs", "arms")] + [part_joints("legs") | part_joints("root"),
                                                                 ~(part_joints("legs") | part_joints("root"))]


def gap_mask(n: int, frames: int, gap: int, joints: torch.Tensor) -> torch.Tensor:
    """(n, frames, 22): a centred gap of ``gap`` frames over ``joints``."""
    m = torch.zeros(n, frames, NJ, dtype=torch.bool)
    a = (frames - gap) // 2
    m[:, a:a + gap] = joints
    return m


def _rand(gen, lo, hi) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _gap(frames: int, gen) -> tuple[int, int]:
    g = min(_rand(gen, 1, MAX_GAP), frames - 2)
    if float(torch.rand(1, generator=gen)) < 0.1:  # touching the window's edge (extrapolation)
        a = 0 if float(torch.rand(1, generator=gen)) < 0.5 else frames - g
    else:
        a = _rand(gen, 1, frames - g - 1)
    return a, a + g


def one_mask(frames: int, gen, kind: str) -> torch.Tensor:
    m = torch.zeros(frames, NJ, dtype=torch.bool)
    if kind == "body_gap":
        a, b = _gap(frames, gen)
        m[a:b] = True
    elif kind == "limb_gap":
        a, b = _gap(frames, gen)
        m[a:b] = _LIMB_SETS[_rand(gen, 0, len(_LIMB_SETS) - 1)]
    elif kind == "blobs":
        for _ in range(_rand(gen, 1, 4)):
            a, b = _gap(frames, gen)
            m[a:b, _rand(gen, 0, NJ - 1)] = True
    elif kind == "keyframes":
        every = _rand(gen, 4, 20)
        keep = torch.zeros(frames, dtype=torch.bool)
        keep[_rand(gen, 0, every - 1)::every] = True
        m[~keep] = True
    elif kind == "limb_window":
        m[:] = _LIMB_SETS[_rand(gen, 0, len(_LIMB_SETS) - 1)]
    else:
        m[:] = True
    return m


def random_mask(n: int, frames: int, gen: torch.Generator) -> torch.Tensor:
    """(n, frames, 22) random masks, kinds drawn with :data:`KINDS`' probabilities."""
    names, p = list(KINDS), torch.tensor(list(KINDS.values()))
    kinds = torch.multinomial(p, n, replacement=True, generator=gen)
    return torch.stack([one_mask(frames, gen, names[int(k)]) for k in kinds])
