"""Light from the photograph (issue 13): the backdrop as the world's environment map.

The map must put each part of the photograph in the direction the camera sees it (checked on a
half-red, half-blue photograph against the camera's own geometry), and a person rendered under
it must take the photograph's colour cast and its light direction (a real Cycles render:
Blender's equirectangular convention is what is tested there).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from densesynth.appearance.photo_light import environment_map, map_directions, srgb_to_linear
from densesynth.scene.camera import PinholeCamera, look_at

CAMERA = PinholeCamera(look_at(np.array([0.0, -3.0, 0.9]), np.array([0.0, 0.0, 0.9])), 50.0, 36.0, 96, 96)


def half_photo(left, right) -> np.ndarray:
    photo = np.zeros((96, 96, 3), np.float32)
    photo[:, :48], photo[:, 48:] = left, right
    return photo


def texel(env: np.ndarray, direction) -> np.ndarray:
    """The map's value at the texel whose direction is nearest `direction`."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    dots = map_directions((env.shape[1], env.shape[0])) @ d
    row, col = np.unravel_index(np.argmax(dots), dots.shape)
    return env[row, col, :3]


def test_the_map_puts_the_photograph_where_the_camera_sees_it():
    env = environment_map(half_photo([1.0, 0.0, 0.0], [0.0, 0.0, 0.3]), CAMERA.K, CAMERA.world_to_camera)
    # The camera looks along +y with +x to its right: the photograph's left half is the world's -x.
    assert texel(env, [-1.0, 1.0, 0.0])[0] > 0.9 and texel(env, [1.0, 1.0, 0.0])[2] > 0.05
    assert texel(env, [1.0, 1.0, 0.0])[0] < 0.05
    # Behind the camera, the mirror image: the left stays on the left.
    assert texel(env, [-1.0, -1.0, 0.0])[0] > 0.9 and texel(env, [1.0, -1.0, 0.0])[0] < 0.05
    # Linear radiance: the dark blue (0.3 in sRGB) is 0.073 in linear light.
    assert texel(env, [1.0, 1.0, 0.0])[2] == pytest.approx(float(srgb_to_linear(np.float32(0.3))), abs=0.01)


def test_map_directions_invert_blenders_equirectangular_mapping():
    d = map_directions((8, 4)).reshape(-1, 3)
    u = -np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi) + 0.5
    v = np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])) / np.pi + 0.5
    cols, rows = np.meshgrid((np.arange(8) + 0.5) / 8, (np.arange(4) + 0.5) / 4)
    np.testing.assert_allclose(u, cols.ravel(), atol=1e-9)
    np.testing.assert_allclose(v, rows.ravel(), atol=1e-9)


@pytest.fixture(scope="module")
def lit_scene(default_body):
    pytest.importorskip("bpy")
    from densesynth.render.blender_scene import BlenderScene, PersonMesh

    model = default_body.model
    scene = BlenderScene(16, persistent_data=True)
    mesh = PersonMesh(model.faces, default_body.corner_iuv, model.corner_texture_uv, model.num_vertices)
    (slot,) = scene.person_slots(["anny"], {"anny": mesh})
    vertices = model.rest({}).vertices.copy()
    vertices[:, 2] -= vertices[:, 2].min()
    slot.set_vertices(vertices)
    slot.set_texture(np.ones((16, 16, 4), np.float32) * 0.8, 0.6)
    scene.set_camera(CAMERA)
    return scene, vertices


def person_rgb(scene, lights, environment, path) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB of the left and right halves of the person in the rendered image."""
    from densesynth.passes import get_pass

    scene.set_lights(lights, np.array([0.0, 0.0, 0.9]), 1.0, environment)
    spec = {"stem": "x", "render": {"beauty_samples": 16, "denoise": False, "cycles_seed": 0, "shadow_catcher": False,
                                    "adaptive_threshold": 0.0, "max_bounces": 4, "light_tree": True,
                                    "denoise_quality": "high", "denoise_prefilter": "accurate"}}
    scene.render_pass(get_pass("beauty").blender_setup(spec), path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(float)
    person = image[..., 3] > 200
    cols = np.nonzero(person.any(axis=0))[0]
    middle = 0.5 * (cols.min() + cols.max())
    left = person & (np.arange(image.shape[1]) < middle)[None, :]
    right = person & (np.arange(image.shape[1]) >= middle)[None, :]
    return image[left][:, 2::-1].mean(axis=0), image[right][:, 2::-1].mean(axis=0)


@pytest.mark.blender
def test_a_person_takes_the_photographs_colour_and_light_direction(lit_scene, tmp_path):
    scene, _ = lit_scene
    dark = {"sun": {"strength": 0.0, "elevation_deg": 45.0, "azimuth_deg": 0.0, "temperature_k": 6500.0},
            "area": {"power_w": 0.0, "distance_m": 3.0, "azimuth_deg": 0.0, "elevation_deg": 30.0, "size_m": 1.0,
                     "temperature_k": 6500.0},
            "ambient": {"strength": 0.5, "colour": [1.0, 1.0, 1.0]},
            "environment": {"kind": "photo", "strength": 1.5}}
    camera = (CAMERA.K, CAMERA.world_to_camera)
    reddish = environment_map(np.full((96, 96, 3), [0.9, 0.5, 0.4], np.float32), *camera)
    bluish = environment_map(np.full((96, 96, 3), [0.4, 0.5, 0.9], np.float32), *camera)
    red_left, red_right = person_rgb(scene, dark, reddish, tmp_path / "red.png")
    blue_left, blue_right = person_rgb(scene, dark, bluish, tmp_path / "blue.png")
    red, blue = red_left + red_right, blue_left + blue_right
    assert red[0] > red[2] * 1.3 and blue[2] > blue[0] * 1.3  # the colour cast of the photograph
    # Bright on the photograph's left only: the person's left half (in the image) is the lit one.
    # (and with the halves swapped, the right one: the map's orientation is Blender's).
    sided = environment_map(half_photo([1.0, 1.0, 1.0], [0.02, 0.02, 0.02]), *camera)
    left, right = person_rgb(scene, dark, sided, tmp_path / "sided.png")
    swapped = environment_map(half_photo([0.02, 0.02, 0.02], [1.0, 1.0, 1.0]), *camera)
    left_swapped, right_swapped = person_rgb(scene, dark, swapped, tmp_path / "swapped.png")
    assert left.mean() > right.mean() * 1.08 and right_swapped.mean() > left_swapped.mean() * 1.08, \
        (left, right, left_swapped, right_swapped)
    # Without an environment the spec's ambient colour lights the person, as before.
    plain = {k: v for k, v in dark.items() if k != "environment"}
    grey_left, grey_right = person_rgb(scene, plain, None, tmp_path / "grey.png")
    grey = grey_left + grey_right
    assert abs(grey[0] - grey[2]) < 0.1 * grey.mean()
