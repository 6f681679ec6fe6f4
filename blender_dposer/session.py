# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend session: one backend per Blender session, started lazily, restarted when the preferences (or the
installed PyTorch) change or the process died, shut down in ``unregister()`` and at exit; and reading the
add-on's preferences (:mod:`.preferences` draws them). Needs bpy. Preferences are never read in ``register()``
(blender.md 6.3).

Where the backend's code comes from, with default preferences: ``dposer`` from the extension itself
(``<extension>/backend/dposer``, put there by build_addon.py) and PyTorch from the add-on's user directory
(:mod:`.installer`, the Install Backend button). The subprocess backend gets both on its PYTHONPATH (bundled
dposer first); the embedded backend puts the bundled dposer first on Blender's ``sys.path`` and the PyTorch folder
last (Blender's own packages, NumPy above all, keep precedence). An existing Python set in the preferences gets
the bundled dposer but not the PyTorch folder (that folder is built for Blender's Python)."""
from __future__ import annotations

import os
import re
import sys
from types import SimpleNamespace

import bpy

from . import installer
from .backend_client import BackendError
from .embedded_backend import EmbeddedBackend, make_backend
from .bundled import bundled_backend

ADDON = __package__  # "blender_dposer", or "bl_ext.<repo>.blender_dposer" when installed as an extension
VENV_PYTHONS = (("bin", "python3"), ("bin", "python"), ("Scripts", "python.exe"), ("python.exe",))

DEFAULTS = SimpleNamespace(backend_mode="SUBPROCESS", python_path="", device="AUTO", checkpoint="", threads=0,
                           startup_timeout=120, torch_build="AUTO", torch_spec="", pip_index_url="", pip_args="")


def prefs(context=None):
    """The add-on's preferences, or the defaults when the add-on has no preferences entry (e.g. its register()
    was called directly instead of enabling it)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None and addon.preferences is not None else DEFAULTS


def user_dir(create: bool = False) -> str:
    """The add-on's writable folder: ``bpy.utils.extension_path_user`` for the extension (Blender 4.2+); for a
    legacy install from a scripts folder, ``<Blender config>/dposer``."""
    try:
        return bpy.utils.extension_path_user(ADDON, create=create)
    except (ValueError, AttributeError):  # not an extension ("does not name an extension")
        d = os.path.join(bpy.utils.user_resource("CONFIG"), "dposer")
        if create:
            os.makedirs(d, exist_ok=True)
        return d


def torch_dir() -> str | None:
    """The PyTorch folder that Install Backend made for this Python, or None."""
    return installer.installed_dir(user_dir())


def resolve_python(path: str) -> str:
    """Interpreter for the subprocess backend: empty -> this process's ``sys.executable`` (Blender's own Python);
    ``~`` and Blender's ``//`` expanded; a venv/conda folder -> its ``bin/python`` (``Scripts/python.exe`` /
    ``python.exe`` on Windows); else the path itself."""
    path = path.strip()
    if not path:
        return sys.executable
    path = os.path.expanduser(bpy.path.abspath(path))
    if os.path.isdir(path):
        for rel in VENV_PYTHONS:
            cand = os.path.join(path, *rel)
            if os.path.isfile(cand):
                return cand
    return path


def python_problem(path: str) -> str | None:
    """What is wrong with the interpreter setting ``path`` (None: fine, or empty = Blender's own Python)."""
    if not path.strip():
        return None
    python = resolve_python(path)
    if os.path.isdir(python):
        return (f"'{path.strip()}' is a folder without bin/python or Scripts\\python.exe: give a Python "
                "interpreter or a venv/conda folder")
    if not os.path.isfile(python):
        return f"backend Python interpreter not found: {python!r}"
    if not os.access(python, os.X_OK):
        return f"{python!r} is not an executable program"
    return None


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def backend_paths(mode: str, python: str | None) -> tuple:
    """Folders the backend imports from before its own site-packages: the bundled dposer, and the installed
    PyTorch when the backend runs in Blender's own Python (embedded, or a subprocess of ``sys.executable``)."""
    paths = [d for d in (bundled_backend(),) if d]
    torch = torch_dir()
    if torch and (mode == "embedded" or _same_file(python or "", sys.executable)):
        paths.append(torch)
    return tuple(paths)


def backend_config(p) -> tuple:
    mode = p.backend_mode.lower()
    device = p.device.lower()
    checkpoint = bpy.path.abspath(p.checkpoint) if p.checkpoint.strip() else None
    threads = int(p.threads) or None
    python = resolve_python(p.python_path) if mode == "subprocess" else None
    return mode, python, device, checkpoint, threads, backend_paths(mode, python)


def _embedded_sys_path(paths: tuple) -> None:
    """Bundled dposer first on sys.path, the PyTorch folder last (Blender's NumPy etc. keep precedence)."""
    import importlib

    for d in paths:
        if d in sys.path:
            continue
        if d == bundled_backend():
            sys.path.insert(0, d)
        else:
            sys.path.append(d)
    importlib.invalidate_caches()


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
        mode, python, device, checkpoint, threads, paths = cfg
        if mode == "subprocess":
            problem = python_problem(prefs(context).python_path) or python_problem(python)
            if problem:
                raise BackendError("startup_failed", f"{problem} (Preferences > Add-ons > DPoser > Python: a Python "
                                   "with torch installed, or empty for Blender's own Python with Install Backend)")
            b = make_backend("subprocess", python=python, checkpoint=checkpoint, device=device, threads=threads,
                             startup_timeout=DEFAULTS.startup_timeout, backend_path=os.pathsep.join(paths) or None)
        else:
            _embedded_sys_path(paths)
            if not EmbeddedBackend.available():
                raise BackendError("startup_failed", "embedded backend: 'dposer' is not importable in Blender's "
                                   "Python (the extension's bundled copy is missing: reinstall the extension zip)")
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


INSTALL_HINT = "click Install Backend (Edit > Preferences > Add-ons > DPoser, or the DPoser panel)"


def next_step(message: str, p=None) -> str | None:
    """What to click after a backend error with this message, or None."""
    m = re.search(r"No module named '([\w.]+)'", message)
    if not m:
        return None
    module = m.group(1).split(".")[0]
    p = p or prefs()
    own_python = p.backend_mode == "EMBEDDED" or not p.python_path.strip()
    if module == "dposer":
        return ("the extension's bundled backend is missing: reinstall the extension zip" if own_python else
                "clear Preferences > Python to use Blender's own Python, or install dposer into that Python")
    if module in ("torch", "safetensors", "roma"):
        return INSTALL_HINT if own_python else (f"install {module} into that Python, or clear Preferences > Python "
                                                "and " + INSTALL_HINT)
    return None


def error_summary(e: BaseException) -> str:
    """One line for self.report (the full text goes to the console), with what to click next when known."""
    msg = e.message if isinstance(e, BackendError) else str(e)
    first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
    hint = next_step(msg)
    return f"{first} -> {hint}" if hint else first
