"""The artist-facing panel (3D viewport sidebar, 'DenseSynth' tab).

Two actions: preview one sample of a config in a new scene of the open file (to look at
what the randomisation does, through the sample's own camera), and render a dataset in a
background Blender process so the artist's session stays responsive. Both use the same
config file and the same code as the farm.
"""

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
    # Written by the running Render Dataset job: "k/N", "done", "failed", "cancelled ...".
    job_status: bpy.props.StringProperty(name="Job", default="")
    cancel_requested: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE"})


def _load_config(settings: DenseSynthSettings):
    from ..config import config_hash, load_config

    path = bpy.path.abspath(settings.config_path) if settings.config_path else None
    config = load_config(Path(path) if path else None)
    return config, config_hash(config)


def _remove_previews(keep) -> None:
    """Drop earlier preview scenes and their objects, so clicking Preview never piles up scenes.

    Runs after the new preview is built and shown: the artist may have clicked from inside the
    old preview, which must not be removed while it is the window's scene.
    """
    for old in [s for s in bpy.data.scenes if s.get("densesynth_preview") and s != keep]:
        for obj in list(old.objects):
            if all(user == old for user in obj.users_scene):
                bpy.data.objects.remove(obj)
        bpy.data.scenes.remove(old)
    for kind in (bpy.data.meshes, bpy.data.cameras, bpy.data.lights):
        for block in [b for b in kind if b.users == 0]:
            kind.remove(block)


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
        _remove_previews(keep=scene)
        scene["densesynth_preview"] = True
        self.report({"INFO"}, f"sample {spec['stem']}: {spec['persons'][0]['motion']['clip']}")
        return {"FINISHED"}


class DENSESYNTH_OT_render_dataset(bpy.types.Operator):
    """Render a dataset in a background process (Esc cancels; the output folder stays resumable)"""

    bl_idname = "densesynth.render_dataset"
    bl_label = "Render Dataset"

    _job = None
    _timer = None

    def _start(self, context):
        import sys

        from .render_job import RenderJob

        settings = context.scene.densesynth
        out = Path(bpy.path.abspath(settings.output_dir))
        args = ["--out", str(out), "--num-samples", str(settings.num_samples), "--seed", str(settings.seed)]
        if settings.config_path:
            args += ["--config", bpy.path.abspath(settings.config_path)]
        settings.job_status = f"0/{settings.num_samples}"
        # Blender's own script folders stay out: a child Python would import their `bpy` shell
        # instead of the bpy module; the extension folder and its wheel site are what it needs.
        scripts = bpy.utils.system_resource("SCRIPTS")
        import_path = [p for p in sys.path if not (scripts and p.startswith(scripts))]
        return RenderJob.start(bpy.app.binary_path, args, import_path), out

    def _finish(self, context, job, out) -> set:
        settings = context.scene.densesynth
        code = job.wait()
        if code != 0:
            settings.job_status = "failed"
            self.report({"ERROR"}, job.error_line())
            return {"CANCELLED"}
        settings.job_status = "done"
        self.report({"INFO"}, f"rendered {settings.num_samples} samples into {out}")
        return {"FINISHED"}

    def execute(self, context):
        # Scripts and background mode: no event loop to poll from, so wait for the job.
        job, out = self._start(context)
        return self._finish(context, job, out)

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        self._job, self._out = self._start(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.progress_begin(0, context.scene.densesynth.num_samples)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _end_modal(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()

    def modal(self, context, event):
        settings = context.scene.densesynth
        if event.type == "ESC" or settings.cancel_requested:
            settings.cancel_requested = False
            self._job.cancel()
            self._end_modal(context)
            settings.job_status = "cancelled (run again to resume)"
            self.report({"WARNING"}, f"render cancelled; {self._out} resumes on the next Render Dataset")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if (progress := self._job.progress()) is not None:
            settings.job_status = f"{progress[0]}/{progress[1]}"
            context.window_manager.progress_update(progress[0])
            for area in context.screen.areas if context.screen else ():
                area.tag_redraw()
        if not self._job.finished():
            return {"PASS_THROUGH"}
        self._end_modal(context)
        return self._finish(context, self._job, self._out)


class DENSESYNTH_OT_cancel_render(bpy.types.Operator):
    """Stop the running dataset render (the output folder stays resumable)"""

    bl_idname = "densesynth.cancel_render"
    bl_label = "Cancel"

    def execute(self, context):
        context.scene.densesynth.cancel_requested = True
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
        row = layout.row()
        row.operator(DENSESYNTH_OT_render_dataset.bl_idname)
        row.operator(DENSESYNTH_OT_cancel_render.bl_idname)
        if settings.job_status:
            layout.label(text=f"Render: {settings.job_status}")


CLASSES = (DenseSynthSettings, DENSESYNTH_OT_preview_sample, DENSESYNTH_OT_render_dataset,
           DENSESYNTH_OT_cancel_render, DENSESYNTH_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.densesynth = bpy.props.PointerProperty(type=DenseSynthSettings)


def unregister() -> None:
    del bpy.types.Scene.densesynth
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
