"""The NumPy body against `anny` itself (the oracle): rest shapes, skinning, keypoints."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
anny = pytest.importorskip("anny")
roma = pytest.importorskip("roma")


@pytest.fixture(scope="module")
def oracle():
    model = anny.Anny()
    model.eval()
    return model


@pytest.fixture(scope="module")
def body(anny_archive):
    from densesynth.bodies.body_model import AnnyBody

    return AnnyBody.load(anny_archive)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rest_and_posed_mesh_match_anny(body, oracle, seed):
    rng = np.random.default_rng(seed)
    phenotype = {k: float(rng.uniform(0.0, 1.0)) for k in ("gender", "age", "muscle", "weight", "height", "proportions")}
    bones = len(body.bone_labels)
    rotations = roma.rotvec_to_rotmat(torch.tensor(rng.normal(0, 0.35, (1, bones, 3)), dtype=torch.float64))
    pose = torch.eye(4, dtype=torch.float64).repeat(1, bones, 1, 1)
    pose[..., :3, :3] = rotations
    pose[:, 0] = torch.eye(4)
    with torch.no_grad():
        out = oracle.to(torch.float64)(pose_parameters=pose, phenotype_kwargs=phenotype)
    rest = body.rest(phenotype)
    np.testing.assert_allclose(rest.vertices, out["rest_vertices"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(rest.bone_heads, out["rest_bone_poses"][0, :, :3, 3].numpy(), atol=1e-5)
    bone_poses = out["bone_poses"][0].numpy()
    rest_poses = out["rest_bone_poses"][0].numpy()
    deltas = bone_poses[:, :3, :3] @ np.transpose(rest_poses[:, :3, :3], (0, 2, 1))
    vertices, heads = body.pose(rest, deltas)
    # anny puts the root at the pose's own translation; ours keeps it at its rest head.
    shift = bone_poses[0, :3, 3] - heads[0]
    np.testing.assert_allclose(heads + shift, bone_poses[:, :3, 3], atol=1e-4)
    np.testing.assert_allclose(vertices + shift, out["vertices"][0].numpy(), atol=1e-4)


def test_keypoints_match_anny_regressor(body, oracle):
    regressor = anny.KeypointsRegressor.coco(oracle)
    with torch.no_grad():
        out = oracle.to(torch.float64)(phenotype_kwargs={"height": 0.8})
        expected = regressor.to(torch.float64)({"vertices": out["rest_vertices"]})[0].numpy()
    vertices = body.rest({"height": 0.8}).vertices
    np.testing.assert_allclose(body.keypoints(vertices), expected, atol=1e-4)


def test_unknown_phenotype_is_rejected(body):
    with pytest.raises(ValueError, match="tallness"):
        body.rest({"tallness": 0.5})
