"""The panel's locks, shape sliders and Export Range (issue 12), under the `bpy` module.

Locks: after New Seed, the locked sections must equal the old spec's, the rest must be the new
seed's own draws (checked against the farm's draw of the new seed, without the panel). Shape
sliders: the previewed mesh must be `pose_person` of the edited spec, and its height must follow
the slider. Export Range: each frame written must be byte for byte a single export of that frame.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_CONFIG
from test_addon_motion import clips, wild_bvh  # noqa: F401  (fixture: converted clips in the test's folder)
from test_addon_panel import addon  # noqa: F401  (fixture: the enabled add-on)

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

SMALL_CONFIG = TEST_CONFIG.replace("resolution: [192, 160]", "resolution: [96, 80]")


def _spec() -> dict:
    return json.loads(bpy.data.texts["DenseSynth Spec"].as_string())


def _settings():
    return bpy.context.scene.densesynth


def _mesh(scene) -> np.ndarray:
    mesh = scene.objects["densesynth_person_0"].data
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    return coords.reshape(-1, 3)


def _farm_spec(config_path: Path, seed: int, index: int = 0) -> dict:
    """The farm's own spec of (config, seed, index): no panel, no edit."""
    from densesynth.pipeline import SpecScene
    from densesynth.ui.state import effective_config

    config, config_id = effective_config(str(config_path), "CONFIG", {})
    scene = bpy.data.scenes.new("farm draw")  # a scene of its own: no factory reset of the file
    try:
        return SpecScene(config, scene=scene).draw_spec(config_id, seed, index)
    finally:
        bpy.data.scenes.remove(scene)


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_CONFIG + extra)
    return path


def test_locked_lights_and_backdrop_survive_new_seed(addon, tmp_path):
    config = _config(tmp_path)
    settings = _settings()
    settings.config_path, settings.seed, settings.render_preview = str(config), 3, False
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    old = _spec()
    assert "panel" not in old  # nothing locked yet: the farm's sample
    settings = _settings()
    settings.lock_lights = settings.lock_backdrop = True
    assert bpy.ops.densesynth.new_seed() == {"FINISHED"}
    new = _spec()
    seed = _settings().seed
    assert new["run_seed"] == seed != 3
    assert new["lights"] == old["lights"] and new["backdrop"] == old["backdrop"]
    farm = _farm_spec(config, seed)
    assert farm["lights"] != old["lights"] and farm["backdrop"] != old["backdrop"]  # the lock did something
    # Everything unlocked is the new seed's own draw.
    assert new["persons"] == farm["persons"] and new["persons"] != old["persons"]
    assert new["appearance"] == farm["appearance"] and new["camera"] == farm["camera"]
    assert new["panel"] == {"locked": ["lights", "backdrop"]}

    # Preview again: the locked sections stay; the export is written but not marked done.
    settings = _settings()
    settings.output_dir = str(tmp_path / "out")
    settings.render_preview = True
    assert bpy.ops.densesynth.export_sample() == {"FINISHED"}
    out = tmp_path / "out"
    assert (out / "images" / "00000000.png").is_file() and not (out / "done" / "00000000.json").exists()
    assert _spec()["lights"] == old["lights"]
    written = json.loads((out / "specs" / "00000000.json").read_text())  # the export says what it is
    assert written["panel"]["locked"] == ["lights", "backdrop"] and written["lights"] == old["lights"]

    # Unlocked: the new seed's own lights again, and the farm's sample once more.
    settings = _settings()
    settings.lock_lights = settings.lock_backdrop = False
    settings.render_preview = False
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    assert _spec()["lights"] == farm["lights"] and "panel" not in _spec()


def test_locked_camera_keeps_draws_and_refits(addon, tmp_path):
    config = _config(tmp_path)
    settings = _settings()
    settings.config_path, settings.seed, settings.render_preview = str(config), 4, False
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    old = _spec()
    _settings().lock_camera = True
    assert bpy.ops.densesynth.new_seed() == {"FINISHED"}
    new = _spec()
    draws = lambda camera: {k: v for k, v in camera.items() if k != "fitted"}
    assert draws(new["camera"]) == draws(old["camera"])
    assert new["camera"]["fitted"] != old["camera"]["fitted"]  # fitted to the new person


@pytest.mark.parametrize("low, high", [(0.2, 0.9)])
def test_height_slider_shapes_the_previewed_body(addon, tmp_path, low, high):
    from densesynth.bodies.kinds import load_bodies
    from densesynth.scene.person import pose_person
    from densesynth.ui.state import effective_config

    config = _config(tmp_path)
    settings = _settings()
    settings.config_path, settings.seed, settings.render_preview = str(config), 2, False
    settings.shape_sliders = True
    bodies = load_bodies(effective_config(str(config), "CONFIG", {})[0]["body"])
    heights = {}
    for value in (low, high):
        _settings().shape_height = value
        assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
        spec = _spec()
        assert spec["persons"][0]["body"]["phenotype"]["height"] == pytest.approx(value)
        assert spec["panel"]["shape"]["phenotype"]["height"] == pytest.approx(value)
        shown = _mesh(bpy.context.scene)
        want = pose_person(spec["persons"][0], bodies).vertices
        assert np.abs(shown - want).max() < 1e-4
        heights[value] = float(np.ptp(shown[:, 2]))
        assert heights[value] == pytest.approx(float(np.ptp(want[:, 2])), abs=1e-4)
    assert heights[high] > heights[low] + 0.05, heights


def test_export_range_equals_single_exports(addon, clips, tmp_path):
    config = _config(tmp_path)
    bvh = wild_bvh(tmp_path / "cmu_wild.bvh", frames=12)
    settings = _settings()
    settings.config_path, settings.seed, settings.render_preview = str(config), 6, False
    assert bpy.ops.densesynth.load_motion(filepath=str(bvh), start=3, end=5) == {"FINISHED"}
    _settings().output_dir = str(tmp_path / "range")
    assert bpy.ops.densesynth.export_range() == {"FINISHED"}
    assert _settings().export_status == "done: 3 samples"
    out = tmp_path / "range"
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == ["00000000.png", "00000001.png", "00000002.png"]
    # Each frame alone, Export Current Sample at that frame, into a folder of its own.
    for k, frame in enumerate((3, 4, 5)):
        bpy.context.scene.frame_set(frame)
        _settings().output_dir = str(tmp_path / f"single{frame}")
        assert bpy.ops.densesynth.export_sample() == {"FINISHED"}
        single = (tmp_path / f"single{frame}" / "images" / "00000000.png").read_bytes()
        assert (out / "images" / f"{k:08d}.png").read_bytes() == single, frame
        assert _spec()["persons"][0]["motion"]["frame"] == frame
    assert (out / "images" / "00000000.png").read_bytes() != (out / "images" / "00000002.png").read_bytes()


def test_export_range_without_motion_writes_the_farms_samples(addon, tmp_path):
    config = _config(tmp_path)
    settings = _settings()
    settings.config_path, settings.seed, settings.sample_index, settings.range_count = str(config), 1, 2, 2
    settings.output_dir = str(tmp_path / "out")
    assert bpy.ops.densesynth.export_range() == {"FINISHED"}
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "done").glob("*.json")) == ["00000002.json", "00000003.json"]
    assert _spec()["index"] == 3 and _settings().sample_index == 2
