"""The operations on poses: complete, clean, vary, refine, fit (:mod:`.pose_tasks`), with the clip solver
(:mod:`.temporal`), mocap fault finding (:mod:`.faults`) and repair (:mod:`.cleaning`), and the NumPy-only cleaner
of a take's own rotation channels (:mod:`.channel_clean`, which the Blender add-on runs in Blender's Python).
Importing this package loads no torch: the names below load :mod:`.pose_tasks` on first use (PEP 562)."""
_PUBLIC = ("CLEAN", "COMPLETE", "FIT", "REFINE", "clean", "complete", "fit", "refine", "vary")

__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'dposer.tasks' has no attribute {name!r}")
    from . import pose_tasks

    return getattr(pose_tasks, name)
