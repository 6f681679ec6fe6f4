# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the copies of a crowd (Vary's variations) stand: a grid next to the original. NumPy only, no bpy."""
from __future__ import annotations

import numpy as np

__all__ = ["grid_offsets"]


def grid_offsets(n: int, spacing: float, columns: int | None = None) -> np.ndarray:
    """(n, 3) offsets (x, y, 0) of n copies on a square grid next to an original at the origin: cells are
    ``spacing`` apart, filled row by row along +x, rows going back along +y (away from a front camera; the SMPL-X zero
    pose faces -y), and cell (0, 0) is left to the original."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    cols = columns or int(np.ceil(np.sqrt(n + 1)))
    cells = np.arange(1, n + 1)
    out = np.zeros((n, 3))
    out[:, 0] = (cells % cols) * spacing
    out[:, 1] = (cells // cols) * spacing
    return out
