"""The artist-facing panel (3D viewport sidebar, 'DenseSynth' tab).

Two actions: preview one sample of a config in a new scene of the open file (to look at
what the randomisation does, through the sample's own camera), and render a dataset in a
background Blender process so the artist's session stays responsive. Both use the same
config file and the same code as the farm.
"""

import subprocess
from pathlib import Path

import bpy

PACKAGE_DIR = Path(__file__).resolve().parents[1]


class DenseSynthSettings(bpy.types.PropertyGroup):
    config_path: bpy.props.StringProperty(name="Config", subtype="FILE_PATH",
                                          description="YAML config; empty = embedded defaults")
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//densesynth_out")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    sample_index: bpy.props.IntProperty(name="Sample", default=0, min=0)
    num_samples: bpy.props.IntProperty(name="Samples", default=8, min=1)


def _load_config(settings: DenseSynthSettings):
    from ..config import config_hash, load_config

    path = bpy.path.abspath(settings.config_path) if settings.config_path else None
    config = load_config(Path(path) if path else None)
    return config, config_hash(config)


class DENSESYNTH_OT_preview_sample(bpy.types.Operator):
    """Build one sample (person, camera, lights) in a new scene"""

    bl_idname = "densesynth.preview_sample"
    bl_label = "Preview Sample"

    def execute(self, context):
        from ..errors import UserError
        from ..pipeline import SpecScene
        from ..spec.sample_spec import sample_stem

        settings = context.scene.densesynth
        scene = bpy.data.scenes.new(f"DenseSynth {sample_stem(settings.sample_index)}")
        try:
            config, config_id = _load_config(settings)
            # The same scene building as the farm's renderer: any body kind, the sample's clothes,
            # camera and lights (steered by its backdrop), from the same spec.
            built = SpecScene(config, scene=scene)
            spec = built.draw_spec(config_id, settings.seed, settings.sample_index)
            built.build(spec)
        except UserError as exc:
            bpy.data.scenes.remove(scene)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        scene.densesynth.config_path = settings.config_path
        if context.window is not None:  # no window in background mode
            context.window.scene = scene
        self.report({"INFO"}, f"sample {spec['stem']}: {spec['persons'][0]['motion']['clip']}")
        return {"FINISHED"}


class DENSESYNTH_OT_render_dataset(bpy.types.Operator):
    """Render a dataset in a background Blender process"""

    bl_idname = "densesynth.render_dataset"
    bl_label = "Render Dataset"

    def execute(self, context):
        settings = context.scene.densesynth
        out = Path(bpy.path.abspath(settings.output_dir))
        args = ["--out", str(out), "--num-samples", str(settings.num_samples), "--seed", str(settings.seed)]
        if settings.config_path:
            args += ["--config", bpy.path.abspath(settings.config_path)]
        command = [bpy.app.binary_path, "-b", "--factory-startup", "-P", str(PACKAGE_DIR / "blender_job.py"), "--", *args]
        subprocess.Popen(command)
        self.report({"INFO"}, f"rendering {settings.num_samples} samples into {out}")
        return {"FINISHED"}


class DENSESYNTH_PT_panel(bpy.types.Panel):
    bl_label = "DenseSynth"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DenseSynth"

    def draw(self, context):
        settings = context.scene.densesynth
        layout = self.layout
        layout.prop(settings, "config_path")
        layout.prop(settings, "seed")
        row = layout.row()
        row.prop(settings, "sample_index")
        row.operator(DENSESYNTH_OT_preview_sample.bl_idname)
        layout.separator()
        layout.prop(settings, "output_dir")
        layout.prop(settings, "num_samples")
        layout.operator(DENSESYNTH_OT_render_dataset.bl_idname)


CLASSES = (DenseSynthSettings, DENSESYNTH_OT_preview_sample, DENSESYNTH_OT_render_dataset, DENSESYNTH_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.densesynth = bpy.props.PointerProperty(type=DenseSynthSettings)


def unregister() -> None:
    del bpy.types.Scene.densesynth
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
