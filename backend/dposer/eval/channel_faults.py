"""A seeded fault model on a take's own per-bone rotations (any skeleton, any frame rate), for ``dposer bench
clean`` and the tests. Every fault is R' = R exp(delta) (bone-local), on the bones that move in the take:

- jitter: Gaussian rotation noise on every moving bone and frame (``jitter_deg`` per axis);
- spike: one frame of one bone off by 20-40 deg; a third of them a twist about the bone's own axis (the
  direction to its first child or End Site);
- pop: 0.1-0.27 s of one bone off by a constant 15-30 deg rotation;
- hold: one limb (a bone and its chain of single children, up to three bones) held at its last value for
  0.5-1 s while the body moves.

Durations and rates are in seconds, so a take resampled to another frame rate gets the same faults in time.
Faults keep ``margin_s`` from the ends and never share a (frame, bone) cell (with a free frame either side).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation


class Unfit(ValueError):
    """The take cannot hold the fault model (too short, or nothing moves)."""


@dataclass(frozen=True)
class ChannelFaultModel:
    jitter_deg: float = 1.5
    spikes_per_s: float = 0.6  # events per second (at least one of each kind whose rate is > 0)
    pops_per_s: float = 0.3
    holds_per_s: float = 0.1
    spike_deg: tuple = (20.0, 40.0)
    twist_share: float = 1 / 3  # share of spikes that twist the bone about its own axis
    pop_deg: tuple = (15.0, 30.0)
    pop_s: tuple = (0.1, 0.27)
    hold_s: tuple = (0.5, 1.0)
    margin_s: float = 0.1


@dataclass
class Faulty:
    q: np.ndarray  # (F, B, 4) the faulty rotations
    mask: np.ndarray  # (F, B) bool: cells a fault changed (jitter is not a fault)
    events: list = field(default_factory=list)  # (kind, bone index, first frame, last frame)

    @property
    def fault_frames(self) -> np.ndarray:
        return self.mask.any(1)


def _count(rate: float, seconds: float) -> int:
    return 0 if rate <= 0 else max(1, int(round(rate * seconds)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def inject(q: np.ndarray, fps: float, axes: np.ndarray, chains: list, seed: int = 0,
           model: ChannelFaultModel = ChannelFaultModel()) -> Faulty:
    """Faulty copy of ``q`` (F, B, 4). ``axes`` (B, 3): each bone's own axis in its local frame (unit, for twist
    spikes); ``chains``: per bone, the bones a hold on it freezes (itself first)."""
    m = model
    q = np.asarray(q, np.float64)
    F, B = q.shape[:2]
    rng = np.random.default_rng(seed)
    moving = np.flatnonzero(np.ptp(q, axis=0).max(-1) > 1e-9)
    if not len(moving):
        raise Unfit("no bone moves in this take")
    margin = max(1, int(round(m.margin_s * fps)))
    longest = int(round(max(m.hold_s[1], m.pop_s[1]) * fps))
    if F < 2 * margin + longest + 2:
        raise Unfit(f"a take of {F} frames at {fps:g} fps is too short for the fault model")
    rot = Rotation.from_quat(q.reshape(-1, 4))
    if m.jitter_deg > 0:
        rot = rot * Rotation.from_rotvec(rng.normal(scale=np.radians(m.jitter_deg), size=(F * B, 3)))
    out = rot.as_quat().reshape(F, B, 4)
    out[:, [b for b in range(B) if b not in set(moving)]] = q[:, [b for b in range(B) if b not in set(moving)]]
    mask = np.zeros((F, B), bool)
    events = []
    seconds = F / fps

    def place(bones, n, tries=50):
        for _ in range(tries):
            a = int(rng.integers(margin, F - margin - n + 1))
            if not mask[max(0, a - 1):a + n + 1, bones].any():
                return a, a + n - 1
        return None

    def offset(cells_b, a, b, rv):
        r = Rotation.from_quat(out[a:b + 1, cells_b]) * Rotation.from_rotvec(np.tile(rv, (b - a + 1, 1)))
        out[a:b + 1, cells_b] = r.as_quat()
        mask[a:b + 1, cells_b] = True

    for _ in range(_count(m.holds_per_s, seconds)):  # holds first: they hold the (jittered) last value
        bone = int(rng.choice(moving))
        limb = [c for c in chains[bone] if c in set(moving)]
        n = int(round(rng.uniform(*m.hold_s) * fps))
        w = place(limb, n)
        if w:
            a, b = w
            out[a:b + 1, limb] = out[a - 1, limb]
            mask[a:b + 1, limb] = True
            events.append(("hold", bone, a, b))
    for _ in range(_count(m.pops_per_s, seconds)):
        bone = int(rng.choice(moving))
        w = place([bone], max(1, int(round(rng.uniform(*m.pop_s) * fps))))
        if w:
            axis = _unit(rng.normal(size=3))
            offset(bone, *w, axis * np.radians(rng.uniform(*m.pop_deg)))
            events.append(("pop", bone, *w))
    for _ in range(_count(m.spikes_per_s, seconds)):
        bone = int(rng.choice(moving))
        w = place([bone], 1)
        if w:
            twist = rng.uniform() < m.twist_share
            axis = axes[bone] if twist else _unit(rng.normal(size=3))
            offset(bone, *w, axis * np.radians(rng.uniform(*m.spike_deg)) * rng.choice([-1, 1]))
            events.append(("twist spike" if twist else "spike", bone, *w))
    return Faulty(out, mask, sorted(events, key=lambda e: e[2]))


def skeleton_axes(take) -> tuple[np.ndarray, list]:
    """(axes (B, 3), chains) of a :class:`dposer.bvh.Bvh` take's rotation bones (as :func:`inject` wants them):
    each bone's axis toward its first child with a non-zero offset (or its End Site; else +Y), and its chain of
    single children, up to three bones."""
    from ..formats.bvh_channels import rotation_bones

    bones = rotation_bones(take)
    pos = {k: i for i, k in enumerate(bones)}
    kids: dict[int, list[int]] = {k: [] for k in range(len(take.joints))}
    for k, j in enumerate(take.joints):
        if j.parent >= 0:
            kids[j.parent].append(k)
    axes, chains = [], []
    for k in bones:
        offs = [np.asarray(take.joints[c].offset, float) for c in kids[k]]
        if take.joints[k].end_site is not None:
            offs.append(np.asarray(take.joints[k].end_site, float))
        offs = [o for o in offs if np.linalg.norm(o) > 1e-9]
        axes.append(_unit(offs[0]) if offs else np.array([0.0, 1.0, 0.0]))
        chain, c = [pos[k]], k
        while len(chain) < 3 and len(kids[c]) == 1 and kids[c][0] in pos:
            c = kids[c][0]
            chain.append(pos[c])
        chains.append(chain)
    return np.array(axes), chains
