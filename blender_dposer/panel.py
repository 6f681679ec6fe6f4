# SPDX-License-Identifier: GPL-3.0-or-later
"""The "DPoser" tab of the 3D viewport's sidebar (N panel): add armature, complete, refine, random pose, backend status. Needs bpy."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .preferences import prefs, status_text


class DPoserSettings(bpy.types.PropertyGroup):
    """Panel inputs of ``dposer.complete``, ``dposer.refine`` and ``dposer.random_pose`` (the operators keep no
    state)."""

    parts: StringProperty(name="Parts", default="left_hand,right_hand",
                          description="Comma-separated parts, groups or SMPL-X joints to fill in")
    use_range: BoolProperty(name="Scene frame range", default=False,
                            description="Complete every frame of the scene's range instead of the current frame")
    hypotheses: IntProperty(name="Hypotheses", default=1, min=1, max=32)
    seed: IntProperty(name="Seed", default=0, min=0)
    refine_strength: FloatProperty(name="Strength", default=0.3, min=0.0, max=1.0,
                                   description="How far Refine may move the pose towards the prior")


class DPOSER_PT_main(bpy.types.Panel):
    bl_label = "DPoser"
    bl_idname = "DPOSER_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DPoser"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.dposer_settings
        layout.operator("dposer.add_armature", icon="ARMATURE_DATA")

        box = layout.box()
        box.label(text="Complete", icon="HAND")
        box.prop(settings, "parts")
        row = box.row()
        row.prop(settings, "hypotheses")
        row.prop(settings, "seed")
        box.prop(settings, "use_range")
        op = box.operator("dposer.complete", icon="PLAY")
        op.parts = settings.parts
        op.hypotheses = settings.hypotheses
        op.seed = settings.seed
        if settings.use_range:
            op.frame_start = scene.frame_start
            op.frame_end = scene.frame_end

        box.label(text="Refine / Random", icon="MOD_SMOOTH")
        box.prop(settings, "refine_strength")
        row = box.row(align=True)
        op = row.operator("dposer.refine")
        op.strength = settings.refine_strength
        op.seed = settings.seed
        if settings.use_range:
            op.frame_start = scene.frame_start
            op.frame_end = scene.frame_end
        op = row.operator("dposer.random_pose")
        op.seed = settings.seed
        wm = context.window_manager
        if wm.dposer_progress >= 0.0:
            if hasattr(box, "progress"):
                box.progress(factor=wm.dposer_progress, type="BAR", text=wm.dposer_status)
            else:
                box.label(text=wm.dposer_status)

        box = layout.box()
        p = prefs(context)
        box.label(text=f"Backend: {'embedded' if p.backend_mode == 'EMBEDDED' else 'subprocess'}, "
                       f"{p.device.lower()}", icon="PREFERENCES")
        box.label(text=status_text())
        box.operator("dposer.test_backend")


CLASSES = (DPoserSettings, DPOSER_PT_main)


def register() -> None:
    from . import _register_class

    for cls in CLASSES:
        _register_class(cls)
    bpy.types.Scene.dposer_settings = PointerProperty(type=DPoserSettings)
    bpy.types.WindowManager.dposer_progress = FloatProperty(default=-1.0, options={"SKIP_SAVE"})
    bpy.types.WindowManager.dposer_status = StringProperty(default="", options={"SKIP_SAVE"})


def unregister() -> None:
    for owner, attr in ((bpy.types.WindowManager, "dposer_status"), (bpy.types.WindowManager, "dposer_progress"),
                        (bpy.types.Scene, "dposer_settings")):
        if hasattr(owner, attr):
            delattr(owner, attr)
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
