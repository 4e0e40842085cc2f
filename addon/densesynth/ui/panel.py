"""The artist-facing panel (3D viewport sidebar, 'DenseSynth' tab) and the add-on's registration.

The panel is a view over one farm config and the farm's own code: Preview and Export build
the sample through `pipeline.SampleRenderer` (session.py), Render Dataset runs the farm's job
in a background process (render_operators.py). Modules: properties.py (the state),
operators.py, render_operators.py, prefs.py (asset folders), state.py (state <-> config).
"""
from __future__ import annotations

from pathlib import Path

import bpy

from . import operators, prefs, render_operators, session, state, truth
from .properties import DenseSynthSettings


class DENSESYNTH_PT_panel(bpy.types.Panel):
    bl_label = "DenseSynth"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DenseSynth"

    def draw(self, context):
        settings = context.scene.densesynth
        layout = self.layout
        row = layout.row(align=True)
        row.prop(settings, "config_path")
        row = layout.row(align=True)
        row.operator(operators.DENSESYNTH_OT_load_config.bl_idname, icon="FILEBROWSER")
        row.operator(operators.DENSESYNTH_OT_save_config.bl_idname, icon="FILE_TICK")

        box = layout.box()
        box.prop(settings, "body")
        row = box.row(align=True)
        row.operator(operators.DENSESYNTH_OT_random_shape.bl_idname, icon="MOD_ARMATURE")
        row.prop(settings, "shape_draw", text="Draw")
        box.prop(settings, "shape_sliders")
        if settings.shape_sliders:
            column = box.column(align=True)
            if settings.body.startswith("SMPL"):
                column.prop(settings, "shape_betas")
            else:
                for name in state.PHENOTYPE_SLIDERS:
                    column.prop(settings, f"shape_{name}", slider=True)
        row = box.row(align=True)
        row.prop(settings, "seed")
        row.operator(operators.DENSESYNTH_OT_new_seed.bl_idname, icon="FILE_REFRESH")
        box.label(text="Lock on New Seed:")
        grid = box.grid_flow(columns=3, even_columns=True, align=True)
        for group, label, _ in state.LOCK_GROUPS:
            grid.prop(settings, f"lock_{group}", text=label, toggle=True)
        row = box.row(align=True)
        row.prop(settings, "sample_index")
        row.prop(settings, "render_preview")
        box.operator(operators.DENSESYNTH_OT_preview_sample.bl_idname, icon="RESTRICT_VIEW_OFF")
        spec = session.current_spec()
        if spec is not None:
            column = box.column(align=True)
            column.label(text=f"Spec {spec['stem']} (text '{session.SPEC_TEXT}'):")
            for line in state.spec_summary(spec):
                column.label(text=line)

        box = layout.box()
        box.label(text="Motion", icon="ARMATURE_DATA")
        row = box.row(align=True)
        row.operator(operators.DENSESYNTH_OT_load_motion.bl_idname, icon="IMPORT")
        row.operator(operators.DENSESYNTH_OT_clear_motion.bl_idname, icon="X")
        if settings.motion_clip:
            box.label(text=f"{Path(settings.motion_clip).name}: {settings.motion_frames} frames")
            row = box.row(align=True)
            row.prop(settings, "motion_start")
            row.prop(settings, "motion_end")
            row.prop(settings, "motion_mirror")
        else:
            box.label(text="Motion drawn from the config's clips")

        box = layout.box()
        box.label(text="Ground Truth", icon="IMAGE_DATA")
        last = session.current_truth()
        if last is None:
            box.label(text="Preview with Render Image to see the passes")
        else:
            grid = box.grid_flow(columns=3, even_columns=True, align=True)
            for view in last.views():
                button = grid.operator(operators.DENSESYNTH_OT_show_view.bl_idname, text=truth.VIEW_LABELS[view],
                                       depress=settings.view == view)
                button.view = view
            box.prop(settings, "show_keypoints")

        box = layout.box()
        box.prop(settings, "output_dir")
        box.operator(operators.DENSESYNTH_OT_export_sample.bl_idname, icon="EXPORT")
        row = box.row(align=True)
        row.operator(operators.DENSESYNTH_OT_export_range.bl_idname, icon="SEQUENCE")
        if not settings.motion_clip:
            row.prop(settings, "range_count")
        if settings.export_status:
            box.label(text=f"Export: {settings.export_status}")
        row = box.row(align=True)
        row.prop(settings, "num_samples")
        row = box.row(align=True)
        row.operator(render_operators.DENSESYNTH_OT_render_dataset.bl_idname, icon="RENDER_ANIMATION")
        row.operator(render_operators.DENSESYNTH_OT_cancel_render.bl_idname, icon="CANCEL")
        if settings.job_status:
            box.label(text=f"Render: {settings.job_status}")

        layout.operator(operators.DENSESYNTH_OT_check_assets.bl_idname, icon="CHECKMARK")
        if settings.message:
            layout.label(text=settings.message, icon="ERROR")


CLASSES = (DenseSynthSettings, prefs.DenseSynthPreferences, *operators.CLASSES, *render_operators.CLASSES,
           DENSESYNTH_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.densesynth = bpy.props.PointerProperty(type=DenseSynthSettings)


def unregister() -> None:
    del bpy.types.Scene.densesynth
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
