"""Clean a take in its own channels: find and repair faults on every bone's local rotation, smooth jitter only when
the take has it. NumPy only (no SciPy, no torch, no other dposer module): the add-on imports this module in Blender
(``blender_dposer/channel_keys.py``, from the ``dposer`` package its zip bundles).

A take is ``q`` (F, B, 4): each bone's local rotation per frame as unit quaternions (x, y, z, w), any skeleton.
Every time constant is in seconds, so a fault is found the same way at 24 and at 240 fps.

- **Jumps.** A fault starts and ends with a jump: the step from one frame to the next differs from the steps
  around it. The jump residual of the step t -> t+1 is that step minus its cubic prediction from the two steps
  either side; a jump is a local maximum of it above ``jump_sigmas`` robust noise scales, above
  ``jump_floor_deg`` and above ``speed_share`` times the bone's median step around it (fast motion at a low frame
  rate is not a fault).
- **Spikes and pops** are a jump and its return (the opposite jump) less than ``max_pop_s`` later: the frames
  between are bad. A one-frame spike must also stand ``jump_floor_deg`` off the midpoint of its two neighbours (its
  jump residual is about 5/3 of that, so the residual floor alone would take a 7 deg flick at a foot strike, real
  motion at 30 fps, for a fault).
- **A fault is one bone's.** A spike whose two steps a nearby bone jumps on too (by a lower bar,
  ``companion_share`` of the floor), or a pop whose first or last step a nearby bone jumps on, is the body's motion
  (a head nod down the neck chain, a hand's fingers flipping together, a foot strike through ankle and toes), or a
  glitch of the capture that ran down a chain: either way not one bone's fault, and left as it is. Nearby: at most
  ``companion_links`` links apart in the skeleton (``parents``; 2: parent, child, sibling, grandparent, grandchild),
  so an unrelated bone's real motion on the same frame does not hide a fault; with no skeleton given, every other
  bone counts.
- **Held bones**: a stretch of at least ``min_hold_s`` where the bone does not move (steps under
  ``hold_eps_deg``) that ends or starts with a jump (a limb frozen while the body moves, then released); on a bone
  with jitter (over ``still_jitter_deg``) a still stretch is a hold by itself. While more than ``still_body_share``
  of the bones are still too, it is no held limb (a capture that starts late, a performer standing still).
- **Repair**: the bad cells are filled by ``fill(q, bad, fps)``: by default :func:`regression_fill` (a cubic
  spline on the sign-continuous quaternion components, renormalised; held stretches predicted from the bones that
  keep moving, by a regression fitted on the take itself). A motion prior's fill with the same signature can
  replace it.
- **Jitter**: the noise level is estimated per bone (robust scale of the third differences) and for the take as
  the lower quartile over the moving bones (``jitter_quantile``: noise is on every bone, while fast motion at a low
  frame rate raises only the fast limbs' estimates); when the take's level is at least ``jitter_min_deg``, each
  bone is low-passed (zero-phase Butterworth) with the cutoff that minimises Mallows' Cp for that noise level, and
  the bad cells are then filled from the smoothed good frames.
  Otherwise only repaired cells change: an unfaulted take comes back bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Settings:
    jump_floor_deg: float = 12.0  # no jump smaller than this is a fault
    jump_sigmas: float = 4.0  # a jump is this many robust noise scales of the jump residual
    speed_share: float = 2.0  # ... and larger than this multiple of the bone's median step over speed_window_s
    speed_window_s: float = 0.1
    max_pop_s: float = 0.35  # longest stretch between a jump and its return (spikes and pops)
    min_hold_s: float = 0.2  # shortest held stretch
    hold_eps_deg: float = 0.01  # a step under this is "not moving"
    still_body_share: float = 0.5  # a still stretch while more than this share of the bones is still is no hold
    still_jitter_deg: float = 0.2  # on a bone with more jitter than this, a still stretch is a hold without a jump
    jitter_min_deg: float = 0.3  # smooth only takes whose estimated jitter is at least this (degrees per axis)
    jitter_quantile: float = 0.25  # the take's jitter: this quantile of the moving bones' estimates
    cp_noise_factor: float = 1.5  # the noise variance in Mallows' Cp is scaled by this (> 1: smoother)
    cutoffs_hz: tuple = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0)
    companion_share: float = 0.5  # a nearby bone jumping on both steps of a spike (by this share of jump_floor_deg and
    # its own noise and speed bounds) or on a pop's first or last step (a jump) makes it motion, not a fault (0: off)
    companion_links: int = 2  # "nearby": at most this many links apart in the skeleton (parent, child, sibling, ...)
    passes: int = 2  # detect-and-repair passes (a second pass finds faults hidden next to bigger ones)


@dataclass
class Report:
    bad: np.ndarray  # (F, B) bool: cells repaired
    events: list = field(default_factory=list)  # (kind, bone index, first frame, last frame)
    jitter_deg: float = 0.0  # the take's estimated jitter (degrees per axis)
    smoothed: bool = False
    cutoff_hz: np.ndarray | None = None  # (B,) the low-pass cutoff of each bone when smoothed


# NumPy stand-ins for the few SciPy routines used (Blender's Python has NumPy but not SciPy); tests check them
# against SciPy.

def _sliding(x: np.ndarray, half: int, fn) -> np.ndarray:
    """``fn`` (np.max, np.median) over a window of ``half`` frames either side along axis 0, edges repeated (SciPy's
    ndimage filters with mode='nearest')."""
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    return fn(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0), axis=-1)


def natural_spline(t: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The natural cubic spline through (``t`` (n,) increasing, ``y`` (n, k)) evaluated at ``at`` (SciPy's
    ``CubicSpline(t, y, bc_type='natural')``)."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    n = len(t)
    h = np.diff(t)
    m = np.zeros_like(y)  # second derivatives; zero at both ends
    if n > 2:  # tridiagonal system for m[1:-1] (Thomas algorithm)
        diag = 2 * (h[:-1] + h[1:])
        rhs = 6 * ((y[2:] - y[1:-1]) / h[1:, None] - (y[1:-1] - y[:-2]) / h[:-1, None])
        c, d = np.zeros(n - 2), np.zeros_like(rhs)
        c[0], d[0] = h[1] / diag[0] if n > 3 else 0.0, rhs[0] / diag[0]
        for i in range(1, n - 2):
            den = diag[i] - h[i] * c[i - 1]
            c[i] = h[i + 1] / den if i < n - 3 else 0.0
            d[i] = (rhs[i] - h[i] * d[i - 1]) / den
        for i in range(n - 4, -1, -1):
            d[i] -= c[i] * d[i + 1]
        m[1:-1] = d
    i = np.clip(np.searchsorted(t, at) - 1, 0, n - 2)
    hi, a, b = h[i][:, None], (t[i + 1] - at)[:, None], (at - t[i])[:, None]
    return (m[i] * a ** 3 + m[i + 1] * b ** 3) / (6 * hi) + (y[i] / hi - m[i] * hi / 6) * a + \
        (y[i + 1] / hi - m[i + 1] * hi / 6) * b


def butter2(wn: float) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of a 2nd-order Butterworth low-pass at ``wn`` (a fraction of Nyquist): SciPy's ``butter(2, wn)``."""
    k = np.tan(np.pi * wn / 2)
    norm = 1 + np.sqrt(2) * k + k * k
    b = np.array([k * k, 2 * k * k, k * k]) / norm
    a = np.array([1.0, 2 * (k * k - 1) / norm, (1 - np.sqrt(2) * k + k * k) / norm])
    return b, a


def _lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A biquad along axis 0 (transposed direct form II) from the state ``z`` (2, ...)."""
    y = np.empty_like(x)
    z0, z1 = z[0].copy(), z[1].copy()
    for f in range(len(x)):
        y[f] = b[0] * x[f] + z0
        z0 = b[1] * x[f] - a[1] * y[f] + z1
        z1 = b[2] * x[f] - a[2] * y[f]
    return y


def filtfilt(b: np.ndarray, a: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """Zero-phase biquad along axis 0 with odd padding and steady-state initial conditions: SciPy's
    ``filtfilt(b, a, x, axis=0, padlen=padlen)``."""
    ext = np.concatenate([2 * x[:1] - x[padlen:0:-1], x, 2 * x[-1:] - x[-2:-padlen - 2:-1]]) if padlen else x
    companion = np.array([[-a[1], 1.0], [-a[2], 0.0]])
    zi = np.linalg.solve(np.eye(2) - companion, b[1:] - a[1:] * b[0])  # lfilter_zi
    zi = zi.reshape((2,) + (1,) * (x.ndim - 1))
    y = _lfilter(b, a, ext, zi * ext[:1])
    y = _lfilter(b, a, y[::-1], zi * y[-1:])[::-1]
    return y[padlen:len(y) - padlen] if padlen else y


def continuous(q: np.ndarray) -> np.ndarray:
    """Copy of ``q`` (F, B, 4) with each frame's sign chosen to agree with the previous frame (q and -q are one
    rotation)."""
    q = np.array(q, dtype=np.float64)
    dots = np.einsum("fbk,fbk->fb", q[1:], q[:-1])
    flip = np.cumsum(dots < 0, axis=0) % 2 == 1
    q[1:][flip] *= -1
    return q


def _robust_scale(x: np.ndarray, dof: int, axis=0) -> np.ndarray:
    """Noise scale per component from squared norms ``x`` (..., ) of ``dof``-dimensional Gaussian vectors: the
    median of a chi-square with ``dof`` degrees of freedom maps to one standard deviation per component."""
    med = {1: 0.455, 2: 1.386, 3: 2.366, 4: 3.357}[dof]
    return np.sqrt(np.median(x, axis=axis) / med)


def jitter_deg(q: np.ndarray) -> np.ndarray:
    """Estimated jitter per bone (degrees per axis) of a sign-continuous take ``q`` (F, B, 4): the robust scale of
    the third differences (a rotation noise of s rad per axis moves each quaternion by s/2 in its 3-D tangent; a
    third difference multiplies white noise variance by 20)."""
    if len(q) < 5:
        return np.zeros(q.shape[1])
    d3 = np.diff(q, n=3, axis=0)
    s = _robust_scale(np.einsum("fbk,fbk->fb", d3, d3), 3) / np.sqrt(20)
    return np.degrees(2 * s)


def _jump_residual(q: np.ndarray) -> np.ndarray:
    """(F-1, B, 4): each step q[t+1]-q[t] minus its cubic prediction from the two steps either side (edges: zero)."""
    s = np.diff(q, axis=0)
    r = np.zeros_like(s)
    if len(s) >= 5:
        r[2:-2] = s[2:-2] - (-s[:-4] + 4 * s[1:-3] + 4 * s[3:-1] - s[4:]) / 6
    return r


def _local_max(mag: np.ndarray, half: int, share: float = 0.9) -> np.ndarray:
    """Within ``share`` of the largest value ``half`` frames either side (a spike's two jumps are equal; the side
    lobes of a jump's residual are at most 5/6 of it)."""
    return mag >= share * _sliding(mag, half, np.max)


def near_bones(parents, links: int) -> np.ndarray:
    """(B, B) bool: the bones at most ``links`` links apart in the skeleton given by ``parents`` (B,) (each bone's
    parent index, -1 for a root), a bone not near itself."""
    parents = np.asarray(parents, int)
    B = len(parents)
    adj = np.zeros((B, B), bool)
    child = np.flatnonzero(parents >= 0)
    adj[child, parents[child]] = adj[parents[child], child] = True
    near, step = adj.copy(), adj.copy()
    for _ in range(links - 1):
        step = (step.astype(np.int64) @ adj.astype(np.int64)) > 0
        near |= step
    np.fill_diagonal(near, False)
    return near


def _apart(a: np.ndarray, b: np.ndarray) -> float:
    """Distance of two unit quaternions as rotations (either sign), in quaternion units (about half the angle)."""
    return float(min(np.linalg.norm(a - b), np.linalg.norm(a + b)))


def _companion(stir: np.ndarray, jumps: np.ndarray, near: np.ndarray, t: int, t2: int) -> bool:
    """Whether a bone of ``near`` (B,) bool jumps on both steps of a spike (by the lower bar, ``stir``) or on the
    first or last step of a pop (``jumps``)."""
    if t2 - t == 1:
        return bool((stir[t] & stir[t2] & near).any())
    return bool(((jumps[t] | jumps[t2]) & near).any())


def detect(q: np.ndarray, fps: float, s: Settings = Settings(), active: np.ndarray | None = None, parents=None):
    """(bad (F, B) bool, events) of a sign-continuous take ``q`` (F, B, 4). ``active`` (B,) bool limits the search
    to those bones (default: every bone that moves at all); ``parents`` (B,): each bone's parent index (-1: none),
    for the companion rule (default: every bone is every other's companion)."""
    F, B = q.shape[:2]
    near = ~np.eye(B, dtype=bool) if parents is None else near_bones(parents, s.companion_links)
    bad = np.zeros((F, B), bool)
    events: list = []
    if F < 6:
        return bad, events
    if active is None:
        active = np.ptp(q, axis=0).max(-1) > 0
    r = _jump_residual(q)
    mag = np.linalg.norm(r, axis=-1)  # (F-1, B)
    scale = _robust_scale(mag[2:-2] ** 2, 3)  # per component; the residual of white noise is about 2.8 sigma
    floor = np.radians(s.jump_floor_deg) / 2  # in quaternion units (half the angle)
    noise_thr = np.broadcast_to(s.jump_sigmas * scale, mag.shape)
    if s.speed_share > 0:  # fast motion at a low frame rate makes large residuals of its own
        half = max(2, int(round(s.speed_window_s * fps)))
        speed = _sliding(np.linalg.norm(np.diff(q, axis=0), axis=-1), half, np.median)
        noise_thr = np.maximum(noise_thr, s.speed_share * speed)
    thr = np.maximum(floor, noise_thr)
    jumps = (mag > thr) & _local_max(mag, 2)
    jumps[:, ~active] = False
    max_gap = max(1, int(round(s.max_pop_s * fps)))
    steps = np.degrees(2 * np.linalg.norm(np.diff(q, axis=0), axis=-1))  # (F-1, B)
    min_hold = max(2, int(round(s.min_hold_s * fps)))
    noisy = jitter_deg(q) > s.still_jitter_deg
    still_bones = (steps[:, active] < s.hold_eps_deg).sum(1)  # per step, how many searched bones hold still
    n_active = max(1, int(active.sum()))
    # jumps by a lower bar (the noise and speed bounds, companion_share of the floor), to tell a one-frame flick that
    # other bones make on the same two steps
    stir = (mag > np.maximum(noise_thr, s.companion_share * floor)) & _local_max(mag, 2)
    stir[:, ~active] = False
    for b in np.flatnonzero(active):
        ts = np.flatnonzero(jumps[:, b])
        used = np.zeros(len(ts), bool)
        for i, t in enumerate(ts):  # pair each jump with the first opposite jump within max_pop_s
            if used[i]:
                continue
            for k in range(i + 1, len(ts)):
                t2 = ts[k]
                if t2 - t > max_gap:
                    break
                a, c = r[t, b], r[t2, b]
                if t2 == t + 1 and min(np.linalg.norm(q[t + 1, b] - (q[t, b] + q[t + 2, b]) / 2),
                                       _apart(q[t + 1, b], q[t, b]), _apart(q[t + 1, b], q[t + 2, b])) < floor:
                    continue  # a one-frame flick smaller than the floor, or a frame that stays where it went: motion
                if not used[k] and np.linalg.norm(a + c) < 0.5 * max(np.linalg.norm(a), np.linalg.norm(c)):
                    used[i] = used[k] = True
                    if s.companion_share > 0 and _companion(stir, jumps, near[b], t, t2):
                        break  # the body moved: left as it is
                    bad[t + 1:t2 + 1, b] = True
                    events.append(("spike" if t2 == t + 1 else "pop", int(b), int(t + 1), int(t2)))
                    break
        still = steps[:, b] < s.hold_eps_deg  # held stretches: runs of still steps
        edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
        for a, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            # steps a..e-1 are still: frames a..e hold one value
            if e - a < min_hold:
                continue
            if still_bones[a:e].mean() > s.still_body_share * n_active:
                continue  # the body holds still too: the capture froze or the performer stood, not one limb
            end_jump = e < len(steps) and jumps[max(0, e - 1):e + 2, b].any()
            start_jump = a > 0 and jumps[max(0, a - 2):a + 1, b].any()
            if not (end_jump or start_jump or noisy[b]):  # a jittery bone never holds still by itself
                continue
            # held at the last good value (frame a), unless only the start jumps (held at the next one, frame e)
            first = a if start_jump else a + 1
            last = e - 1 if start_jump and not end_jump else e
            bad[first:last + 1, b] = True
            events.append(("hold", int(b), int(first), int(last)))
    return bad, events


def linear_fill(q: np.ndarray, bad: np.ndarray, fps: float) -> np.ndarray:
    """``q`` with the ``bad`` cells interpolated linearly per component between the good frames, renormalised."""
    return spline_fill(q, bad, fps, cubic=False)


def spline_fill(q: np.ndarray, bad: np.ndarray, fps: float, cubic: bool = True) -> np.ndarray:
    """``q`` (F, B, 4, sign-continuous) with the ``bad`` cells filled per bone by a cubic spline through the good
    frames, renormalised; bad stretches at either end hold the nearest good frame."""
    out = q.copy()
    t = np.arange(len(q))
    for b in np.flatnonzero(bad.any(0)):
        good = ~bad[:, b]
        if good.sum() < 2:
            continue
        tg = t[good]
        if cubic and good.sum() >= 4:
            fill = natural_spline(tg, q[good, b], t[bad[:, b]])
        else:
            fill = np.stack([np.interp(t[bad[:, b]], tg, q[good, b, k]) for k in range(4)], -1)
        tb = t[bad[:, b]]
        fill[tb < tg[0]] = q[tg[0], b]
        fill[tb > tg[-1]] = q[tg[-1], b]
        out[bad[:, b], b] = fill / np.linalg.norm(fill, axis=-1, keepdims=True)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1-D mask."""
    e = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(e == 1), np.flatnonzero(e == -1) - 1))


def _regress_gap(q: np.ndarray, ok: np.ndarray, bone: int, a: int, e: int, feats: np.ndarray, window: int,
                 ridge: float, X: np.ndarray) -> np.ndarray | None:
    """Bone ``bone`` of ``q`` on frames a..e predicted from the ``feats`` bones of ``X`` by ridge regression fitted
    on the ``ok`` frames within ``window`` of the gap, shifted to meet the bone's own frames either side (None if
    it cannot)."""
    F = len(q)
    lo, hi = max(0, a - window), min(F, e + 1 + window)
    train = np.zeros(F, bool)
    train[lo:hi] = ok[lo:hi]
    train[a:e + 1] = False
    if train.sum() < 4 * len(feats) + 8 or a == 0 or e + 1 >= F or not (ok[a - 1] and ok[e + 1]):
        return None
    X = X[:, feats].reshape(F, -1)
    mu, sd = X[train].mean(0), X[train].std(0) + 1e-6
    Z = np.c_[(X - mu) / sd, np.ones(F)]
    Zt, y = Z[train], q[train, bone]
    coef = np.linalg.solve(Zt.T @ Zt + ridge * len(Zt) * np.eye(Z.shape[1]), Zt.T @ y)
    pred = Z[a - 1:e + 2] @ coef
    w = np.linspace(0, 1, e - a + 3)[:, None]
    pred += (1 - w) * (q[a - 1, bone] - pred[0]) + w * (q[e + 1, bone] - pred[-1])
    return pred[1:-1]


def regression_fill(q: np.ndarray, bad: np.ndarray, fps: float, min_s: float = 0.2, window_s: float = 6.0,
                    ridge: float = 0.01) -> np.ndarray:
    """:func:`spline_fill`, except that a stretch of at least ``min_s`` (a held limb) is predicted from the bones
    that stay good during it (ridge regression on their spline-filled rotations, fitted on the take's own frames
    within ``window_s``, made to meet the bone's frames either side) when that prediction beats the spline on a
    stretch of the same length beside it."""
    out = spline_fill(q, bad, fps)
    F, B = bad.shape
    window = int(round(window_s * fps))
    for b in np.flatnonzero(bad.any(0)):
        for a, e in _runs(bad[:, b]):
            n = e - a + 1
            if n < min_s * fps:
                continue
            lo, hi = max(0, a - window), min(F, e + 1 + window)  # features: the bones good during the gap
            feats = np.flatnonzero(~bad[a:e + 1].any(0) & (np.ptp(q[lo:hi], axis=0).max(-1) > 0))
            feats = feats[feats != b]
            if not len(feats):
                continue
            ok = ~bad[:, b]
            trial = [(a - n - 2, a - 3), (e + 3, e + n + 2)]  # a test gap of the same length either side
            gain = []
            for ta, te in trial:
                if ta < 1 or te + 1 >= F or not ok[ta - 1:te + 2].all():
                    continue
                fake = ok.copy()
                fake[ta:te + 1] = False
                reg = _regress_gap(q, fake, b, ta, te, feats, window, ridge, out)
                m = bad.copy()
                m[ta:te + 1, b] = True
                spl = spline_fill(q, m, fps)[ta:te + 1, b]
                if reg is not None:
                    gain.append(np.sum((spl - q[ta:te + 1, b]) ** 2) - np.sum((reg - q[ta:te + 1, b]) ** 2))
            if not gain or np.mean(gain) <= 0:
                continue
            pred = _regress_gap(q, ok, b, a, e, feats, window, ridge, out)
            if pred is not None:
                out[a:e + 1, b] = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    return out


def _passband_fraction(fc: float, fps: float, order: int) -> float:
    """tr(S)/N of a zero-phase Butterworth low-pass: the mean of its squared magnitude over [0, fps/2]."""
    f = np.linspace(0, fps / 2, 2001)
    return float(np.mean(1 / (1 + (f / fc) ** (4 * order) + 1e-300)))  # filtfilt squares |H|^2 = 1/(1+(f/fc)^2n)


def smooth(q: np.ndarray, fps: float, noise_deg: np.ndarray, s: Settings = Settings()) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed q, cutoff per bone): each bone low-passed with the cutoff (from ``s.cutoffs_hz``, below Nyquist)
    that minimises Mallows' Cp given its noise (degrees per axis)."""
    F, B = q.shape[:2]
    cuts = [c for c in s.cutoffs_hz if c < 0.45 * fps]
    var = s.cp_noise_factor * (np.radians(noise_deg) / 2) ** 2  # per tangent component
    best = np.full(B, np.inf)
    out = q.copy()
    cut_of = np.full(B, np.nan)
    pad = min(15, F - 1)
    for c in cuts:
        bb, aa = butter2(c / (fps / 2))
        y = filtfilt(bb, aa, q, pad)
        y /= np.linalg.norm(y, axis=-1, keepdims=True)
        rss = np.einsum("fbk,fbk->b", q - y, q - y) / F
        cp = rss + 2 * 3 * var * _passband_fraction(c, fps, 2)
        better = cp < best
        best[better] = cp[better]
        out[:, better] = y[:, better]
        cut_of[better] = c
    return out, cut_of


def clean(q: np.ndarray, fps: float, s: Settings = Settings(), fill=None, active: np.ndarray | None = None,
          parents=None):
    """(cleaned q (F, B, 4), Report) of a take ``q`` (F, B, 4) of unit quaternions (x, y, z, w) at ``fps``.
    ``fill(q, bad, fps) -> q`` repairs the bad cells (default :func:`regression_fill`). ``parents`` (B,): each
    bone's parent among the take's bones (-1: none), so that only nearby bones count as companions (default: the
    skeleton is unknown and every bone counts). Cells neither repaired nor smoothed are returned exactly as given
    (same sign, same bits)."""
    q0 = np.asarray(q, dtype=np.float64)
    if q0.ndim != 3 or q0.shape[-1] != 4:
        raise ValueError(f"expected quaternions (frames, bones, 4), got shape {q0.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if parents is not None and len(parents) != q0.shape[1]:
        raise ValueError(f"parents names {len(parents)} bones, the take has {q0.shape[1]}")
    fill = fill or regression_fill
    qc = continuous(q0)
    flipped = np.sign(np.einsum("fbk,fbk->fb", qc, q0))  # +1 / -1 per cell, to hand back the caller's signs
    bad = np.zeros(q0.shape[:2], bool)
    events: list = []
    cur = qc
    for _ in range(s.passes):
        b, ev = detect(cur, fps, s, active, parents)
        new = b & ~bad
        if not new.any():
            break
        bad |= b
        events += ev
        cur = linear_fill(qc, bad, fps)  # provisional: no overshoot for the next pass or the smoother to see
    noise = jitter_deg(cur)
    moving = np.ptp(qc, axis=0).max(-1) > 0 if active is None else active
    level = float(np.quantile(noise[moving], s.jitter_quantile)) if moving.any() else 0.0
    rep = Report(bad, sorted(events, key=lambda e: (e[2], e[1])), level)
    if level >= s.jitter_min_deg:  # smooth, then fill the bad cells from the smoothed good frames
        sm, cut = smooth(cur, fps, np.maximum(noise, 1e-6), s)
        sm[:, ~moving] = cur[:, ~moving]
        cur = fill(sm, bad, fps) if bad.any() else sm
        rep.smoothed, rep.cutoff_hz = True, cut
    elif bad.any():
        cur = fill(qc, bad, fps)
    out = cur * flipped[..., None]
    changed = bad.copy()
    if rep.smoothed:
        changed[:, moving] = True
    out[~changed] = q0[~changed]
    return out, rep
