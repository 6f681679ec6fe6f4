"""The free answers a gap has: SLERP across it and a cubic rotation spline through the frames around it (what
Blender's Bezier keys give), per joint, at the take's own frames. NumPy + SciPy."""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline, Slerp

SPLINE_CONTEXT_S = 2.0  # the spline passes through the observed frames up to this far (seconds) around a gap


def _runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) of each run of True in a 1-D bool array."""
    d = np.diff(np.r_[0, missing.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def _gaps(missing: np.ndarray, fps: float):
    """For each run of missing frames: (first, last, hold, edge, near). ``hold`` is the observed frame to hold when
    the run touches an end of the take (else None); ``edge`` the two observed frames around it; ``near`` the
    observed frames within SPLINE_CONTEXT_S of it."""
    obs = np.flatnonzero(~missing)
    if len(obs) == 0:
        return
    ctx = int(np.ceil(SPLINE_CONTEXT_S * fps))
    for a, b in _runs(missing):
        before, after = obs[obs < a], obs[obs > b]
        if len(before) == 0 or len(after) == 0:
            yield a, b, (after[0] if len(before) == 0 else before[-1]), None, None
        else:
            yield a, b, None, np.r_[before[-1], after[0]], np.r_[before[before >= a - ctx], after[after <= b + ctx]]


def fill_joint(rotvec: np.ndarray, missing: np.ndarray, fps: float, kind: str) -> np.ndarray:
    """(F, 3) axis-angle of one joint with its missing frames filled by ``kind`` ('slerp' or 'spline'); frames
    before the first / after the last observed one hold it. Observed frames are returned unchanged."""
    if kind not in ("slerp", "spline"):
        raise ValueError(f"kind must be 'slerp' or 'spline', got {kind!r}")
    out = rotvec.copy()
    for a, b, hold, edge, near in _gaps(missing, fps):
        at = np.arange(a, b + 1)
        if hold is not None:
            out[a:b + 1] = rotvec[hold]
        elif kind == "spline" and len(near) >= 3:
            out[a:b + 1] = RotationSpline(near / fps, Rotation.from_rotvec(rotvec[near]))(at / fps).as_rotvec()
        else:
            out[a:b + 1] = Slerp(edge, Rotation.from_rotvec(rotvec[edge]))(at).as_rotvec()
    return out


def fill(rot: np.ndarray, mask: np.ndarray, fps: float, kind: str = "spline") -> np.ndarray:
    """(F, J, 3) axis-angle with the cells of ``mask`` (F, J) filled per joint by ``kind``."""
    out = np.array(rot, np.float64, copy=True)
    for j in range(out.shape[1]):
        if mask[:, j].any():
            out[:, j] = fill_joint(out[:, j], mask[:, j], fps, kind)
    return out


def fill_linear(x: np.ndarray, missing: np.ndarray, fps: float) -> np.ndarray:
    """(F, D) values (e.g. root translation) with the ``missing`` (F,) frames filled by a cubic spline through the
    observed frames around each run (held past the ends)."""
    out = np.array(x, np.float64, copy=True)
    for a, b, hold, edge, near in _gaps(missing, fps):
        at = np.arange(a, b + 1)
        if hold is not None:
            out[a:b + 1] = x[hold]
        elif len(near) >= 3:
            out[a:b + 1] = CubicSpline(near, x[near], axis=0)(at)
        else:
            out[a:b + 1] = np.stack([np.interp(at, edge, x[edge, d]) for d in range(x.shape[1])], 1)
    return out
