"""Render Dataset: the farm's job in a background process, with progress and cancel (render_job.py)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from . import session, state
from .operators import _folders, _guarded
from .properties import panel_state


class DENSESYNTH_OT_render_dataset(bpy.types.Operator):
    """Render a dataset in a background process (Esc cancels; the output folder stays resumable)"""

    bl_idname = "densesynth.render_dataset"
    bl_label = "Render Dataset"
    bl_options = {"REGISTER"}  # writes files in another process: nothing to undo here

    _job = None
    _timer = None

    def _start(self, context):
        import sys

        from .render_job import RenderJob

        settings = context.scene.densesynth
        out = Path(bpy.path.abspath(settings.output_dir))
        # The panel's config (its body choice, the preference folders) as the farm YAML that
        # Save Config writes: the job renders exactly what Preview and Export show.
        config, _ = session.panel_config(settings, _folders(context))
        handle, name = tempfile.mkstemp(prefix="densesynth_config_", suffix=".yaml")
        os.close(handle)
        self._config_file = Path(name)
        self._config_file.write_text(state.config_yaml(config, panel_state(settings)))
        args = ["--out", str(out), "--num-samples", str(settings.num_samples), "--seed", str(settings.seed),
                "--config", str(self._config_file)]
        settings.job_status = f"0/{settings.num_samples}"
        # Blender's own script folders stay out: a child Python would import their `bpy` shell
        # instead of the bpy module; the extension folder and its wheel site are what it needs.
        scripts = bpy.utils.system_resource("SCRIPTS")
        import_path = [p for p in sys.path if not (scripts and p.startswith(scripts))]
        return RenderJob.start(bpy.app.binary_path, args, import_path), out

    def _finish(self, context, job, out) -> set:
        settings = context.scene.densesynth
        code = job.wait()
        self._config_file.unlink(missing_ok=True)
        if code != 0:
            settings.job_status = "failed"
            settings.message = job.error_line()
            self.report({"ERROR"}, settings.message)
            return {"CANCELLED"}
        settings.job_status = "done"
        self.report({"INFO"}, f"rendered {settings.num_samples} samples into {out}")
        return {"FINISHED"}

    def execute(self, context):
        # Scripts and background mode: no event loop to poll from, so wait for the job.
        return _guarded(self, context, lambda: self._finish(context, *self._start(context)))

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)

        def start() -> set:
            self._job, self._out = self._start(context)
            return {"RUNNING_MODAL"}

        if _guarded(self, context, start) != {"RUNNING_MODAL"}:
            return {"CANCELLED"}
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
            self._config_file.unlink(missing_ok=True)
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
    bl_options = {"REGISTER"}

    def execute(self, context):
        context.scene.densesynth.cancel_requested = True
        return {"FINISHED"}


CLASSES = (DENSESYNTH_OT_render_dataset, DENSESYNTH_OT_cancel_render)
