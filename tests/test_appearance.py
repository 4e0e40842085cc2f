"""Procedural appearance: garments land on the right body parts; seeds fix and vary looks."""
from __future__ import annotations

import numpy as np

from densesynth.appearance.backdrops import horizon_row, procedural_backdrop
from densesynth.appearance.clothing import FEET, TORSO, clothing_texture, uv_part_map
from densesynth.config import default_config
from densesynth.spec.sample_spec import draw_spec


def _spec(index):
    return draw_spec(default_config(), "h", 0, index, lambda s: {"eye": [0, -3, 1], "target": [0, 0, 1], "distance_m": 3})


def test_uv_part_map_paints_each_triangle_with_its_part():
    corner_uv = np.array([[[0.1, 0.1], [0.4, 0.1], [0.1, 0.4]], [[0.6, 0.6], [0.9, 0.6], [0.9, 0.9]]], np.float32)
    part_map = uv_part_map(corner_uv, np.array([3, 17]), 64)
    # Texel centres well inside each triangle (row = V, col = U; row 0 is V = 0).
    assert part_map[int(0.2 * 64), int(0.2 * 64)] == 3
    assert part_map[int(0.7 * 64), int(0.85 * 64)] == 17
    assert set(np.unique(part_map)) == {3, 17}  # empty texels take the nearest island's part


def test_body_part_map_matches_face_centroids(default_body):
    model = default_body.model
    size = 512
    part_map = uv_part_map(model.corner_texture_uv, default_body.face_part, size)
    centroids = model.corner_texture_uv.mean(axis=1)
    areas = 0.5 * np.abs(np.cross(model.corner_texture_uv[:, 1] - model.corner_texture_uv[:, 0],
                                  model.corner_texture_uv[:, 2] - model.corner_texture_uv[:, 0]))
    big = areas > 4.0 / size**2  # faces covering several texels
    rows = np.clip((centroids[big, 1] * size).astype(int), 0, size - 1)
    cols = np.clip((centroids[big, 0] * size).astype(int), 0, size - 1)
    agreement = np.mean(part_map[rows, cols] == default_body.face_part[big])
    assert agreement > 0.97


def test_clothing_is_deterministic_per_seed_and_garments_follow_parts():
    part_map = np.zeros((128, 128), np.uint8)
    part_map[:64] = TORSO[0]
    part_map[64:] = FEET[0]
    a = _spec(0)["appearance"][0]
    first, second = clothing_texture(a, part_map), clothing_texture(a, part_map)
    np.testing.assert_array_equal(first, second)
    shoes = np.asarray(a["shoes"])
    assert np.abs(first[100, :, :3] / shoes - 1).max() < 0.15  # feet wear the shoe colour (with grain)
    looks = {clothing_texture(_spec(i)["appearance"][0], part_map)[:64].mean().round(4) for i in range(6)}
    assert len(looks) == 6


def test_backdrop_horizon_follows_the_camera_and_seeds():
    spec = _spec(1)
    params = spec["backdrop"]
    image = procedural_backdrop(params, 200, 150)
    assert image.shape == (150, 200, 3) and image.min() >= 0 and image.max() <= 1
    np.testing.assert_array_equal(image, procedural_backdrop(params, 200, 150))
    assert not np.array_equal(image, procedural_backdrop(_spec(2)["backdrop"], 200, 150))
    assert horizon_row(100.0, 151, 0.0) == 75.0
    assert horizon_row(100.0, 151, 20.0) < 75.0  # looking down puts the horizon higher
