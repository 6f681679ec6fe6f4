# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's preferences (backend mode, interpreter, device, checkpoint, PyTorch install options) and their
page in Edit > Preferences > Add-ons. Needs bpy. The backend session that reads them is :mod:`.session`."""
from __future__ import annotations

import atexit

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import install_ops, installer
from .session import ADDON, python_problem, resolve_python, shutdown_backend, status_text


class DPoserPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    backend_mode: EnumProperty(
        name="Backend",
        items=[("SUBPROCESS", "Separate Python process", "Run the backend as a separate process of Blender's own "
                "Python (or the Python below): a crash does not take Blender down"),
               ("EMBEDDED", "Embedded (advanced)", "Import dposer and torch into Blender's own process")],
        default="SUBPROCESS")
    python_path: StringProperty(
        name="Python", subtype="FILE_PATH", default="",
        description="Advanced: an existing Python interpreter (or venv/conda folder) with torch installed; empty = "
                    "Blender's own Python with the PyTorch that Install Backend puts in the add-on's folder")
    device: EnumProperty(
        name="Device", items=[("AUTO", "Auto", "CUDA when available, else CPU"), ("CPU", "CPU", ""),
                              ("CUDA", "CUDA", "")], default="AUTO")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH", default="",
                               description="A dposer .safetensors prior or an official DPoser-X .ckpt; empty = "
                                           "the bundled default")
    threads: IntProperty(name="CPU threads", default=0, min=0, max=64, description="0 = the backend's choice")
    torch_build: EnumProperty(
        name="PyTorch build",
        items=[("AUTO", "Auto", "CUDA build when an NVIDIA driver is found, else the CPU build (macOS: PyPI's)"),
               ("CPU", "CPU", "PyTorch's CPU-only build (about 200 MB download)"),
               ("CUDA", "CUDA (NVIDIA)", "PyTorch's CUDA build (several GB download)"),
               ("PIP", "As pip is configured", "No index option: pip's own configuration (company mirror, "
                "offline wheel folder)")],
        default="AUTO")
    torch_spec: StringProperty(name="PyTorch version", default="",
                               description=f"pip requirement for torch; empty = {installer.TORCH_SPEC} (or "
                                           f"${installer.ENV_SPEC})")
    pip_index_url: StringProperty(name="Index URL", default="",
                                  description="pip --index-url for torch; empty = chosen by the build above (or "
                                              f"${installer.ENV_INDEX}; 'config' = pip's configuration)")
    pip_args: StringProperty(name="pip options", default="",
                             description="More pip options, e.g. --proxy http://user:password@host:3128")

    def draw(self, context):
        layout = self.layout
        box = layout.box()
        box.label(text="PyTorch for DPoser", icon="SCRIPTPLUGINS")
        install_ops.draw_install_state(box, context)
        col = box.column(align=True)
        col.prop(self, "torch_build")
        col.prop(self, "torch_spec")
        col.prop(self, "pip_index_url")
        col.prop(self, "pip_args")

        layout.prop(self, "backend_mode")
        if self.backend_mode == "SUBPROCESS":
            layout.prop(self, "python_path", text="Existing Python (advanced)")
            problem = python_problem(self.python_path)
            if problem:
                layout.label(text=problem, icon="ERROR")
            elif self.python_path.strip():
                layout.label(text=f"Uses {resolve_python(self.python_path)} (it needs torch; the installed "
                                  "PyTorch above is not used)", icon="INFO")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "threads")
        layout.prop(self, "checkpoint")
        row = layout.row()
        row.label(text=f"Backend: {status_text()}")
        row.operator("dposer.test_backend", icon="PLAY")


CLASSES = (DPoserPreferences,)


def register() -> None:
    atexit.register(shutdown_backend)


def unregister() -> None:
    shutdown_backend()
    atexit.unregister(shutdown_backend)
