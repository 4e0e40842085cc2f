"""The Blender adapter updates every per-sample input between renders in one process."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

LIGHTS = {"sun": {"strength": 3.0, "elevation_deg": 45.0, "azimuth_deg": 0.0, "temperature_k": 6500.0},
          "area": {"power_w": 100.0, "distance_m": 3.0, "azimuth_deg": 0.0, "elevation_deg": 30.0, "size_m": 1.0,
                   "temperature_k": 6500.0},
          "ambient": {"strength": 0.5, "colour": [1.0, 1.0, 1.0]}}


@pytest.fixture(scope="module")
def scene_and_body(default_body):
    from densesynth.render.blender_scene import BlenderScene, PersonMesh
    from densesynth.scene.camera import PinholeCamera, look_at

    model = default_body.model
    scene = BlenderScene(32)
    mesh = PersonMesh(model.faces, default_body.corner_iuv, model.corner_texture_uv, model.num_vertices)
    (slot,) = scene.person_slots(["anny"], {"anny": mesh})
    vertices = model.rest({}).vertices.copy()
    vertices[:, 2] -= vertices[:, 2].min()
    slot.set_vertices(vertices)
    scene.set_camera(PinholeCamera(look_at(np.array([0.0, -3.0, 0.9]), np.array([0.0, 0.0, 0.9])), 50.0, 36.0, 64, 64))
    scene.set_lights(LIGHTS, vertices.mean(axis=0))
    return scene, slot, vertices


SPEC = {"stem": "x", "render": {"beauty_samples": 2, "denoise": False, "cycles_seed": 0, "shadow_catcher": False,
                                "adaptive_threshold": 0.01, "max_bounces": 4, "light_tree": True,
                                "denoise_quality": "high", "denoise_prefilter": "accurate"}}


def render(scene, name: str, path) -> None:
    from densesynth.passes import get_pass

    scene.render_pass(get_pass(name).blender_setup(SPEC), path)


def body_colour(scene, path) -> np.ndarray:
    render(scene, "beauty", path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image[image[..., 3] > 0][:, 2::-1].mean(axis=0)  # RGB


def test_texture_changes_reach_the_render(scene_and_body, tmp_path):
    scene, slot, _ = scene_and_body
    colours = []
    for rgb in ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]):
        texture = np.ones((32, 32, 4), np.float32)
        texture[..., :3] = rgb
        slot.set_texture(texture, 0.5)
        colours.append(body_colour(scene, tmp_path / "beauty.png"))
    assert colours[0][0] > colours[0][2] + 50  # red clothes look red
    assert colours[1][2] > colours[1][0] + 50  # then blue clothes look blue


def test_vertex_updates_reach_the_label_pass(scene_and_body, tmp_path):
    from iuv_compare import read_exr_rgba

    scene, slot, vertices = scene_and_body
    render(scene, "iuv", tmp_path / "a.exr")
    slot.set_vertices(vertices + np.array([0.4, 0.0, 0.0]))
    render(scene, "iuv", tmp_path / "b.exr")
    slot.set_vertices(vertices)
    cols_a = np.nonzero(read_exr_rgba(tmp_path / "a.exr")[..., 3].any(axis=0))[0]
    cols_b = np.nonzero(read_exr_rgba(tmp_path / "b.exr")[..., 3].any(axis=0))[0]
    assert cols_b.mean() > cols_a.mean() + 5  # the person moved right in the image


def test_a_pass_leaves_no_setting_behind(scene_and_body, tmp_path):
    """Every value a pass sets is restored after its render: nothing leaks into the next pass."""
    from densesynth.passes import get_pass, pass_names
    from densesynth.render.blender_scene import _resolve

    scene = scene_and_body[0]
    for name in (n for n in pass_names() if get_pass(n).renders):
        setup = get_pass(name).blender_setup(SPEC)
        before = {dotted: getattr(*_resolve(scene.scene, dotted)) for dotted, _ in setup.settings}
        override, ground = scene.scene.view_layers[0].material_override, scene.ground.hide_render
        render(scene, name, tmp_path / f"{name}{get_pass(name).raw[1]}")
        assert {dotted: getattr(*_resolve(scene.scene, dotted)) for dotted, _ in setup.settings} == before, name
        assert scene.scene.view_layers[0].material_override == override and scene.ground.hide_render == ground


def test_texture_changes_reach_a_persistent_data_render(scene_and_body, tmp_path):
    """With persistent data Cycles keeps the scene between renders; a new texture must still show
    (the earlier bug: every person wore the first sample's clothes)."""
    scene, slot, _ = scene_and_body
    scene.scene.render.use_persistent_data = True
    try:
        colours = []
        for rgb in ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]):
            texture = np.ones((32, 32, 4), np.float32)
            texture[..., :3] = rgb
            slot.set_texture(texture, 0.5)
            render(scene, "iuv", tmp_path / "iuv.exr")  # a label pass between, as in a sample
            colours.append(body_colour(scene, tmp_path / "beauty.png"))
    finally:
        scene.scene.render.use_persistent_data = False
    assert colours[0][0] > colours[0][2] + 50
    assert colours[1][2] > colours[1][0] + 50
    assert colours[2][1] > colours[2][0] + 50
