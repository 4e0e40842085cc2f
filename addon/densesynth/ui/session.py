"""One sample of the panel's state, built and rendered by the farm's own code.

Preview and Export both go through `pipeline.SampleRenderer` (built into a scene of its own
in the artist's file, never their scene) and its `SpecScene.build`: the same body kinds, the
same spec, the same passes and image effects as `farm/render.py`. Export adds the farm job's
bookkeeping (`job/`: run.json, the done marker, the merge), so its folder is a farm folder.
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from . import state

PREVIEW_IMAGE = "DenseSynth Preview"
SPEC_TEXT = "DenseSynth Spec"
PREVIEW_TAG = "densesynth_preview"


@dataclass
class Sample:
    """What the panel made: its scene, the spec, and the renderer's record (when rendered)."""

    scene: Any
    spec: dict[str, Any]
    config: dict[str, Any]
    config_id: str
    record: dict[str, Any] | None = None


def panel_config(settings, folders: dict[str, str]) -> tuple[dict[str, Any], str]:
    path = bpy.path.abspath(settings.config_path) if settings.config_path else None
    return state.effective_config(path, settings.body, folders)


@contextmanager
def _rendering_scene(scene):
    """Blender renders the context's scene: make it `scene` (a script or background session
    has no window whose scene the preview became)."""
    with bpy.context.temp_override(scene=scene):
        yield


def _new_scene(index: int):
    from ..spec.sample_spec import sample_stem

    scene = bpy.data.scenes.new(f"DenseSynth {sample_stem(index)}")
    scene[PREVIEW_TAG] = True
    # A new scene's defaults differ from the farm's factory-startup scene where it matters to
    # the pixels (Cycles' sampling pattern) and the label EXR's stamps: set the farm's values.
    for dotted, value in FACTORY_SCENE.items():
        owner = scene
        *path, attribute = dotted.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, attribute, value)
    return scene


# What `read_factory_settings(use_empty=True)` gives a render worker's scene, where a scene made
# by bpy.data.scenes.new differs (measured on Blender 5.0 by comparing every render setting).
FACTORY_SCENE = {"cycles.sampling_pattern": "TABULATED_SOBOL", "render.use_stamp_memory": False,
                 "view_settings.white_balance_temperature": 6500.0, "view_settings.white_balance_tint": 10.0,
                 "render.simplify_subdivision_render": 6, "render.simplify_child_particles_render": 1.0,
                 "render.image_settings.exr_codec": "ZIP"}
# The stamps a render worker's fresh, unsaved file writes into an EXR (scene and camera names,
# file name); the panel's scene lives in the artist's file, under other names.
FARM_STAMPS = {"Scene": "Scene", "Camera": "densesynth_camera", "File": "<untitled>"}


def farm_stamps(path: Path) -> None:
    """Rewrite an EXR's Blender stamps as a render worker writes them (pixels untouched), so an
    exported label file is byte for byte the farm's."""
    import OpenEXR

    exr = OpenEXR.File(str(path), separate_channels=True)
    header = exr.header()
    wanted = {**{k: v for k, v in header.items() if k != "Memory"},
              **{k: v for k, v in FARM_STAMPS.items() if k in header}}
    if wanted != header:
        OpenEXR.File(wanted, exr.channels()).write(str(path))


def remove_previews(keep) -> None:
    """Drop earlier preview scenes and their objects, so clicking Preview never piles up scenes.

    Runs after the new preview is built and shown: the artist may have clicked from inside the
    old preview, which must not be removed while it is the window's scene.
    """
    for old in [s for s in bpy.data.scenes if s.get(PREVIEW_TAG) and s != keep]:
        for obj in list(old.objects):
            if all(user == old for user in obj.users_scene):
                bpy.data.objects.remove(obj)
        bpy.data.scenes.remove(old)
    # Only the renderer's own datablocks (never Blender's 'Render Result' or the artist's).
    for kind in (bpy.data.meshes, bpy.data.cameras, bpy.data.lights, bpy.data.materials, bpy.data.images,
                 bpy.data.worlds):
        for block in [b for b in kind if b.users == 0 and b.name.startswith("densesynth_")]:
            kind.remove(block)


def _motion_of(settings, frame: int | None) -> tuple[str, Any, int, int, int] | None:
    """(clip file, clip, start, end, frame) of the loaded motion, or None: the drawn motion.
    `frame` defaults to the window scene's current frame, kept inside the range."""
    from ..errors import UserError
    from ..motion.catalogue import clip_by_spec
    from . import motion

    if not settings.motion_clip:
        return None
    path = Path(bpy.path.abspath(settings.motion_clip))
    if not path.is_file():
        raise UserError(f"motion clip {path} no longer exists: Load Motion again")
    clip = clip_by_spec("folder", path.name, str(path.parent))
    start, end = motion.frame_range(clip.num_frames, settings.motion_start, settings.motion_end)
    current = bpy.context.scene.frame_current if frame is None else frame
    return str(path), clip, start, end, min(max(int(current), start), end)


def motion_range(settings) -> tuple[int, int] | None:
    """(start, end) clip frames of the loaded motion, or None without one (UserError: clip gone)."""
    playing = _motion_of(settings, 0)
    return None if playing is None else (playing[2], playing[3])


def _combined(*edits):
    """One spec edit doing each of `edits` (None: no edit at all, the run's own sample)."""
    edits = [e for e in edits if e is not None]
    if not edits:
        return None

    def edit(spec: dict[str, Any]) -> None:
        for each in edits:
            each(spec)

    return edit


def build_sample(context, settings, folders: dict[str, str], out: Path | None, render: bool,
                 frame: int | None = None, index: int | None = None, animate: bool = True,
                 draw_index: int | None = None) -> Sample:
    """Build the panel's current sample into a new preview scene (replacing the old one) and,
    with `render`, render it into `out` through the renderer. With a loaded motion, person 0
    plays it: the sample is that of clip frame `frame` (default: the current frame) and, with
    `animate`, the timeline is keyed over the range (ui/motion.py). `draw_index` draws that
    sample instead of the panel's; `index` writes it as another index (a motion range's frames). The panel's locks and shape sliders edit the
    draws; what they changed is recorded in spec["panel"], and such a spec is not the farm's
    sample (never marked done). UserError on a user mistake."""
    from ..pipeline import SampleRenderer
    from . import motion, truth

    config, config_id = panel_config(settings, folders)
    playing = _motion_of(settings, frame)
    view, keypoints = settings.view, settings.show_keypoints
    scene = _new_scene(settings.sample_index)
    temporary = None
    try:
        if out is None:
            temporary = Path(tempfile.mkdtemp(prefix="densesynth_preview_"))
        renderer = SampleRenderer(config, config_id, settings.seed, out or temporary, scene=scene)
        edited = _combined(state.shape_edit(config, settings.shape_draw),
                           motion.motion_edit(playing[0], playing[4], settings.motion_mirror) if playing else None)
        notes: dict[str, Any] = {}
        previous, locked = current_spec(), locked_groups(settings)
        edit = _combined(edited, panel_edit(settings, notes), state.lock_edit(previous, locked, notes),
                         state.rename_edit(index, notes) if index is not None else None)
        drawn = settings.sample_index if draw_index is None else draw_index
        spec = renderer.spec_scene.draw_spec(config_id, settings.seed, drawn, edit)
        state.lock_after(spec, previous, locked, notes)
        if notes:
            spec["panel"] = notes  # an honest spec: what the panel changed after the draws
        sample = Sample(scene, spec, config, config_id)
        own = edited is None and not notes
        if render:
            with _rendering_scene(scene):
                sample.record = renderer.render(spec) if out is None else _export(renderer, spec, out, own)
            TRUTH["truth"] = truth.decode(out or temporary, renderer.files, sample.record, len(spec["persons"]))
            TRUTH["passes"], TRUTH["token"] = list(config["passes"]), uuid.uuid4().hex
            scene[TRUTH_TAG] = TRUTH["token"]
        else:
            renderer.spec_scene.build(spec)
        if playing and animate:
            motion.animate(scene, renderer.spec_scene, spec, playing[2], playing[3], playing[1].mocap_framerate)
    except BaseException:
        _drop_scene(scene)
        raise
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    if render:
        show_view(view if view in TRUTH["truth"].views() else "BEAUTY", keypoints)
    else:
        TRUTH["truth"] = None  # the scene now shows another sample than the last render
    show_spec(spec)
    copy_settings(settings, scene.densesynth)  # the panel shows the preview scene's settings next
    if context.window is not None:
        context.window.scene = scene
    remove_previews(keep=scene)
    _plain_names(scene)
    return sample


# The decoded layers of the last rendered sample (ui/truth.py) and the config's passes: what
# the ground-truth view switches between without rendering again.
# The token ties them to the preview scene rendered last: in another file (or once that scene
# is gone) there is nothing to show.
TRUTH: dict[str, Any] = {"truth": None, "passes": [], "token": None}
TRUTH_TAG = "densesynth_truth"


def current_truth():
    """The decoded layers of the last render, when its scene is still in the file; else None."""
    if TRUTH["truth"] is None or not any(s.get(TRUTH_TAG) == TRUTH["token"] for s in bpy.data.scenes):
        return None
    return TRUTH["truth"]


def show_view(view: str, keypoints: bool) -> bpy.types.Image:
    """Write `view` of the last rendered sample (with its keypoints) into the preview image.
    UserError when there is none or the config has no such pass."""
    from ..errors import UserError
    from . import truth

    last = current_truth()
    if last is None or view not in last.layers:
        raise UserError(truth.missing_view_message(view, last, TRUTH["passes"]))
    rgb = truth.colourise(last, view)
    if keypoints:
        rgb = truth.draw_keypoints(rgb, last.keypoints)
    return show_pixels(rgb)


def show_pixels(rgb) -> bpy.types.Image:
    """(H, W, 3) uint8 RGB as the "DenseSynth Preview" image (a byte image holding exactly
    these values, packed so that it is saved with the file)."""
    import numpy as np

    height, width = rgb.shape[:2]
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None or tuple(image.size) != (width, height) or image.source != "GENERATED":
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(PREVIEW_IMAGE, width, height, alpha=False)
        image.use_fake_user = True
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = rgb[::-1].astype(np.float32) / 255.0  # Blender's rows run bottom-up
    image.pixels.foreach_set(rgba.ravel())
    image.update()
    image.pack()
    return image


def _plain_names(scene) -> None:
    """The preview's own names without the '.001' Blender added while the old preview existed."""
    for block in [scene, *scene.objects, *(obj.data for obj in scene.objects if obj.data is not None)]:
        base, dot, suffix = block.name.rpartition(".")
        if dot and suffix.isdigit() and base.startswith(("DenseSynth ", "densesynth_")):
            block.name = base


def locked_groups(settings) -> list[str]:
    """The spec groups the panel's locks keep (state.LOCK_GROUPS order)."""
    return [group for group, _, _ in state.LOCK_GROUPS if getattr(settings, f"lock_{group}")]


def panel_edit(settings, notes: dict[str, Any]):
    """The shape sliders' spec edit when they are on (None: the drawn shape)."""
    if not settings.shape_sliders:
        return None
    phenotype = {name: getattr(settings, f"shape_{name}") for name in state.PHENOTYPE_SLIDERS}
    return state.slider_edit(phenotype, list(settings.shape_betas), notes)


def export_sample(context, settings, folders: dict[str, str], frame: int | None = None,
                  index: int | None = None, animate: bool = True,
                  draw_index: int | None = None) -> tuple[Sample, Path, str]:
    """Export the current sample into the Output folder as the farm writes it: the folder's
    checks and lock, run.json, the charts file, the sample (`_export`), then the merge of every
    finished sample into annotations.json and its train/val split. Returns (sample, folder,
    what the merge did)."""
    from ..annotate.chart_surface import CHARTS_FILE, write_chart_surface
    from ..cli import claim_run, lock_out_folder, resolve_out
    from ..job.merge import MergeError, merge
    from ..job.shards import DEFAULT_SHARD_SIZE, read_run, remove_stale_temporaries

    out = resolve_out(bpy.path.abspath(settings.output_dir))
    config, config_id = panel_config(settings, folders)
    lock = lock_out_folder(out)
    try:
        run = read_run(out) or {}
        planned = run.get("num_samples") if isinstance(run.get("num_samples"), int) else 0
        written = next(i for i in (index, draw_index, settings.sample_index) if i is not None)
        num_samples = max(planned, written + 1)
        claim_run(out, config_id, settings.seed, {"num_samples": num_samples,
                                                  "shard_size": run.get("shard_size", DEFAULT_SHARD_SIZE)})
        remove_stale_temporaries(out)
        from ..bodies.kinds import body_kind

        body_kind(config["body"]["kind"]).prepare()
        if not (out / CHARTS_FILE).is_file():
            write_chart_surface(out / CHARTS_FILE, config["body"])
        sample = build_sample(context, settings, folders, out, render=True, frame=frame, index=index,
                              animate=animate, draw_index=draw_index)
        try:
            merged = merge(out, num_samples, allow_partial=True)
            done = f"annotations.json: {merged.images} of {num_samples} samples"
        except MergeError as exc:
            done = f"not merged: {exc}"
    finally:
        lock.release()
    return sample, out, done


def copy_settings(source, target) -> None:
    """Every panel setting of `source` onto `target` (the panel follows the window's scene)."""
    if source == target:
        return
    for prop in source.bl_rna.properties:
        if prop.identifier != "rna_type" and not prop.is_readonly:
            setattr(target, prop.identifier, getattr(source, prop.identifier))


def _drop_scene(scene) -> None:
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    bpy.data.scenes.remove(scene)


def _export(renderer, spec: dict[str, Any], out: Path, own: bool) -> dict[str, Any]:
    """Render `spec` into the farm folder `out`: the job's own `render_sample` (files, then the
    done marker) when it is the run's own sample; an edited one (a redrawn shape) gets its
    files and record but no done marker, since the farm's sample at that index is another."""
    from ..job.in_process import Job
    from ..job.shards import forget_sample, write_manifest

    job = Job(renderer.config, renderer.config_id, renderer.run_seed, out)
    # The job's render_sample (forget, render, mark done), with the EXR stamps made the farm's
    # before the done marker records the files' hashes.
    forget_sample(out, spec["index"])
    record = renderer.render(spec)
    for name in renderer.files:
        if name.endswith(".exr"):
            farm_stamps(out / name)
    if own:
        write_manifest(out, job.identity, spec["index"], record, renderer.files)
    return record


def show_spec(spec: dict[str, Any]) -> bpy.types.Text:
    text = bpy.data.texts.get(SPEC_TEXT) or bpy.data.texts.new(SPEC_TEXT)
    text.from_string(state.spec_text(spec))
    return text


def current_spec() -> dict[str, Any] | None:
    """The spec the panel last built (the "DenseSynth Spec" text), or None."""
    import json

    text = bpy.data.texts.get(SPEC_TEXT)
    if text is None:
        return None
    try:
        return json.loads(text.as_string())
    except ValueError:
        return None
