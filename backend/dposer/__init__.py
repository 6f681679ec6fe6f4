"""dposer: a DPoser-X whole-body (SMPL-X body, hands, face) diffusion pose prior.

    >>> import dposer
    >>> prior = dposer.load_prior()            # the bundled default checkpoint
    >>> poses = dposer.sample(prior, 8, seed=0)  # dict of the six SMPL-X keys
    >>> done = dposer.complete(prior, {"body_pose": poses["body_pose"]}, "right_hand", hypotheses=5)
    >>> done["right_hand_pose"], done.hypotheses["right_hand_pose"]  # a TaskResult: typed, and read like a dict
"""
__version__ = "0.1.0"

from .prior import Prior, load_prior  # noqa: E402
from .results import TaskResult  # noqa: E402
from .sampling import sample  # noqa: E402
from .tasks import clean, complete, fit, refine, vary  # noqa: E402

__all__ = ["Prior", "load_prior", "TaskResult", "sample", "complete", "clean", "vary", "refine", "fit", "__version__"]
