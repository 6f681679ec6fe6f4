"""The motion prior: a small masked-diffusion model over ~3 s windows of body motion, and what it does.

A take here is ``rot`` (F, 22, 3): axis-angle of the root orientation and the 21 SMPL-X body joints per frame, at
its own frame rate ``fps``; a mask (F, 22) marks cells (frame, joint), True = missing / to change. Everything
resamples by time to the prior's internal 30 fps and back, so 24-120 fps takes are served alike.

    from dposer.motion import load_motion_prior, fill, read_take

    prior = load_motion_prior()                    # weights/motion.safetensors (or a path); fp32 on CPU
    take = read_take("take.npz")                   # six-key SMPL-X npz, AMASS npz or BVH -> take.rot, take.fps
    filled, gaps = fill(take.rot, mask, take.fps, prior)   # prior where its probes beat SLERP/spline, else those
    filled, gaps = fill(take.rot, mask, take.fps, prior, check=False)   # the prior's own answer, unchecked
    variation = prior.sample_like(take.rot, take.fps, strength=0.3, seed=1, lock=lock_mask)

- :func:`fill`: only masked cells change (bit-exact elsewhere); ``gaps`` says per gap which answer was used and
  the probe errors (degrees) it was chosen on. Without a prior (``None``) the probes pick SLERP or the spline.
- :meth:`MotionPrior.sample_like`: partly re-noise a take (``strength`` 0 = itself, 1 = unrelated) and denoise it
  window by window: variations of a take (crowds), repairs of held limbs / spikes when their cells are masked
  and the rest locked.
- Commands: ``dposer motion-corpus`` (data cache), ``dposer motion-train`` (training), ``dposer fill``,
  ``dposer bench fill``.

Modules: :mod:`.corpus` (data, resampling), :mod:`.masks` (training masks, part names), :mod:`.model` (network,
schedule, interpolation base, sampler), :mod:`.train`, :mod:`.checkpoint`, :mod:`.prior` (inference),
:mod:`.interp` (SLERP / spline), :mod:`.filling` (gap filling, files), :mod:`.bench`, :mod:`.cli`.
"""
_API = {"fill": "filling", "read_take": "filling", "Take": "filling", "MotionPrior": "prior",
        "load_motion_prior": "prior",
        "random_motion_prior": "prior"}
__all__ = sorted(_API)


def __getattr__(name):  # the API loads torch on first use, not when the command line is built
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
