"""Camera conventions: Blender look-at, OpenCV intrinsics/extrinsics, fitting the person in view."""
from __future__ import annotations

import numpy as np
import pytest

from densesynth.scene.camera import PinholeCamera, fit_camera, look_at, view_direction


def test_look_at_target_projects_to_image_centre_and_axes_follow_opencv():
    cam = PinholeCamera(look_at(np.array([0.0, -5.0, 1.0]), np.array([0.0, 0.0, 1.0])), 50.0, 36.0, 640, 480)
    uv, depth = cam.project(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 2.0]]))
    np.testing.assert_allclose(uv[0], [319.5, 239.5], atol=1e-9)
    np.testing.assert_allclose(depth[0], 5.0)
    assert uv[1, 0] > uv[0, 0]  # world +X is to the right when looking along +Y
    assert uv[2, 1] < uv[0, 1]  # up in the world is up in the image (smaller row)
    f = 50.0 / 36.0 * 640
    np.testing.assert_allclose(uv[1, 0] - uv[0, 0], f * 1.0 / 5.0)


def test_world_to_camera_is_rigid_and_inverse_of_pose():
    c2w = look_at(np.array([2.0, -3.0, 1.5]), np.array([0.1, 0.2, 0.9]), roll_deg=7.0)
    cam = PinholeCamera(c2w, 35.0, 36.0, 512, 512)
    w2c = cam.world_to_camera
    np.testing.assert_allclose(w2c[:3, :3] @ w2c[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(w2c[:3, :3] @ c2w[:3, 3] + w2c[:3, 3], 0.0, atol=1e-12)


def test_view_direction_zero_azimuth_is_in_front_of_the_person():
    np.testing.assert_allclose(view_direction(0.0, 0.0), [0.0, -1.0, 0.0], atol=1e-12)
    assert view_direction(0.0, 30.0)[2] > 0


@pytest.mark.parametrize("seed", range(5))
def test_fitted_camera_keeps_a_body_shaped_cloud_in_frame_at_the_drawn_size(seed):
    rng = np.random.default_rng(seed)
    cloud = rng.uniform([-0.3, -0.15, 0.0], [0.3, 0.15, 1.75], size=(4000, 3))
    draws = {"azimuth_deg": rng.uniform(-180, 180), "elevation_deg": rng.uniform(-5, 35), "roll_deg": 3.0,
             "focal_length_mm": rng.uniform(28, 85), "sensor_width_mm": 36.0,
             "person_height_fraction": 0.6, "offset": [0.03, -0.02]}
    fitted = fit_camera(cloud, draws, 512, 384)
    cam = PinholeCamera(look_at(np.array(fitted["eye"]), np.array(fitted["target"]), 3.0),
                        draws["focal_length_mm"], 36.0, 512, 384)
    uv, depth = cam.project(cloud)
    assert depth.min() > 0
    assert uv[:, 0].min() >= 0 and uv[:, 0].max() <= 511 and uv[:, 1].min() >= 0 and uv[:, 1].max() <= 383
    assert (uv[:, 1].max() - uv[:, 1].min()) / 384 == pytest.approx(0.6, abs=0.06)


def _cloud(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.3, -0.15, 0.0], [0.3, 0.15, 1.75], size=(3000, 3))


def test_named_rig_puts_the_camera_at_its_height_distance_and_azimuth():
    cloud = _cloud()
    rig = {"name": "left_eye", "height_m": 1.6, "distance_m": 4.0, "azimuth_deg": 60.0, "focal_length_mm": 50.0}
    draws = {"rig": rig, "roll_deg": 0.0, "sensor_width_mm": 36.0, "min_visible_fraction": 1.0}
    fitted = fit_camera(cloud, draws, 512, 512)
    eye, target = np.array(fitted["eye"]), np.array(fitted["target"])
    assert eye[2] == pytest.approx(1.6)
    assert np.hypot(*(eye - target)[:2]) == pytest.approx(4.0)
    direction = (eye - target)[:2] / np.hypot(*(eye - target)[:2])
    np.testing.assert_allclose(direction, [np.sin(np.deg2rad(60)), -np.cos(np.deg2rad(60))], atol=1e-9)
    assert fitted["elevation_deg"] == pytest.approx(np.degrees(np.arctan2(1.6 - target[2], 4.0)), abs=1e-4)


def test_min_visible_fraction_allows_truncation_but_never_less():
    from densesynth.scene.camera import visible_fraction

    cloud = _cloud(1)
    base = {"azimuth_deg": 0.0, "elevation_deg": 0.0, "roll_deg": 0.0, "focal_length_mm": 50.0,
            "sensor_width_mm": 36.0, "person_height_fraction": 1.4, "offset": [0.0, 0.0]}
    for wanted in (1.0, 0.7):
        fitted = fit_camera(cloud, {**base, "min_visible_fraction": wanted}, 400, 300)
        cam = PinholeCamera(look_at(np.array(fitted["eye"]), np.array(fitted["target"])), 50.0, 36.0, 400, 300)
        seen = visible_fraction(cam.project(cloud)[0], 400, 300, 0.02)
        assert seen >= wanted
        if wanted < 1.0:
            assert seen < 1.0  # a person drawn larger than the frame is truncated, not shrunk to fit
