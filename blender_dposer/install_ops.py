# SPDX-License-Identifier: GPL-3.0-or-later
"""``dposer.install_backend``: PyTorch for the add-on, one button (preferences, and the panel while it is missing).

Runs :class:`.installer.Installer` (pip with Blender's own Python into the add-on's user directory). ``invoke``
(the button) is modal: a timer drains pip's lines, the status bar shows its progress, Esc cancels (pip is killed,
the partial folder removed). ``execute`` (scripts, headless tests) blocks until pip ends. Either way the outcome
is one report: installed (then the backend restarts with the new PyTorch on the next job), failed with pip's
reason, or cancelled; the add-on stays usable and a previous install stays as it was. Needs bpy."""
from __future__ import annotations

import importlib.util
import os
import sys

import bpy

from . import installer
from .session import prefs, shutdown_backend, torch_dir, user_dir


class _Active:
    installer: installer.Installer | None = None  # the running install (one at a time)
    last_message = ""  # the outcome of the last install in this session, shown in the preferences


def running() -> installer.Installer | None:
    """The install in progress, or None."""
    inst = _Active.installer
    return inst if inst is not None and inst.state == "running" else None


def backend_missing(context) -> bool:
    """True when a job with the current preferences would lack torch: Blender's own Python is used and neither
    the add-on's folder nor Blender's Python has it (checked without importing torch)."""
    p = prefs(context)
    if p.backend_mode == "SUBPROCESS" and p.python_path.strip():
        return False  # the user's own Python: its errors say what it lacks
    return torch_dir() is None and importlib.util.find_spec("torch") is None


def draw_install_state(layout, context) -> None:
    """State and button, for the preferences and the panel."""
    inst = running()
    if inst is not None:
        if hasattr(layout, "progress"):
            layout.progress(factor=inst.progress, type="BAR", text=f"{inst.progress * 100:.0f}%")
        layout.label(text=inst.status or "Starting pip...", icon="TIME")
        layout.label(text="Esc cancels")
        return
    info = installer.install_info(user_dir())
    if info is not None:
        layout.label(text=f"PyTorch installed ({info.get('spec', '?')}, {info.get('installed', '?')})",
                     icon="CHECKMARK")
        layout.operator("dposer.install_backend", text="Reinstall PyTorch", icon="FILE_REFRESH")
    elif importlib.util.find_spec("torch") is not None:
        layout.label(text="torch is installed in Blender's Python itself (not by DPoser)", icon="CHECKMARK")
    else:
        layout.label(text="PyTorch is not installed: DPoser needs it once (CPU build: ~200 MB download, "
                          "~900 MB on disk)", icon="ERROR")
        layout.operator("dposer.install_backend", icon="IMPORT")
    if _Active.last_message:
        layout.label(text=_Active.last_message, icon="INFO")
    log = os.path.join(user_dir(), installer.LOG_NAME)
    if os.path.isfile(log):
        layout.label(text=f"Log: {log}")


def _status(context, text: str | None, factor: float | None = None) -> None:
    """Status-bar text and the cursor progress; redraw every area (the preferences window included)."""
    wm = context.window_manager
    ws = getattr(context, "workspace", None)
    if ws is not None:
        try:
            ws.status_text_set(text)
        except (AttributeError, RuntimeError, TypeError):
            pass
    try:
        if factor is None:
            wm.progress_end()
        else:
            wm.progress_update(int(factor * 100))
    except (AttributeError, RuntimeError):
        pass
    for window in getattr(wm, "windows", []):
        screen = window.screen
        for area in (screen.areas if screen is not None else []):
            area.tag_redraw()


class DPOSER_OT_install_backend(bpy.types.Operator):
    """Download and install PyTorch for DPoser with Blender's own Python into the add-on's folder (no admin
    rights; CPU or CUDA build to match this machine). Esc cancels"""

    bl_idname = "dposer.install_backend"
    bl_label = "Install Backend"
    bl_options = {"REGISTER"}

    _timer = None

    @classmethod
    def poll(cls, context):
        if running() is not None:
            cls.poll_message_set("PyTorch is being installed (Esc cancels)")
            return False
        return True

    def _begin(self, context) -> bool:
        """Start pip; False (with a report) when it cannot start."""
        if not bpy.app.online_access:
            self.report({"ERROR"}, "DPoser: Blender's online access is off: enable Edit > Preferences > System > "
                                   "Network > Allow Online Access, then click Install Backend again (it downloads "
                                   "PyTorch)")
            return False
        p = prefs(context)
        try:
            plan = installer.make_plan(sys.executable, user_dir(create=True), p.torch_spec, p.torch_build,
                                       p.pip_index_url, p.pip_args)
            _Active.installer = installer.Installer(plan).start()
        except (installer.InstallError, ValueError, OSError) as e:
            _Active.installer = None
            self.report({"ERROR"}, f"DPoser: PyTorch install: {e}")
            return False
        print(f"DPoser: installing {plan.spec} from {plan.where} into {plan.target} (log: {plan.log_path})")
        return True

    def _outcome(self, context) -> set:
        inst, _Active.installer = _Active.installer, None
        _Active.last_message = inst.message
        _status(context, None)
        if inst.state == "done":
            shutdown_backend()  # the next job starts a backend that finds the new PyTorch
            self.report({"INFO"}, f"DPoser: {inst.message}; click Test Backend")
            return {"FINISHED"}
        self.report({"ERROR"} if inst.state == "failed" else {"WARNING"}, f"DPoser: {inst.message}")
        return {"CANCELLED"}

    def execute(self, context):
        if not self._begin(context):
            return {"CANCELLED"}
        try:
            _Active.installer.run(on_line=print)
        except BaseException:
            _Active.installer.cancel("interrupted")
            _Active.installer = None
            raise
        return self._outcome(context)

    def invoke(self, context, event):
        if not self._begin(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        _status(context, "DPoser: starting pip... (Esc to cancel)", 0.0)
        return {"RUNNING_MODAL"}

    def _end_timer(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def modal(self, context, event):
        inst = _Active.installer
        if inst is None:  # stopped meanwhile (the add-on was disabled)
            self._end_timer(context)
            _status(context, None)
            return {"CANCELLED"}
        if event.type == "ESC":
            inst.cancel()
            self._end_timer(context)
            return self._outcome(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for line in inst.poll():
            print(line)
        if inst.state != "running":
            self._end_timer(context)
            return self._outcome(context)
        _status(context, f"DPoser: {inst.status or 'pip is starting...'} ({inst.progress * 100:.0f}%, Esc to "
                         "cancel)", inst.progress)
        return {"RUNNING_MODAL"}

    def cancel(self, context):  # Blender quits or the window closes while running
        if _Active.installer is not None:
            _Active.installer.cancel("stopped because Blender closed the operator")
            _Active.installer = None
        self._end_timer(context)


CLASSES = (DPOSER_OT_install_backend,)



def unregister() -> None:
    if _Active.installer is not None:
        _Active.installer.cancel("stopped: the add-on was disabled")
        _Active.installer = None
