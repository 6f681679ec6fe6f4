# SPDX-License-Identifier: GPL-3.0-or-later
"""DPoser for Blender: a whole-body pose prior (SMPL-X body, hands, face) for artists' rigs.

Blender 4.2 LTS to 5.0, extension format (``blender_manifest.toml`` is the single source of the version).
The add-on is pure Python + NumPy and never imports torch. It reads the poses' layout, the SMPL-X skeleton,
rotations, bone-map presets, the protocol and the operations' declarations from :mod:`dposer.spec` (NumPy only) in
the ``dposer`` package the zip carries; the DPoser backend runs in a separate Python process
(``python -m dposer.serve``, JSON lines over stdin/stdout) or, as an advanced option, embedded in Blender's Python.
The extension zip carries the backend (``backend/dposer`` with its default checkpoint); PyTorch comes from the
Install Backend button (:mod:`.installer`).

This package must stay importable without ``bpy`` so that its pure modules are unit-tested outside Blender:

- :mod:`.bundled`        where the zip puts the ``dposer`` package; puts it on ``sys.path``
- :mod:`.retarget`       SMPL-X <-> rig retargeting and calibration (:mod:`.rig_math` re-exports it with the
  SMPL-X skeleton and rotations of :mod:`dposer.spec`)
- :mod:`.backend_client` backend processes (subprocess and embedded) speaking protocol v1
- :mod:`.installer`      pip-installs PyTorch with Blender's own Python into the add-on's user folder
- :mod:`.rig_profile`    the rig profile stored on an armature object (custom properties): bone-map preset
  (detected or chosen) and rest calibration, used by every job (no bpy import; works on the objects it is given)

bpy modules, imported only inside :func:`register`:

- :mod:`.session`      the backend session (one backend per Blender session, started lazily, shut down in
  ``unregister()`` and at exit) and reading the preferences
- :mod:`.preferences`  AddonPreferences (backend mode, interpreter, device, checkpoint, threads) and their page
- :mod:`.install_ops`  ``dposer.install_backend`` (the Install Backend button: modal, progress, Esc cancels)
- :mod:`.keyframes`    keyframe compatibility helper: legacy ``action.fcurves`` (4.2/4.3) vs slotted actions and
  channelbags (4.4+; 5.0 removed ``Action.fcurves``); bulk ``keyframe_points.foreach_set``; rotations in each
  bone's own rotation mode with quaternion/Euler continuity (blender.md section 5)
- :mod:`.operators`    ``dposer.add_armature``, ``dposer.calibrate_rest``, ``dposer.show_zero_pose``,
  ``dposer.complete``, ``dposer.refine``, ``dposer.random_pose``, ``dposer.clean``, ``dposer.vary`` (the jobs:
  execute = synchronous, invoke = modal with progress and Esc), ``dposer.test_backend``
- :mod:`.fill_ops`     ``dposer.fill_gap``: fill a gap of frames of a take from the motion around it (the
  backend's ``fill`` op; frame and joint choices in the bpy-free :mod:`.fill_frames`)
- :mod:`.preview`      Complete's hypothesis preview: next / previous / accept / cancel (exact restore)
- :mod:`.panel`        the "DPoser" tab of the 3D viewport sidebar

User guide: docs/user_guide.md. TODO (later issues): a bone-map editing UI, evaluated-pose reading
(constraints/IK), NLA/ghost-armature preview.
"""
from __future__ import annotations

import importlib

from . import bundled

bundled.put_on_path()  # the add-on's pure modules import dposer.spec

# bpy-dependent submodules, registered in this order.
_BPY_MODULES: tuple[str, ...] = ("preferences", "install_ops", "operators", "fill_ops", "take_ops", "preview",
                                 "panel")
_registered: list = []


def _require_bpy():
    try:
        import bpy  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "blender_dposer.register()/unregister() need Blender's 'bpy' module: install the add-on in Blender "
            "(Edit > Preferences > Get Extensions > Install from Disk). Outside Blender only the pure modules "
            "(blender_dposer.rig_math, rig_profile, backend_client) can be used.") from e
    return bpy


def _register_class(cls) -> None:
    """``bpy.utils.register_class`` that survives a class left registered (a reload, or an earlier register
    without unregister): a second registration raises ValueError (blender.md 6.3), so the old one is replaced."""
    import bpy

    try:
        bpy.utils.register_class(cls)
    except ValueError:
        old = getattr(bpy.types, cls.__name__, None)
        for c in {old, cls} - {None}:
            try:
                bpy.utils.unregister_class(c)
            except (RuntimeError, ValueError):
                pass
        bpy.utils.register_class(cls)


def register() -> None:
    """Register each bpy module's ``CLASSES``, then run its ``register()`` for anything else it adds (properties,
    exit hooks). Idempotent: a second call does nothing."""
    _require_bpy()
    if _registered:
        return
    for name in _BPY_MODULES:
        mod = importlib.import_module(f".{name}", __name__)
        for cls in mod.CLASSES:
            _register_class(cls)
        if hasattr(mod, "register"):
            mod.register()
        _registered.append(mod)


def unregister() -> None:
    """In reverse order: each module's ``unregister()`` (its own clean-up), then its ``CLASSES``; a no-op when
    nothing is registered."""
    import bpy

    _require_bpy()
    while _registered:
        mod = _registered.pop()
        if hasattr(mod, "unregister"):
            mod.unregister()
        for cls in reversed(mod.CLASSES):
            if cls.is_registered:
                bpy.utils.unregister_class(cls)
