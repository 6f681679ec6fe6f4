# SPDX-License-Identifier: GPL-3.0-or-later
"""The "DPoser" tab of the 3D viewport's sidebar (N panel): add armature; the active rig's preset and calibration;
complete (with the hypothesis preview), refine, random pose, clean, fill gap, variations; backend status; the Install
Backend button while PyTorch is missing. Needs bpy."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, PointerProperty, StringProperty

from . import install_ops, preview
from . import keyframes as kf
from . import params as P
from .session import prefs, status_text
from .rig_profile import PRESET_ITEMS, profile_text


class DPoserSettings(bpy.types.PropertyGroup):
    """Panel inputs of the DPoser operators (the operators keep no state)."""

    parts: StringProperty(name="Parts", default="left_hand,right_hand",
                          description="Comma-separated parts, groups or SMPL-X joints to fill in")
    use_range: BoolProperty(name="Scene frame range", default=False,
                            description="Complete every frame of the scene's range instead of the current frame")
    hypotheses: P.bpy_prop(P.HYPOTHESES, "Hypotheses", hard=True)
    seed: P.bpy_prop(P.SEED, "Seed", hard=True)
    refine_strength: P.bpy_prop(P.REFINE_STRENGTH, "Strength", hard=True)
    preview: P.bpy_prop(P.COMPLETE_PREVIEW, "Preview hypotheses")
    preset: EnumProperty(name="Bone map", items=PRESET_ITEMS, description="Bone-map preset used by Calibrate Rest")
    clean_strength: P.bpy_prop(P.CLEAN_STRENGTH, "Strength", hard=True)
    clean_parts: StringProperty(name="Parts", default="body", description="Parts that Clean may change")
    lock: StringProperty(name="Lock", default="",
                         description="Bones or SMPL-X parts/joints that Clean and Variations keep exactly")
    lock_selected: BoolProperty(name="Lock selected bones", default=True,
                                description="In Pose Mode, Clean and Variations keep the selected bones exactly")
    vary_count: P.bpy_prop(P.VARY_COUNT, "Count", hard=True)
    vary_strength: P.bpy_prop(P.VARY_STRENGTH, "Strength", hard=True)
    vary_start_offset: P.bpy_prop(P.VARY_START_OFFSET, "Start Offset", hard=True)
    vary_mode: EnumProperty(name="As", items=[("RIGS", "Armatures", "A crowd of copies in a grid"),
                                               ("ACTIONS", "Actions", "New actions on this armature")],
                            default="RIGS")


def draw_rig(layout, settings, obj):
    """The active armature's preset and calibration state, and the calibration buttons."""
    box = layout.box()
    line1, line2 = profile_text(obj)
    box.label(text=line1, icon="ARMATURE_DATA")
    box.label(text=line2, icon="CHECKMARK" if line2.startswith("Calibrated") else "INFO")
    box.prop(settings, "preset")
    row = box.row(align=True)
    op = row.operator("dposer.show_zero_pose", text="Show Zero Pose")
    op.source = "CALIBRATION" if obj.get("dposer_calibration") else "AUTO"
    op = row.operator("dposer.calibrate_rest", text="Calibrate Rest", icon="POSE_HLT")
    op.method = "POSE"
    op.preset = settings.preset
    box.operator("dposer.take_to_smplx", icon="OUTLINER_OB_ARMATURE")


def _scene_range(op, settings, scene) -> None:
    """Give a job operator the scene's frame range when the panel's 'use range' is on (else: the current frame)."""
    if settings.use_range:
        op.frame_start = scene.frame_start
        op.frame_end = scene.frame_end


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
        if install_ops.backend_missing(context) or install_ops.running() is not None:
            install_ops.draw_install_state(layout.box(), context)
        layout.operator("dposer.add_armature", icon="ARMATURE_DATA")
        obj = context.active_object
        if obj is not None and obj.type == "ARMATURE":
            draw_rig(layout, settings, obj)

        box = layout.box()
        box.label(text="Complete", icon="HAND")
        box.prop(settings, "parts")
        row = box.row()
        row.prop(settings, "hypotheses")
        row.prop(settings, "seed")
        box.prop(settings, "use_range")
        box.prop(settings, "preview")
        op = box.operator("dposer.complete", icon="PLAY")
        op.parts = settings.parts
        op.hypotheses = settings.hypotheses
        op.seed = settings.seed
        op.preview = settings.preview
        _scene_range(op, settings, scene)
        state = preview.status(obj) if obj is not None else None
        if state is not None:
            col = box.column(align=True)
            col.label(text=state, icon="HIDE_OFF")
            row = col.row(align=True)
            row.operator("dposer.preview_previous", text="", icon="TRIA_LEFT")
            row.operator("dposer.preview_next", text="", icon="TRIA_RIGHT")
            row.operator("dposer.preview_accept", icon="CHECKMARK")
            row.operator("dposer.preview_cancel", icon="X")
            # a range's hypotheses are whole motions: play the timeline and switch between them as it plays
            col.operator("screen.animation_play", text="Play / Pause", icon="PLAY")

        box.label(text="Refine / Random", icon="MOD_SMOOTH")
        box.prop(settings, "refine_strength")
        row = box.row(align=True)
        op = row.operator("dposer.refine")
        op.strength = settings.refine_strength
        op.seed = settings.seed
        _scene_range(op, settings, scene)
        op = row.operator("dposer.random_pose")
        op.seed = settings.seed

        box.label(text="Clean (scene range)", icon="FCURVE")
        row = box.row()
        row.prop(settings, "clean_strength")
        row.prop(settings, "clean_parts")
        op = box.operator("dposer.clean", icon="BRUSH_DATA")
        op.strength = settings.clean_strength
        op.parts = settings.clean_parts
        op.lock = settings.lock
        op.lock_selected = settings.lock_selected
        op.seed = settings.seed

        box.label(text="Fill Gap (preview range)", icon="KEYTYPE_BREAKDOWN_VEC")
        if scene.use_preview_range:
            box.label(text=f"Frames {scene.frame_preview_start}-{scene.frame_preview_end}: the selected bones in Pose "
                           "Mode, else the whole body")
        else:
            box.label(text="Set the preview range over the gap (Ctrl Alt P)", icon="INFO")
        box.operator("dposer.fill_gap", icon="IPO_BEZIER")

        animated = obj is not None and obj.type == "ARMATURE" and kf.action_frame_range(obj) is not None
        box.label(text="Variations (the action's motion)" if animated else "Variations (current frame)",
                  icon="COMMUNITY")
        row = box.row()
        row.prop(settings, "vary_count")
        row.prop(settings, "vary_strength")
        box.prop(settings, "vary_mode", expand=True)
        if animated:
            box.prop(settings, "vary_start_offset")
        op = box.operator("dposer.vary", icon="DUPLICATE")
        op.count = settings.vary_count
        op.strength = settings.vary_strength
        op.mode = settings.vary_mode
        op.start_offset = settings.vary_start_offset
        op.lock = settings.lock
        op.lock_selected = settings.lock_selected
        op.seed = settings.seed
        box.prop(settings, "lock")
        box.prop(settings, "lock_selected")
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
    bpy.types.Scene.dposer_settings = PointerProperty(type=DPoserSettings)
    bpy.types.WindowManager.dposer_progress = FloatProperty(default=-1.0, options={"SKIP_SAVE"})
    bpy.types.WindowManager.dposer_status = StringProperty(default="", options={"SKIP_SAVE"})


def unregister() -> None:
    for owner, attr in ((bpy.types.WindowManager, "dposer_status"), (bpy.types.WindowManager, "dposer_progress"),
                        (bpy.types.Scene, "dposer_settings")):
        if hasattr(owner, attr):
            delattr(owner, attr)
