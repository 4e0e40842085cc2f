"""The panel's per-scene state (`scene.densesynth`): what Save Config writes and Load Config reads."""
from __future__ import annotations

import bpy

from .state import BODY_ITEMS, LOCK_GROUPS
from .truth import VIEW_ITEMS

LOCKS = {group: description for group, _, description in LOCK_GROUPS}
# "//" paths (relative to the .blend) are what an artist's file holds.
BLEND_RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"}


def _show_again(settings, context) -> None:
    """Keypoints on or off: draw the current view again (nothing to do before a render)."""
    from . import session

    last = session.current_truth()
    if last is not None and settings.view in last.layers:
        session.show_view(settings.view, settings.show_keypoints)


class DenseSynthSettings(bpy.types.PropertyGroup):
    config_path: bpy.props.StringProperty(name="Config", subtype="FILE_PATH", options=BLEND_RELATIVE,
                                          description="YAML config; empty = embedded defaults")
    body: bpy.props.EnumProperty(name="Body", items=BODY_ITEMS, default="CONFIG",
                                 description="Body kind of the sample (SMPL: the folder in the add-on preferences)")
    shape_draw: bpy.props.IntProperty(name="Shape Draw", default=0, min=0,
                                      description="0 = the sample's own shape; k = Random Shape's k-th redraw")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0, description="Run seed (farm/render.py --seed)")
    sample_index: bpy.props.IntProperty(name="Sample", default=0, min=0, description="Sample index in the run")
    render_preview: bpy.props.BoolProperty(name="Render Image", default=True,
                                           description="Preview also renders the sample with its image effects "
                                                       "into the 'DenseSynth Preview' image")
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//densesynth_out",
                                         options=BLEND_RELATIVE)
    num_samples: bpy.props.IntProperty(name="Samples", default=8, min=1)
    # The last error of a panel operator, shown in the panel as well as in the report area.
    message: bpy.props.StringProperty(name="Message", default="", options={"SKIP_SAVE"})
    # Written by the running Render Dataset job: "k/N", "done", "failed", "cancelled ...".
    job_status: bpy.props.StringProperty(name="Job", default="")
    cancel_requested: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE"})
    # Motion (ui/motion.py): the converted clip person 0 plays; empty = the config's own draw.
    motion_clip: bpy.props.StringProperty(name="Clip", subtype="FILE_PATH",
                                          description="The converted clip (.npz) person 0 plays; empty = drawn motion")
    motion_start: bpy.props.IntProperty(name="Start", default=0, min=0, description="First clip frame of the timeline")
    motion_end: bpy.props.IntProperty(name="End", default=-1, min=-1,
                                      description="Last clip frame of the timeline (-1 = the clip's last)")
    motion_mirror: bpy.props.BoolProperty(name="Mirror", default=False,
                                          description="Play the clip mirrored (left/right)")
    motion_frames: bpy.props.IntProperty(name="Clip Frames", default=0, min=0, description="Frames of the loaded clip")
    # Ground-truth view (ui/truth.py): what the 'DenseSynth Preview' image shows.
    view: bpy.props.EnumProperty(name="View", items=VIEW_ITEMS, default="BEAUTY",
                                 description="Which layer of the rendered sample the preview image shows")
    show_keypoints: bpy.props.BoolProperty(name="Keypoints", default=False, update=_show_again,
                                           description="Draw the COCO keypoints (disc: visible, ring: hidden)")
    # Locks (state.LOCK_GROUPS): New Seed / Random Shape keep these sections of the current spec.
    lock_appearance: bpy.props.BoolProperty(name="Texture", default=False, description=LOCKS["appearance"])
    lock_camera: bpy.props.BoolProperty(name="Camera", default=False, description=LOCKS["camera"])
    lock_lights: bpy.props.BoolProperty(name="Lights", default=False, description=LOCKS["lights"])
    lock_backdrop: bpy.props.BoolProperty(name="Backdrop", default=False, description=LOCKS["backdrop"])
    lock_occluders: bpy.props.BoolProperty(name="Occluders", default=False, description=LOCKS["occluders"])
    # Shape sliders: person 0's anny phenotype or first SMPL betas (state.slider_edit).
    shape_sliders: bpy.props.BoolProperty(name="Shape Sliders", default=False,
                                          description="Shape the first person with the sliders instead of its draw")
    shape_gender: bpy.props.FloatProperty(name="Gender", default=0.5, min=0.0, max=1.0, description="0 male, 1 female")
    shape_age: bpy.props.FloatProperty(name="Age", default=0.67, min=0.0, max=1.0,
                                       description="0.5 teen, 0.67 young adult, 1 old")
    shape_muscle: bpy.props.FloatProperty(name="Muscle", default=0.5, min=0.0, max=1.0)
    shape_weight: bpy.props.FloatProperty(name="Weight", default=0.5, min=0.0, max=1.0)
    shape_height: bpy.props.FloatProperty(name="Height", default=0.5, min=0.0, max=1.0)
    shape_proportions: bpy.props.FloatProperty(name="Proportions", default=0.5, min=0.0, max=1.0)
    shape_betas: bpy.props.FloatVectorProperty(name="Betas", size=4, default=(0.0, 0.0, 0.0, 0.0), min=-3.0, max=3.0,
                                               description="SMPL's first four shape coefficients")
    # Export Range: samples without a motion; progress "k/N" while it runs.
    range_count: bpy.props.IntProperty(name="Count", default=3, min=1,
                                       description="Export Range without a motion: samples Sample..Sample+Count-1")
    export_status: bpy.props.StringProperty(name="Export", default="", options={"SKIP_SAVE"})


def panel_state(settings: DenseSynthSettings) -> dict:
    """The state Save Config records beside the config (not config keys: the farm's command line)."""
    return {"seed": settings.seed, "sample_index": settings.sample_index, "shape_draw": settings.shape_draw,
            "body": settings.body, "num_samples": settings.num_samples, "motion_clip": settings.motion_clip,
            "motion_start": settings.motion_start, "motion_end": settings.motion_end,
            "motion_mirror": settings.motion_mirror, "range_count": settings.range_count,
            **{name: getattr(settings, name) for name in SAVED_FLAGS + SAVED_SLIDERS},
            "shape_betas": [round(b, 6) for b in settings.shape_betas]}


SAVED_FLAGS = ("lock_appearance", "lock_camera", "lock_lights", "lock_backdrop", "lock_occluders", "shape_sliders")
SAVED_SLIDERS = ("shape_gender", "shape_age", "shape_muscle", "shape_weight", "shape_height", "shape_proportions")
