"""The README's panel picture (farm/panel_picture.py): its recording of the panel's draw()
must see every operator the extension registers and the real values of the panel's state."""
from __future__ import annotations

import pytest

from test_addon_panel import addon  # noqa: F401  (fixture: the enabled add-on)

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def test_recording_sees_every_operator_and_the_real_values(addon, test_config, tmp_path):
    from densesynth.motion.builtin_clips import builtin_clip
    from densesynth.motion.clip import save_clip
    from densesynth.ui import motion, operators, render_operators
    from densesynth.ui.truth import VIEW_LABELS
    from farm.panel_picture import RecordingLayout, picture, preview_pixels, record_panel

    settings = bpy.context.scene.densesynth
    settings.config_path, settings.seed = str(test_config), 12
    recorded = record_panel()
    offered = {item.identifier for item in recorded.items() if item.kind == "operator"}
    assert "densesynth.show_view" not in offered  # nothing rendered yet: no views to offer

    clip = tmp_path / "walk.npz"
    save_clip(clip, builtin_clip("walk"))
    old = motion.clip_folder
    motion.clip_folder = lambda: tmp_path / "clips"
    try:
        assert bpy.ops.densesynth.load_motion(filepath=str(clip), start=2, end=9) == {"FINISHED"}
    finally:
        motion.clip_folder = old
    recorded = record_panel()
    items = recorded.items()
    offered = {item.identifier for item in items if item.kind == "operator"}
    registered = {cls.bl_idname for cls in (*operators.CLASSES, *render_operators.CLASSES)}
    assert offered == registered
    settings = bpy.context.scene.densesynth
    values = {item.identifier: item.value for item in items if item.kind == "prop"}
    assert values["seed"] == 12 == settings.seed and values["motion_start"] == 2 and values["motion_end"] == 9
    assert values["body"] == "As in Config" and values["config_path"] == str(test_config)
    views = [item for item in items if item.identifier == "densesynth.show_view"]
    assert [v.text for v in views] == [VIEW_LABELS[v.settings["view"]] for v in views]
    assert [v.settings["view"] for v in views if v.depress] == ["BEAUTY"]
    assert {"IUV", "PARTS24", "PARTS14", "PERSON_INDEX"} <= {v.settings["view"] for v in views}

    image = picture(recorded, preview_pixels())
    assert image.height > 500 and image.width > 360

    with pytest.raises(AttributeError):  # layout API the recorder does not know fails loudly
        RecordingLayout().template_list("x")
