"""The Blender SMPL rig deforms exactly like the NumPy SMPL model, pose correctives included."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def rig_and_model():
    import bpy
    from smpl_synthetic import make_arrays

    from densesynth.bodies.smpl_files import SmplArrays
    from densesynth.bodies.smpl_model import SmplModel
    from densesynth.motion.smpl_skeleton import JOINT_NAMES
    from densesynth.render.smpl_rig import build_smpl_rig

    raw = make_arrays(seed=3)
    # Realistic scale: joints regressed from a body-sized template, small blend shapes.
    parents = raw["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    arrays = SmplArrays(path=None, gender="neutral", v_template=raw["v_template"], shapedirs=raw["shapedirs"],
                        posedirs=raw["posedirs"], J_regressor=raw["J_regressor"], weights=raw["weights"],
                        parents=parents, faces=raw["f"].astype(np.int64))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = build_smpl_rig(bpy.context.scene, arrays.v_template, arrays.shapedirs, arrays.posedirs,
                         arrays.J_regressor, arrays.weights, arrays.parents, arrays.faces, list(JOINT_NAMES))
    return rig, SmplModel(arrays)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluated_rig_equals_numpy_forward_model(rig_and_model, seed):
    from densesynth.render.smpl_rig import SMPL_TO_BLENDER

    rig, model = rig_and_model
    rng = np.random.default_rng(seed)
    betas, pose, trans = rng.normal(0, 1, 10), rng.normal(0, 0.4, 72), rng.normal(0, 0.5, 3)
    rig.set_shape(betas)
    rig.set_pose(pose, trans)
    expected = model.forward(betas, pose, trans).vertices @ SMPL_TO_BLENDER.T
    np.testing.assert_allclose(rig.evaluated_vertices(), expected, atol=1e-4)


def test_reshaping_moves_the_joints_and_correctives_follow_the_pose(rig_and_model):
    from densesynth.render.smpl_rig import SMPL_TO_BLENDER

    rig, model = rig_and_model
    betas = np.linspace(-2, 2, 10)
    rig.set_shape(betas)
    heads = np.array([rig.armature.data.bones[name].head_local for name in rig.joint_names])
    np.testing.assert_allclose(heads, model.rest_joints(betas) @ SMPL_TO_BLENDER.T, atol=1e-5)
    pose = np.zeros(72)
    pose[3 * 18 : 3 * 18 + 3] = [0.0, 0.0, 1.2]  # bend one elbow
    rig.set_pose(pose)
    keys = rig.mesh.data.shape_keys.key_blocks
    import bpy

    bpy.context.view_layer.update()
    assert abs(keys["pose_18_00"].value - (np.cos(1.2) - 1.0)) < 1e-5  # R[0][0] - 1 of the elbow
    assert abs(keys["pose_05_00"].value) < 1e-9  # an unposed joint's correctives stay zero
