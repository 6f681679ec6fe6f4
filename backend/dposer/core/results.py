"""What the tasks (:mod:`dposer.tasks`) return: one typed result instead of an untyped dict.

A :class:`TaskResult` names its parts as fields (the pose, the hypotheses, the scores, what cleaning repaired, the
fit's target error) and still reads and writes like the dict the tasks used to return (``res["body_pose"]``,
``res["right_hand_pose_hypotheses"]``, ``"repaired" in res``, ``res.pop("repaired")``, ``np.savez(f, **res)``),
with the same keys in the same order, so the server's JSON and the ``.npz`` files are unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field

import numpy as np

from ..spec import layout

_HYP = "_hypotheses"
# Optional fields, in their key order after the pose (and its hypotheses); None = absent.
_OPTIONAL = ("trans", "scores", "repaired", "cuts", "jitter_deg", "target_error")


@dataclass(eq=False)
class TaskResult(MutableMapping):
    """A task's answer. ``pose``: ``global_orient`` and the SMPL-X pose keys (see :mod:`dposer.spec.layout`), arrays
    (N, D); ``hypotheses``: pose key -> (K, N, D), best first (complete); ``scores`` (K, N), lower = better
    (complete); ``trans`` (F, 3) passed through (clean); ``repaired`` (a list of {"joint", "first", "last",
    "kind"}), ``cuts`` and ``jitter_deg`` (clean); ``target_error`` (N, J) metres (fit); ``extra``: keys a caller
    added (e.g. ``repaired_joint`` for an npz).

    As a mapping the keys are the pose keys, then ``trans``, ``<key>_hypotheses``, ``scores``, ``repaired``,
    ``cuts``, ``jitter_deg``, ``target_error`` (those set), then the extra keys."""

    pose: dict[str, np.ndarray]
    hypotheses: dict[str, np.ndarray] = field(default_factory=dict)
    scores: np.ndarray | None = None
    trans: np.ndarray | None = None
    repaired: list[dict] | None = None
    cuts: np.ndarray | None = None
    jitter_deg: np.floating | None = None
    target_error: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def _slot(self, key: str) -> tuple[str, str | None]:
        """Where ``key`` lives: ('pose' | 'hypotheses' | 'extra', the dict key) or (a field name, None)."""
        if key in layout.POSE_KEYS:
            return "pose", key
        if key.endswith(_HYP) and key[: -len(_HYP)] in layout.POSE_KEYS:
            return "hypotheses", key[: -len(_HYP)]
        if key in _OPTIONAL:
            return key, None
        return "extra", key

    def __getitem__(self, key: str):
        where, k = self._slot(key)
        if k is not None:
            return getattr(self, where)[k]
        value = getattr(self, where)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value) -> None:
        where, k = self._slot(key)
        if k is not None:
            getattr(self, where)[k] = value
        else:
            setattr(self, where, value)

    def __delitem__(self, key: str) -> None:
        where, k = self._slot(key)
        if k is not None:
            del getattr(self, where)[k]
        elif getattr(self, where) is None:
            raise KeyError(key)
        else:
            setattr(self, where, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.pose
        if self.trans is not None:
            yield "trans"
        yield from (k + _HYP for k in self.hypotheses)
        for name in _OPTIONAL:
            if name != "trans" and getattr(self, name) is not None:
                yield name
        yield from self.extra

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"TaskResult(keys: {', '.join(self)})"
