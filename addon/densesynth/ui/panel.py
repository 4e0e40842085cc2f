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
        from ..appearance.clothing import clothing_texture, uv_part_map
        from ..bodies.default_body import DefaultBody
        from ..errors import UserError
        from ..render.blender_scene import BlenderScene, PersonMesh
        from ..scene.camera import camera_from_spec, fit_camera
        from ..scene.person import pose_person
        from ..spec.sample_spec import draw_spec

        settings = context.scene.densesynth
        try:
            config, config_id = _load_config(settings)
            body = DefaultBody.load()
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        bodies = {"anny": body}
        spec = draw_spec(config, config_id, settings.seed, settings.sample_index,
                         lambda s: fit_camera(pose_person(s["persons"][0], bodies).vertices, s["camera"],
                                              s["render"]["width"], s["render"]["height"]))
        scene = bpy.data.scenes.new(f"DenseSynth {spec['stem']}")
        model = body.model
        size = config["appearance"]["texture_size"]
        built = BlenderScene(size, config["render"]["device"], config["render"]["threads"], scene=scene)
        meshes = {"anny": PersonMesh(model.faces, body.corner_iuv, model.corner_texture_uv, model.num_vertices)}
        part_map = uv_part_map(model.corner_texture_uv, body.face_part, size)
        people = [pose_person(person, bodies) for person in spec["persons"]]
        kinds = [person["body"]["kind"] for person in spec["persons"]]
        for slot, posed, appearance in zip(built.person_slots(kinds, meshes), people, spec["appearance"]):
            slot.set_texture(clothing_texture(appearance, part_map), appearance["roughness"])
            slot.set_vertices(posed.vertices)
        built.set_camera(camera_from_spec(spec))
        built.set_lights(spec["lights"], people[0].vertices.mean(axis=0))
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
