# SPDX-License-Identifier: GPL-3.0-or-later
"""DPoser for Blender: a whole-body pose prior (SMPL-X body, hands, face) for artists' rigs.

Blender 4.2 LTS to 5.0, extension format (``blender_manifest.toml`` is the single source of the version).
The add-on is pure Python + NumPy and never imports torch: the DPoser backend runs in a separate Python process
(``python -m dposer.server``, JSON lines over stdin/stdout) or, as an advanced option, embedded in Blender's Python.

This package must stay importable without ``bpy`` so that its pure modules are unit-tested outside Blender:

- :mod:`.rig_math`       rotations, Euler/quaternion continuity, SMPL-X <-> rig retargeting and calibration
- :mod:`.bone_maps`      bone-map presets and auto-detection
- :mod:`.backend_client` backend processes (subprocess and embedded) speaking protocol v1

TODO (bpy modules, imported only inside :func:`register`):

- ``preferences``  AddonPreferences (bl_idname = __package__): backend mode (subprocess / embedded), backend
  Python, checkpoint, device, threads, "Test backend"; no prefs are read in ``register()``.
- ``operators``    Add DPoser armature (from :func:`.rig_math.armature_spec`), detect bone map, calibrate (posed
  zero pose / automatic, preview), complete hands / selected joints, clean range, variations; modal operator that
  polls the backend queue on a timer (progress, Esc = cancel, one undo step on FINISHED).
- ``panel``        N-panel tab: rig profile (bone map + calibration stored on the armature), tasks, progress.
- ``keyframes``    keyframe compatibility helper: legacy ``action.fcurves`` (4.2/4.3) vs slotted actions and
  channelbags (4.4+, 5.0 removed ``Action.fcurves``); bulk ``keyframe_points.foreach_set``; rotation written in
  each bone's own rotation mode with quaternion/Euler continuity (blender.md section 5).
- ``unregister()`` must also shut the backend process down (and the add-on registers an ``atexit`` hook for it);
  a backend left behind exits by itself when its stdin closes.
"""
from __future__ import annotations

import importlib

# bpy-dependent submodules, registered in this order (none exist yet; see the TODO above).
_BPY_MODULES: tuple[str, ...] = ()
_registered: list = []


def _require_bpy():
    try:
        import bpy  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "blender_dposer.register()/unregister() need Blender's 'bpy' module: install the add-on in Blender "
            "(Edit > Preferences > Get Extensions > Install from Disk). Outside Blender only the pure modules "
            "(blender_dposer.rig_math, bone_maps, backend_client) can be used.") from e
    return bpy


def register() -> None:
    """Register the add-on's classes (idempotent: a second call does nothing)."""
    _require_bpy()
    if _registered:
        return
    for name in _BPY_MODULES:
        mod = importlib.import_module(f".{name}", __name__)
        mod.register()
        _registered.append(mod)


def unregister() -> None:
    """Unregister in reverse order; a no-op when nothing is registered."""
    _require_bpy()
    while _registered:
        _registered.pop().unregister()
