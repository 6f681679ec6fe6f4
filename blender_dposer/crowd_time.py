# SPDX-License-Identifier: GPL-3.0-or-later
"""When each copy of a crowd starts: the start-frame offsets of Variations' copies. No bpy."""
from __future__ import annotations

import numpy as np


def start_offsets(count: int, spread: int, seed: int) -> list[int]:
    """Whole-frame delays in [0, spread] for ``count`` copies: spread evenly over the range (so copies differ as
    much as the range allows) and shuffled by ``seed`` (so neighbours in the grid are not in order)."""
    if count < 1 or spread < 0:
        raise ValueError(f"count must be >= 1 and spread >= 0, got {count} and {spread}")
    even = np.round(np.linspace(0, spread, count)).astype(int) if count > 1 else np.zeros(1, int)
    return [int(x) for x in np.random.default_rng(seed).permutation(even)]
