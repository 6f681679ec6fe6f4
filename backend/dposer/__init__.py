"""dposer: a DPoser-X whole-body (SMPL-X body, hands, face) diffusion pose prior.

    >>> import dposer
    >>> prior = dposer.load_prior()            # the bundled default checkpoint
    >>> poses = dposer.sample(prior, 8, seed=0)  # dict of the six SMPL-X keys
    >>> done = dposer.complete(prior, {"body_pose": poses["body_pose"]}, "right_hand", hypotheses=5)
    >>> done["right_hand_pose"], done.hypotheses["right_hand_pose"]  # a TaskResult: typed, and read like a dict

The package's rooms: :mod:`dposer.spec` (poses and operations described with NumPy only; what the Blender add-on
imports), :mod:`dposer.core` (model, prior, samplers, solver), :mod:`dposer.tasks`, :mod:`dposer.formats`,
:mod:`dposer.serve`, :mod:`dposer.train` and :mod:`dposer.eval`. ``import dposer`` needs NumPy only: the public
names below load their modules (and torch) when first used.
"""
__version__ = "0.1.0"

# public name -> the module that defines it (loaded on first use, PEP 562)
_PUBLIC = {"Prior": "core.prior", "load_prior": "core.prior", "TaskResult": "core.results",
           "sample": "core.sampling", "complete": "tasks.pose_tasks", "clean": "tasks.pose_tasks",
           "vary": "tasks.pose_tasks", "refine": "tasks.pose_tasks", "fit": "tasks.pose_tasks"}

__all__ = list(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'dposer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
