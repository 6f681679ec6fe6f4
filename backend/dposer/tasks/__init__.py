"""The operations on poses: complete, clean, vary, refine, fit (:mod:`.pose_tasks`), with the clip solver
(:mod:`.temporal`), mocap fault finding (:mod:`.faults`) and repair (:mod:`.cleaning`)."""
from .pose_tasks import CLEAN, COMPLETE, FIT, REFINE, clean, complete, fit, refine, vary

__all__ = ["CLEAN", "COMPLETE", "FIT", "REFINE", "clean", "complete", "fit", "refine", "vary"]
