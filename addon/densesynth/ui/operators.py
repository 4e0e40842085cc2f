"""The panel's operators. Each is one undo step where Blender allows it, and every failure
ends as one line in the report area (and in the panel), never a traceback."""
from __future__ import annotations

import random
import traceback
from pathlib import Path

import bpy

from . import motion, prefs, session, state, truth

UNDO = {"REGISTER", "UNDO"}


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "failed"


def _guarded(operator, context, action) -> set:
    """Run `action()`; a user mistake (UserError) or any other failure becomes one report line."""
    from ..errors import UserError

    context.scene.densesynth.message = ""
    try:
        return action()
    except UserError as exc:
        line = _one_line(exc)
    except Exception as exc:  # a bug: the traceback goes to the console, one line to the artist
        traceback.print_exc()
        line = _one_line(f"{type(exc).__name__}: {exc}")
    bpy.context.scene.densesynth.message = line  # the window's scene now: the clicked one may be gone
    operator.report({"ERROR"}, line)
    return {"CANCELLED"}


def _folders(context) -> dict[str, str]:
    """The preference folders, refused up front (first problem) when one cannot be used."""
    from ..errors import UserError

    folders = prefs.folders_of(prefs.preferences(context))
    problems = prefs.folder_problems(folders)
    if problems:
        raise UserError(problems[0] + (f" (and {len(problems) - 1} more: Check Assets)" if len(problems) > 1 else ""))
    return folders


def _preview(operator, context) -> set:
    settings = context.scene.densesynth
    sample = session.build_sample(context, settings, _folders(context), None, render=settings.render_preview)
    # `settings` belonged to the scene the artist clicked in, which may have been the old
    # preview, now removed: from here on only the sample is read.
    person = sample.spec["persons"][0]
    operator.report({"INFO"}, f"sample {sample.spec['stem']} (seed {sample.spec['run_seed']}): "
                              f"{person['body']['kind']}, {person['motion']['clip']}")
    return {"FINISHED"}


class DENSESYNTH_OT_preview_sample(bpy.types.Operator):
    """Build the current sample (body, clothes, camera, lights) in a scene of its own and, with
    Render Image, render it with its image effects into the 'DenseSynth Preview' image"""

    bl_idname = "densesynth.preview_sample"
    bl_label = "Preview Sample"
    bl_options = UNDO

    def execute(self, context):
        return _guarded(self, context, lambda: _preview(self, context))


class DENSESYNTH_OT_new_seed(bpy.types.Operator):
    """Draw a new run seed (every draw of the sample changes) and preview it"""

    bl_idname = "densesynth.new_seed"
    bl_label = "New Seed"
    bl_options = UNDO

    def execute(self, context):
        settings = context.scene.densesynth
        old = settings.seed
        settings.seed = next(s for s in iter(lambda: random.randrange(2**31 - 1), None) if s != old)
        settings.shape_draw = 0
        return _guarded(self, context, lambda: _preview(self, context))


class DENSESYNTH_OT_random_shape(bpy.types.Operator):
    """Redraw the first person's body shape with its kind's own draw (recorded in the spec as
    stream body/shapeK) and preview it"""

    bl_idname = "densesynth.random_shape"
    bl_label = "Random Shape"
    bl_options = UNDO

    def execute(self, context):
        context.scene.densesynth.shape_draw += 1
        return _guarded(self, context, lambda: _preview(self, context))


def _edited_note(sample, motion_loaded: bool) -> str:
    """What the report says of an exported sample that is not the farm's (never marked done)."""
    panel = sample.spec.get("panel", {})
    changes = [*(["redrawn shape"] if sample.spec["persons"][0]["body"]["stream"] != "body" else []),
               *(["loaded motion"] if motion_loaded else []),
               *(f"locked {group}" for group in panel.get("locked", [])),
               *(["shape sliders"] if "shape" in panel else [])]
    return f" (edited: {', '.join(changes)}; not marked done, not merged)" if changes else ""


def _export(operator, context) -> set:
    loaded = bool(context.scene.densesynth.motion_clip)
    sample, out, merged = session.export_sample(context, context.scene.densesynth, _folders(context))
    operator.report({"INFO"}, f"exported sample {sample.spec['stem']} into {out}{_edited_note(sample, loaded)}; "
                              f"{merged}")
    return {"FINISHED"}


class DENSESYNTH_OT_export_sample(bpy.types.Operator):
    """Write the current sample into Output exactly as farm/render.py writes it (images, labels,
    record, done marker, annotations.json)"""

    bl_idname = "densesynth.export_sample"
    bl_label = "Export Current Sample"
    bl_options = UNDO

    def execute(self, context):
        return _guarded(self, context, lambda: _export(self, context))


class DENSESYNTH_OT_export_range(bpy.types.Operator):
    """Export frames Start..End of the loaded motion (as samples Sample, Sample+1, ...) or, without
    a motion, samples Sample..Sample+Count-1, each as Export Current Sample writes it. Esc cancels
    between samples (what is written stays)"""

    bl_idname = "densesynth.export_range"
    bl_label = "Export Range"
    bl_options = UNDO

    _timer = None

    def _plan(self, context) -> None:
        settings = context.scene.densesynth
        self._folders = _folders(context)
        playing = session.motion_range(settings)
        self._steps = state.export_steps(settings.sample_index, settings.range_count, playing)
        self._done, self._out = 0, None
        context.window_manager.progress_begin(0, len(self._steps))
        self._status(f"0/{len(self._steps)}")

    @staticmethod
    def _status(text: str) -> None:
        bpy.context.scene.densesynth.export_status = text  # the window's scene: the newest preview's

    def _step(self, context) -> None:
        index, frame = self._steps[self._done]
        settings = bpy.context.scene.densesynth
        if frame is None:
            _, self._out, _ = session.export_sample(context, settings, self._folders, draw_index=index)
        else:  # the panel's sample at clip frame `frame`, written as sample `index`
            last = self._done == len(self._steps) - 1
            _, self._out, _ = session.export_sample(context, settings, self._folders, frame=frame, index=index,
                                                    animate=last)
        self._done += 1
        self._status(f"{self._done}/{len(self._steps)}")
        context.window_manager.progress_update(self._done)

    def _finish(self, context) -> set:
        context.window_manager.progress_end()
        first, last = self._steps[0], self._steps[-1]
        what = (f"frames {first[1]}-{last[1]} as samples {first[0]}-{last[0]}" if first[1] is not None
                else f"samples {first[0]}-{last[0]}")
        self._status(f"done: {len(self._steps)} samples")
        self.report({"INFO"}, f"exported {what} into {self._out}")
        return {"FINISHED"}

    def _failed(self, context) -> None:
        context.window_manager.progress_end()
        self._status(f"failed at {self._done}/{len(self._steps)}")

    def execute(self, context):
        # Scripts and background mode: no event loop, so the range runs to its end here.
        def run() -> set:
            self._plan(context)
            try:
                while self._done < len(self._steps):
                    self._step(context)
            except BaseException:
                self._failed(context)
                raise
            return self._finish(context)

        return _guarded(self, context, run)

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        if _guarded(self, context, lambda: self._plan(context) or {"RUNNING_MODAL"}) != {"RUNNING_MODAL"}:
            return {"CANCELLED"}
        bpy.context.scene.densesynth.cancel_requested = False
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        wm = context.window_manager
        if event.type == "ESC" or bpy.context.scene.densesynth.cancel_requested:
            bpy.context.scene.densesynth.cancel_requested = False
            wm.event_timer_remove(self._timer)
            wm.progress_end()
            self._status(f"cancelled at {self._done}/{len(self._steps)}")
            self.report({"WARNING"}, f"export cancelled after {self._done} of {len(self._steps)} samples")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}

        def step() -> set:
            try:
                self._step(context)
            except BaseException:
                self._failed(context)
                raise
            return {"RUNNING_MODAL"}

        if _guarded(self, context, step) != {"RUNNING_MODAL"}:
            wm.event_timer_remove(self._timer)
            return {"CANCELLED"}
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if self._done < len(self._steps):
            return {"RUNNING_MODAL"}
        wm.event_timer_remove(self._timer)
        return self._finish(context)


class DENSESYNTH_OT_save_config(bpy.types.Operator):
    """Save the panel's state as a farm YAML config (farm/render.py --config FILE renders it)"""

    bl_idname = "densesynth.save_config"
    bl_label = "Save Config"
    bl_options = {"REGISTER"}  # writes a file only: nothing in the Blender file to undo

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", default="densesynth.yaml")
    filter_glob: bpy.props.StringProperty(default="*.yaml;*.yml", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        def save() -> set:
            from ..errors import UserError
            from ..io_utils import atomic_write_text
            from .properties import panel_state

            settings = context.scene.densesynth
            config, _ = session.panel_config(settings, _folders(context))
            path = Path(bpy.path.abspath(self.filepath))
            try:
                atomic_write_text(path, state.config_yaml(config, panel_state(settings)))
            except OSError as exc:
                raise UserError(f"cannot write config {path}: {exc.strerror or exc}") from None
            self.report({"INFO"}, f"saved config {path}")
            return {"FINISHED"}

        return _guarded(self, context, save)


class DENSESYNTH_OT_load_config(bpy.types.Operator):
    """Load a farm YAML config into the panel (and the seed, sample and shape a saved one records)"""

    bl_idname = "densesynth.load_config"
    bl_label = "Load Config"
    bl_options = UNDO

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.yaml;*.yml", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        def load() -> set:
            settings = context.scene.densesynth
            path = bpy.path.abspath(self.filepath)
            config, _ = state.effective_config(path, "CONFIG", {})  # a bad file fails here, panel unchanged
            saved = state.panel_state_of(path)
            settings.config_path = path
            settings.body = saved.get("body") if saved.get("body") in _BODY_IDS else state.body_choice(config)
            for name in ("seed", "sample_index", "shape_draw", "num_samples", "motion_start", "motion_end",
                         "range_count"):
                if isinstance(saved.get(name), int):
                    setattr(settings, name, saved[name])
            from .properties import SAVED_FLAGS, SAVED_SLIDERS

            for name in SAVED_FLAGS:
                setattr(settings, name, saved.get(name) is True)
            for name in SAVED_SLIDERS:
                if isinstance(saved.get(name), (int, float)) and not isinstance(saved.get(name), bool):
                    setattr(settings, name, min(max(float(saved[name]), 0.0), 1.0))
            betas = saved.get("shape_betas")
            if isinstance(betas, list) and len(betas) == 4 and all(isinstance(b, (int, float)) for b in betas):
                settings.shape_betas = [min(max(float(b), -3.0), 3.0) for b in betas]
            settings.motion_clip = saved.get("motion_clip") if isinstance(saved.get("motion_clip"), str) else ""
            settings.motion_mirror = saved.get("motion_mirror") is True
            if "shape_draw" not in saved:
                settings.shape_draw = 0
            self.report({"INFO"}, f"loaded config {path}")
            return {"FINISHED"}

        return _guarded(self, context, load)


_BODY_IDS = {item[0] for item in state.BODY_ITEMS}


class DENSESYNTH_OT_check_assets(bpy.types.Operator):
    """Check the asset folders of the add-on preferences (the messages of python -m farm.assets check)"""

    bl_idname = "densesynth.check_assets"
    bl_label = "Check Assets"
    bl_options = {"REGISTER"}

    def execute(self, context):
        def check() -> set:
            folders = prefs.folders_of(prefs.preferences(context))
            problems = prefs.folder_problems(folders)
            if problems:
                from ..errors import UserError

                raise UserError("; ".join(problems))
            self.report({"INFO"}, f"asset folders ok ({', '.join(folders) or 'none set'})")
            return {"FINISHED"}

        return _guarded(self, context, check)


class DENSESYNTH_OT_load_motion(bpy.types.Operator):
    """Convert a BVH, C3D or clip (.npz) with the project's converter and play it on the body:
    person 0 of the sample takes the clip, the timeline runs over the frame range"""

    bl_idname = "densesynth.load_motion"
    bl_label = "Load Motion"
    bl_options = UNDO

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.bvh;*.c3d;*.npz", options={"HIDDEN"})
    start: bpy.props.IntProperty(name="Start", default=0, min=0, description="First clip frame")
    end: bpy.props.IntProperty(name="End", default=-1, min=-1, description="Last clip frame (-1 = the clip's last)")
    mirror: bpy.props.BoolProperty(name="Mirror", default=False)
    fps: bpy.props.FloatProperty(name="FPS", default=0.0, min=0.0, description="Resample to this rate (0 = the file's)")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        def load() -> set:
            settings = context.scene.densesynth
            path, clip, lines = motion.import_motion(bpy.path.abspath(self.filepath), self.fps or None)
            start, end = motion.frame_range(clip.num_frames, self.start, self.end)  # refused before any change
            old = (settings.motion_clip, settings.motion_start, settings.motion_end, settings.motion_mirror)
            settings.motion_clip, settings.motion_start, settings.motion_end = str(path), start, end
            settings.motion_mirror, settings.motion_frames = self.mirror, clip.num_frames
            try:
                sample = session.build_sample(context, settings, _folders(context), None,
                                              render=settings.render_preview, frame=start)
            except BaseException:
                (settings.motion_clip, settings.motion_start, settings.motion_end, settings.motion_mirror) = old
                raise
            for line in lines:
                print(f"densesynth: {line}")
            self.report({"INFO"}, f"motion {Path(self.filepath).name}: {clip.num_frames} frames at "
                                  f"{clip.mocap_framerate:g} fps, frames {start}-{end} on "
                                  f"{sample.spec['persons'][0]['body']['kind']}")
            return {"FINISHED"}

        return _guarded(self, context, load)


class DENSESYNTH_OT_clear_motion(bpy.types.Operator):
    """Give person 0 its drawn motion again (the config's clips) and preview"""

    bl_idname = "densesynth.clear_motion"
    bl_label = "Clear Motion"
    bl_options = UNDO

    def execute(self, context):
        settings = context.scene.densesynth
        settings.motion_clip, settings.motion_frames = "", 0
        return _guarded(self, context, lambda: _preview(self, context))


class DENSESYNTH_OT_show_view(bpy.types.Operator):
    """Show a ground-truth layer of the rendered sample in the 'DenseSynth Preview' image
    (decoded from the same render: nothing is rendered again)"""

    bl_idname = "densesynth.show_view"
    bl_label = "Show View"
    bl_options = {"REGISTER"}  # writes the preview image only

    view: bpy.props.EnumProperty(name="View", items=truth.VIEW_ITEMS, default="BEAUTY")

    def execute(self, context):
        def show() -> set:
            settings = context.scene.densesynth
            session.show_view(self.view, settings.show_keypoints)
            settings.view = self.view
            return {"FINISHED"}

        return _guarded(self, context, show)


CLASSES = (DENSESYNTH_OT_preview_sample, DENSESYNTH_OT_new_seed, DENSESYNTH_OT_random_shape,
           DENSESYNTH_OT_export_sample, DENSESYNTH_OT_export_range, DENSESYNTH_OT_save_config, DENSESYNTH_OT_load_config,
           DENSESYNTH_OT_check_assets, DENSESYNTH_OT_load_motion, DENSESYNTH_OT_clear_motion,
           DENSESYNTH_OT_show_view)
