"""A take's body motion as the motion prior sees it, NumPy + SciPy only (what ``dposer fill`` and the server's
``fill`` op need, without the corpus and its training sources): (F, 22, 3) axis-angle, the root orientation then
the 21 SMPL-X body joints, and resampling by time to the prior's internal rate :data:`RATE`.

Resampling is by time, never by an integer stride: a take of F frames at f fps covers (F-1)/f seconds; frame k of
the result is at k/RATE s, each joint's rotation SLERPed between the two source frames around it.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

RATE = 30.0  # the motion prior's internal frame rate (frames per second)
NJ = 22  # root + 21 body joints


def stack(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """(F, 3) root + (F, 63) body -> (F, 22, 3)."""
    n = len(body_pose)
    return np.concatenate([np.asarray(global_orient).reshape(n, 1, 3), np.asarray(body_pose).reshape(n, 21, 3)], 1)


def resample(rotvec: np.ndarray, fps: float, rate: float = RATE) -> np.ndarray:
    """(F, J, 3) axis-angle at ``fps`` -> (F', J, 3) at ``rate``, by time (SLERP per joint)."""
    rotvec = np.asarray(rotvec, np.float64)
    f, nj = rotvec.shape[:2]
    if f < 2 or abs(fps - rate) < 1e-6:
        return rotvec.astype(np.float32)
    src_t = np.arange(f) / fps
    dst_t = np.arange(int(np.floor(src_t[-1] * rate + 1e-6)) + 1) / rate
    dst_t = np.minimum(dst_t, src_t[-1])
    out = np.empty((len(dst_t), nj, 3))
    for j in range(nj):
        out[:, j] = Slerp(src_t, Rotation.from_rotvec(rotvec[:, j]))(dst_t).as_rotvec()
    return out.astype(np.float32)


def resample_linear(x: np.ndarray, fps: float, rate: float = RATE) -> np.ndarray:
    """(F, D) values at ``fps`` -> (F', D) at ``rate`` by linear interpolation in time (e.g. root translation)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2 or abs(fps - rate) < 1e-6:
        return x.astype(np.float32)
    src_t = np.arange(len(x)) / fps
    dst_t = np.minimum(np.arange(int(np.floor(src_t[-1] * rate + 1e-6)) + 1) / rate, src_t[-1])
    return np.stack([np.interp(dst_t, src_t, x[:, d]) for d in range(x.shape[1])], 1).astype(np.float32)
