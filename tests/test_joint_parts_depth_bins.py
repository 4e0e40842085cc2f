"""SURREAL's parts by joint and quantised depth (issue 10), against independent expectations.

* The quantisation is SURREAL's training code written out by hand on chosen depths.
* anny's joint table is checked against DensePose's charts, which are built by a different
  rule (bone-name segments, smoothing, votes): each limb chart must lie on its own joint.
* SMPL's table is the skinning weights' argmax, recomputed face by face.
* Rendered maps are checked pixel by pixel against the independent rasteriser's hit face and
  z-buffer on the debug geometry, away from silhouettes and label edges.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from iuv_compare import one_part
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, assert_one_line_error, run_render


def test_quantised_depth_follows_surreal():
    from densesynth.passes.depth_bins import quantise_depth

    # SURREAL (training/loader_SURREAL.lua): clamp(ceil((z - z_pelvis) / 0.045), -9, 9) + 10; background 0.
    depth = np.array([[2.0, 2.01, 1.99, 2.046, 2.09, 3.0, 1.0, 0.0]])
    body = np.array([[True] * 7 + [False]])
    got = quantise_depth(depth, np.full(depth.shape, 2.0), body, 19, 0.045)
    assert got.tolist() == [[10, 11, 10, 12, 12, 19, 1, 0]]


def test_joint_part_flip_swaps_sides():
    from densesynth.core.parts import JOINT_PART_FLIP, JOINT_PART_NAMES

    assert len(JOINT_PART_NAMES) == 25
    for part, mirror in enumerate(JOINT_PART_FLIP):
        assert JOINT_PART_FLIP[mirror] == part
        name, other = JOINT_PART_NAMES[part], JOINT_PART_NAMES[mirror]
        if name.startswith("left"):
            assert other == "right" + name[4:]
        elif not name.startswith("right"):
            assert mirror == part


# DensePose fine parts (core/parts.py) -> the SMPL joints (0-based) whose skinning region they are.
LIMB_JOINTS = {
    (8, 10): {1}, (7, 9): {2},              # upper legs: left_hip, right_hip
    (12, 14): {4}, (11, 13): {5},           # lower legs: left_knee, right_knee
    (5,): {7, 10}, (6,): {8, 11},           # feet: ankle, foot (toes)
    (15, 17): {16}, (16, 18): {17},         # upper arms: left_shoulder, right_shoulder
    (19, 21): {18}, (20, 22): {19},         # lower arms: elbows
    (4,): {20, 22}, (3,): {21, 23},         # hands: wrist, hand (fingers)
    (23, 24): {12, 15},                     # head: neck, head
}


def test_anny_joint_table_agrees_with_densepose_charts(default_body):
    table = default_body.face_joints({})
    assert table.shape == (len(default_body.faces),) and table.min() >= 0 and table.max() <= 23
    for parts, joints in LIMB_JOINTS.items():
        on_chart = np.isin(default_body.face_part, parts)
        share = float(np.isin(table[on_chart], list(joints)).mean())
        assert share >= 0.9, (parts, joints, share)  # measured 0.94 (upper arms) to 0.999
    assert len(np.unique(table)) == 24  # every joint owns some surface


def test_smpl_joint_table_is_the_weights_argmax(tmp_path):
    from smpl_synthetic import make_arrays, write_npz

    from densesynth.bodies.smpl_body import SmplPeople

    arrays = make_arrays(seed=3)
    write_npz(tmp_path / "SMPL_FEMALE.npz", arrays)
    people = SmplPeople.load(str(tmp_path), ("female",))
    table = people.face_joints({"gender": "female"})
    weights, faces = arrays["weights"], np.asarray(arrays["f"]).astype(np.int64)
    for face in np.random.default_rng(0).choice(len(faces), 200, replace=False):
        summed = [sum(weights[v, j] for v in faces[face]) for j in range(24)]
        assert table[face] == int(np.argmax(summed))


@pytest.mark.blender
def test_rendered_joint_parts_and_depth_bins_agree_with_the_rasteriser(tmp_path, default_body):
    config = tmp_path / "surreal.yaml"
    config.write_text(TEST_CONFIG + "passes: [beauty, iuv, person_index, depth, surface, joint_parts, depth_bins]\n"
                      "people:\n  count: [2, 2]\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 29, config, "--debug-geometry", "--workers", "0", "--resolution", "256x224")
    assert result.returncode == 0, result.stderr[-3000:]
    table = default_body.face_joints({})
    for index in range(2):
        stem = f"{index:08d}"
        geometry = dict(np.load(out / "geometry" / f"{stem}.npz"))
        reference = rasterise_iuv(geometry)
        owner = geometry["person_of_face"]
        first_face = {p: int(np.flatnonzero(owner == p)[0]) for p in np.unique(owner)}
        hit = reference["face"]
        seen = hit >= 0
        expected = np.zeros(hit.shape, dtype=np.int64)
        expected[seen] = table[hit[seen] - np.array([first_face[p] for p in owner[hit[seen]]])] + 1
        parts = cv2.imread(str(out / "joint_parts" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert parts.dtype == np.uint8 and parts.shape == hit.shape
        assert np.array_equal(parts > 0, cv2.imread(str(out / "labels24" / f"{stem}.png"), cv2.IMREAD_UNCHANGED) > 0)
        scored = one_part(expected) & one_part(reference["I"])
        assert scored.sum() > 300
        agreement = float(np.mean(parts[scored] == expected[scored]))
        assert agreement >= 0.995, (stem, agreement)

        # Quantised depth: SURREAL's formula on the rasteriser's depth, around each person's hips.
        T = geometry["world_to_camera"]
        hips = geometry["keypoints"][:, [11, 12]].mean(axis=1)
        pelvis_z = hips @ T[2, :3] + T[2, 3]
        zp = np.zeros(hit.shape)
        zp[seen] = pelvis_z[owner[hit[seen]]]
        want = np.zeros(hit.shape, dtype=np.int64)
        want[seen] = np.clip(np.ceil((reference["depth"][seen] - zp[seen]) / 0.045), -9, 9) + 10
        bins = cv2.imread(str(out / "depth_bins" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert bins.max() <= 19 and np.array_equal(bins > 0, parts > 0)
        scored = one_part(want) & one_part(reference["person"] + 1)
        assert scored.sum() > 300
        agreement = float(np.mean(bins[scored] == want[scored]))
        assert agreement >= 0.995, (stem, agreement)
        assert len(np.unique(bins[bins > 0])) >= 3  # a body spans several bins


def test_even_bin_count_is_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(TEST_CONFIG + "depth_bins:\n  bins: 18\n")
    result = run_render(tmp_path / "run", 1, 0, config)
    assert_one_line_error(result, "depth_bins.bins", "odd")
