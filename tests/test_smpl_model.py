"""SMPL's forward model in NumPy against `smplx` (the oracle), and shape sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from densesynth.bodies.smpl_files import load_smpl
from densesynth.bodies.smpl_model import SmplModel, rodrigues
from densesynth.bodies.smpl_shapes import BETA_CLIP, sample_betas, sample_gender, sample_smpl_shape
from smpl_synthetic import make_arrays, write_chumpy_pickle


@pytest.fixture(scope="module")
def arrays():
    return make_arrays(seed=11)


@pytest.fixture(scope="module")
def model(arrays, tmp_path_factory):
    path = write_chumpy_pickle(tmp_path_factory.mktemp("smpl") / "SMPL_MALE.pkl", arrays)
    return SmplModel(load_smpl(path, "male"))


@pytest.fixture(scope="module")
def oracle(arrays):
    torch = pytest.importorskip("torch")
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct

    layer = smplx.SMPL(model_path="", data_struct=Struct(**arrays), num_betas=10, dtype=torch.float64)

    def run(betas, pose, trans):
        with torch.no_grad():
            out = layer(betas=torch.tensor(betas)[None], global_orient=torch.tensor(pose[:3])[None],
                        body_pose=torch.tensor(pose[3:])[None], transl=torch.tensor(trans)[None])
        return out.vertices[0].numpy(), out.joints[0, :24].numpy()

    return run


@pytest.mark.parametrize("seed, pose_scale", [(0, 0.0), (1, 0.3), (2, 1.0), (3, 2.5)])
def test_forward_matches_smplx(model, oracle, seed, pose_scale):
    rng = np.random.default_rng(seed)
    betas = rng.normal(0.0, 1.5, 10)
    pose = rng.normal(0.0, pose_scale, 72)
    trans = rng.normal(0.0, 1.0, 3)
    ours = model.forward(betas, pose, trans)
    vertices, joints = oracle(betas, pose, trans)
    assert np.abs(ours.vertices - vertices).max() < 1e-5
    assert np.abs(ours.joints - joints).max() < 1e-5
    # the comparison is not vacuous: the pose moves the mesh, the correctives matter
    if pose_scale:
        assert np.abs(ours.vertices - model.rest(betas)[0] - trans).max() > 1e-2


def test_rest_shape_and_joint_regression(model, arrays):
    rng = np.random.default_rng(5)
    betas = rng.normal(size=10)
    vertices, joints = model.rest(betas)
    expected = arrays["v_template"] + arrays["shapedirs"] @ betas
    np.testing.assert_allclose(vertices, expected, atol=1e-12)
    np.testing.assert_allclose(joints, arrays["J_regressor"] @ expected, atol=1e-12)
    np.testing.assert_allclose(model.rest_joints(betas), joints, atol=1e-12)
    np.testing.assert_allclose(model.rest(betas[:4])[0], model.rest(np.r_[betas[:4], np.zeros(6)])[0])
    with pytest.raises(ValueError):
        model.rest(np.zeros(11))
    out = model.forward(betas)  # zero pose: the rest mesh, no corrective
    np.testing.assert_allclose(out.vertices, vertices, atol=1e-12)
    np.testing.assert_allclose(out.joints, joints, atol=1e-12)


def test_root_rotation_is_rigid_about_the_root_joint(model):
    betas = np.linspace(-1, 1, 10)
    rest_vertices, rest_joints = model.rest(betas)
    pose = np.zeros(72)
    pose[:3] = [0.3, -1.2, 0.5]
    out = model.forward(betas, pose)  # the root drives no pose corrective
    rot = rodrigues(pose[:3])
    np.testing.assert_allclose(out.vertices, (rest_vertices - rest_joints[0]) @ rot.T + rest_joints[0], atol=1e-10)
    np.testing.assert_allclose(out.world_rotations[5], rot, atol=1e-12)


def test_rodrigues():
    from scipy.spatial.transform import Rotation

    vecs = np.random.default_rng(0).normal(size=(50, 3)) * 2
    vecs[0] = 0
    np.testing.assert_allclose(rodrigues(vecs), Rotation.from_rotvec(vecs).as_matrix(), atol=1e-12)


def test_shape_sampling_is_plain_clipped_and_seeded():
    draws = [sample_betas(np.random.default_rng(s)) for s in range(400)]
    flat = np.array(draws)
    assert flat.shape == (400, 10) and all(type(v) is float for v in draws[0])
    assert np.abs(flat).max() <= BETA_CLIP
    assert abs(flat.mean()) < 0.05 and abs(flat.std() - 1.0) < 0.05
    assert sample_betas(np.random.default_rng(9)) == sample_betas(np.random.default_rng(9))
    assert np.abs(sample_betas(np.random.default_rng(1), std=10.0)).max() == BETA_CLIP
    genders = {sample_gender(np.random.default_rng(s)) for s in range(20)}
    assert genders == {"female", "male"}
    assert sample_gender(np.random.default_rng(0), "male") == "male"
    with pytest.raises(ValueError):
        sample_gender(np.random.default_rng(0), "other")
    record = sample_smpl_shape(np.random.default_rng(3), "random", num_betas=5)
    assert json.loads(json.dumps(record)) == record and len(record["betas"]) == 5


def test_smpl_body_kind(arrays, tmp_path):
    from densesynth.bodies.smpl_model import SMPL_TO_BLENDER, SmplBody
    from smpl_synthetic import write_npz

    write_npz(tmp_path / "SMPL_FEMALE.npz", arrays)
    body = SmplBody.load(tmp_path, "female")
    assert body.model.gender == "female" and body.num_vertices == 6890
    assert body.corner_iuv.shape == (13776, 3, 3) and body.corner_texture_uv.shape == (13776, 3, 2)
    assert body.face_part.min() == 1 and body.face_part.max() == 24
    np.testing.assert_array_equal(body.corner_iuv[:, :, 0], np.repeat(body.face_part[:, None], 3, axis=1))
    pose = np.random.default_rng(2).normal(0, 0.4, 72)
    smpl = body.pose(np.zeros(10), pose, blender=False)
    world = body.pose(np.zeros(10), pose)
    # SMPL (x, y, z) is Blender (x, -z, y): up is +Z, the person faces -Y
    np.testing.assert_allclose(world.vertices[:, 0], smpl.vertices[:, 0])
    np.testing.assert_allclose(world.vertices[:, 1], -smpl.vertices[:, 2])
    np.testing.assert_allclose(world.vertices[:, 2], smpl.vertices[:, 1])
    assert np.isclose(np.linalg.det(SMPL_TO_BLENDER), 1.0)
    keypoints = body.keypoints(world.vertices, world.joints)
    assert keypoints.shape == (17, 3)
    np.testing.assert_allclose(keypoints[0], world.vertices[332])
    np.testing.assert_allclose(keypoints[5], world.joints[16])
    with pytest.raises(Exception) as info:
        SmplBody.load(tmp_path, "male")
    assert "male" in str(info.value)
