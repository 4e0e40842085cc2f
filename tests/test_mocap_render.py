"""Converted mocap in a render: drawn from a clip folder, upright and facing like the source."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_mocap_bvh import MIXAMO_MAP, SMPL_TO_ZUP, _yawed, names_from, short, write_bvh

from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS

from conftest import REPO, TEST_CONFIG, run_render

pytestmark = pytest.mark.blender
HIPS = (11, 12)  # COCO left_hip, right_hip
NOSE = 0


@pytest.mark.parametrize("body", ["anny", "smpl"])
def test_converted_clip_renders_upright_and_facing_the_source_direction(tmp_path, anny_archive, body):
    clip = _yawed(short("walk", 1.0), 90.0)  # faces and walks towards +X (SMPL frame = render +X)
    bvh = tmp_path / "walk_zup.bvh"
    write_bvh(bvh, clip, np.array(GENERIC_REST_JOINTS), names_from(MIXAMO_MAP), unit=0.01, basis=SMPL_TO_ZUP, fps=60)
    clips = tmp_path / "clips"
    clips.mkdir()
    converted = subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(bvh), "--out",
                                str(clips / "walk.npz"), "--fps", "30"], cwd=REPO, capture_output=True, text=True)
    assert converted.returncode == 0, converted.stderr
    body_config = ""
    if body == "smpl":
        from smpl_synthetic import make_arrays, write_npz

        arrays = make_arrays(seed=2)
        arrays["v_template"] = arrays["v_template"] * np.array([0.2, 0.5, 0.1]) + np.array([0.0, 0.9, 0.0])
        # Real joints: the first 24 vertices stand on the generic skeleton's joints and the
        # regressor picks them, so SMPL's hips and head mean what they say.
        arrays["v_template"][:24] = GENERIC_REST_JOINTS
        arrays["shapedirs"][:24] = 0.0
        arrays["J_regressor"] = np.eye(24, len(arrays["v_template"]))
        write_npz(tmp_path / "SMPL_MALE.npz", arrays)
        body_config = f"body:\n  kind: smpl\n  smpl_dir: {tmp_path}\n  gender: male\n"
    config = tmp_path / "mocap.yaml"
    config.write_text(TEST_CONFIG + f"motion:\n  clips: []\n  clip_folders: [{clips}]\n  mirror_probability: 0.0\n"
                      + body_config)
    out = tmp_path / "run"
    result = run_render(out, 3, 9, config, "--debug-geometry")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "quality filter" in result.stderr  # the skipped-frame report
    for index in range(3):
        spec = json.loads((out / "specs" / f"{index:08d}.json").read_text())
        motion = spec["persons"][0]["motion"]
        assert motion["source"] == "folder" and motion["clip"] == "walk.npz" and isinstance(motion["frame"], int)
        keypoints = np.load(out / "geometry" / f"{index:08d}.npz")["keypoints"][0]  # render world: Z up
        hips = keypoints[list(HIPS)]
        head = keypoints[NOSE] if body == "anny" else keypoints[5:7].mean(axis=0)  # SMPL blob: shoulders
        assert head[2] > hips[:, 2].mean() + 0.3
        left = hips[0] - hips[1]
        forward = np.cross(left, [0.0, 0.0, 1.0])
        forward /= np.linalg.norm(forward)
        assert forward @ np.array([1.0, 0.0, 0.0]) > 0.9, forward


def test_lying_rig_renders_on_the_floor_facing_like_the_source(tmp_path, anny_archive):
    """A second family through the real converter and renderer: a Maya-style rig lying along
    +X at zero rotation, its capture turned to face -Z (a heading the contact sheet showed
    lost), standing on its feet in every frame. The rendered body has its head above its
    hips, its lowest vertex on the floor, and the source's heading at the drawn frame."""
    from test_mocap_wild import (CMU_HIERARCHY, MIXAMO, make_motion, on_its_feet, parse_hierarchy, renamed,
                                 turn_bvh_motion, write_lying_rig)

    text = renamed(CMU_HIERARCHY, MIXAMO)
    names, _, _, chans = parse_hierarchy(text)
    motion = on_its_feet(turn_bvh_motion(make_motion(names, chans, seed=5), chans, 180.0), text)
    bvh = tmp_path / "maya.bvh"
    names2, src, _ = write_lying_rig(bvh, motion)
    forward = np.cross(src[:, names2.index("LeftUpLeg")] - src[:, names2.index("RightUpLeg")], [0.0, 1.0, 0.0])
    expected = forward @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # SMPL -> render (Z up)
    clips = tmp_path / "clips"
    clips.mkdir()
    converted = subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(bvh), "--out",
                                str(clips / "maya.npz")], cwd=REPO, capture_output=True, text=True)
    assert converted.returncode == 0, converted.stderr
    config = tmp_path / "mocap.yaml"
    config.write_text(TEST_CONFIG + f"motion:\n  clips: []\n  clip_folders: [{clips}]\n  mirror_probability: 0.0\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 4, config, "--debug-geometry")
    assert result.returncode == 0, result.stderr[-2000:]
    for index in range(2):
        frame = json.loads((out / "specs" / f"{index:08d}.json").read_text())["persons"][0]["motion"]["frame"]
        geometry = np.load(out / "geometry" / f"{index:08d}.npz")
        keypoints = geometry["keypoints"][0]
        hips = keypoints[list(HIPS)]
        assert keypoints[NOSE, 2] > hips[:, 2].mean() + 0.3  # upright
        assert abs(geometry["vertices"][:, 2].min()) < 0.01  # on the floor
        got = np.cross(hips[0] - hips[1], [0.0, 0.0, 1.0])
        want = expected[frame] * np.array([1.0, 1.0, 0.0])
        cos = got @ want / np.linalg.norm(got) / np.linalg.norm(want)
        assert cos > np.cos(np.radians(20.0)), (frame, got, want)
