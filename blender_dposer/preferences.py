# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences (backend mode, interpreter, device, checkpoint) and the backend session: one backend per
Blender session, started lazily, restarted when the preferences change or the process died, shut down in
``unregister()`` and at exit. Needs bpy. Preferences are never read in ``register()`` (blender.md 6.3)."""
from __future__ import annotations

import atexit
import os
import sys
from types import SimpleNamespace

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from .backend_client import BackendError, EmbeddedBackend, make_backend

ADDON = __package__  # "blender_dposer", or "bl_ext.<repo>.blender_dposer" when installed as an extension

DEFAULTS = SimpleNamespace(backend_mode="SUBPROCESS", python_path="", device="AUTO", checkpoint="", threads=0,
                           startup_timeout=120)


def prefs(context=None):
    """The add-on's preferences, or the defaults when the add-on has no preferences entry (e.g. its register()
    was called directly instead of enabling it)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None and addon.preferences is not None else DEFAULTS


def resolve_python(path: str) -> str:
    """Interpreter for the subprocess backend: empty -> this process's ``sys.executable``; a venv/conda folder ->
    its ``bin/python`` (``Scripts/python.exe`` / ``python.exe`` on Windows); else the path itself."""
    path = bpy.path.abspath(path.strip()) if path.strip() else ""
    if not path:
        return sys.executable
    if os.path.isdir(path):
        for rel in (("bin", "python3"), ("bin", "python"), ("Scripts", "python.exe"), ("python.exe",)):
            cand = os.path.join(path, *rel)
            if os.path.isfile(cand):
                return cand
    return path


def backend_config(p) -> tuple:
    mode = p.backend_mode.lower()
    device = p.device.lower()
    checkpoint = bpy.path.abspath(p.checkpoint) if p.checkpoint.strip() else None
    threads = int(p.threads) or None
    python = resolve_python(p.python_path) if mode == "subprocess" else None
    return mode, python, device, checkpoint, threads


class _Session:
    backend = None
    config: tuple | None = None


def get_backend(context=None, start: bool = True):
    """The session's backend for the current preferences (started, not necessarily ready yet). Raises
    :class:`BackendError` with a clear message when it cannot start."""
    cfg = backend_config(prefs(context))
    b = _Session.backend
    if b is not None and (_Session.config != cfg or not b.alive or b.startup_error is not None):
        shutdown_backend()
        b = None
    if b is None and start:
        mode, python, device, checkpoint, threads = cfg
        if mode == "subprocess":
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                raise BackendError("startup_failed", f"backend Python interpreter not found: {python!r} (set it in "
                                   "Preferences > Add-ons > DPoser: a Python with dposer and torch installed)")
            b = make_backend("subprocess", python=python, checkpoint=checkpoint, device=device, threads=threads,
                             startup_timeout=DEFAULTS.startup_timeout)
        else:
            if not EmbeddedBackend.available():
                raise BackendError("startup_failed", "embedded backend: 'dposer' is not importable in Blender's "
                                   "Python; install it there or use the subprocess backend")
            b = make_backend("embedded", checkpoint=checkpoint, device=device, threads=threads,
                             startup_timeout=DEFAULTS.startup_timeout)
        b.start()
        _Session.backend, _Session.config = b, cfg
    return b


def current_backend():
    return _Session.backend


def shutdown_backend() -> None:
    b, _Session.backend, _Session.config = _Session.backend, None, None
    if b is not None:
        try:
            b.shutdown(timeout=3.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def status_text() -> str:
    b = _Session.backend
    if b is None:
        return "not started"
    if b.startup_error is not None:
        return f"failed: {b.startup_error.code}"
    if not b.alive:
        return "stopped"
    if not b.ready:
        return "starting..."
    info = b.ready_info or {}
    return f"ready: v{info.get('version', '?')} on {info.get('device', '?')}"


def error_summary(e: BaseException) -> str:
    """One line for self.report (the full text goes to the console)."""
    msg = e.message if isinstance(e, BackendError) else str(e)
    first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
    return first


class DPoserPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    backend_mode: EnumProperty(
        name="Backend",
        items=[("SUBPROCESS", "Separate Python process", "Run 'python -m dposer.server' in the interpreter below "
                "(recommended: any torch/CUDA build, a crash does not take Blender down)"),
               ("EMBEDDED", "Embedded (advanced)", "Import dposer and torch into Blender's own Python (only when "
                "they are installed there)")],
        default="SUBPROCESS")
    python_path: StringProperty(
        name="Python", subtype="FILE_PATH", default="",
        description="Python interpreter (or a venv/conda folder) with dposer and torch installed; empty = this "
                    "process's own Python")
    device: EnumProperty(
        name="Device", items=[("AUTO", "Auto", "CUDA when available, else CPU"), ("CPU", "CPU", ""),
                              ("CUDA", "CUDA", "")], default="AUTO")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH", default="",
                               description="A dposer .safetensors prior or an official DPoser-X .ckpt; empty = "
                                           "the bundled default")
    threads: IntProperty(name="CPU threads", default=0, min=0, max=64, description="0 = the backend's choice")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode")
        if self.backend_mode == "SUBPROCESS":
            layout.prop(self, "python_path")
        elif not EmbeddedBackend.available():
            layout.label(text="'dposer' is not importable in Blender's Python", icon="ERROR")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "threads")
        layout.prop(self, "checkpoint")
        row = layout.row()
        row.label(text=f"Backend: {status_text()}")
        row.operator("dposer.test_backend", icon="PLAY")


CLASSES = (DPoserPreferences,)


def register() -> None:
    from . import _register_class

    for cls in CLASSES:
        _register_class(cls)
    atexit.register(shutdown_backend)


def unregister() -> None:
    shutdown_backend()
    atexit.unregister(shutdown_backend)
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
