"""Keypoint visibility on the real body, in a case whose answer is known: the left forearm
bent behind the back is hidden from the front and visible from behind."""
from __future__ import annotations

import numpy as np
import pytest
from rasteriser import rasterise_iuv
from scipy.spatial.transform import Rotation

from densesynth.core.parts import COCO_KEYPOINT_NAMES, KEYPOINT_PARTS, SURFACE_KEYPOINTS
from densesynth.annotate.visibility import keypoint_visibility
from densesynth.motion.retarget import ANNY_JOINT_MAP, retarget_pose
from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX
from densesynth.scene.camera import PinholeCamera, fit_camera

TORSO = {1, 2}


def arm_behind_back_pose() -> np.ndarray:
    """SMPL pose: left arm lowered and swung back, elbow bent so the forearm crosses the back;
    right arm lowered to the side, in view."""
    pose = np.zeros((24, 3))
    shoulder = Rotation.from_euler("x", 35, degrees=True) * Rotation.from_euler("z", -80, degrees=True)
    pose[JOINT_INDEX["left_shoulder"]] = shoulder.as_rotvec()
    pose[JOINT_INDEX["left_elbow"]] = Rotation.from_euler("z", -95, degrees=True).as_rotvec()
    pose[JOINT_INDEX["right_shoulder"]] = Rotation.from_euler("z", 75, degrees=True).as_rotvec()
    return pose.ravel()


@pytest.fixture(scope="module")
def posed(default_body):
    model = default_body.model
    rest = model.rest({})
    target = retarget_pose(arm_behind_back_pose(), None, rest.bone_heads, model.bone_parents, model.bone_labels,
                           ANNY_JOINT_MAP, source_rest_joints=GENERIC_REST_JOINTS)
    vertices, _ = model.pose(rest, target.world_rotations)
    vertices[:, 2] -= vertices[:, 2].min()
    return vertices, model.keypoints(vertices)[:17]


def view(vertices, azimuth_deg):
    draws = {"azimuth_deg": azimuth_deg, "elevation_deg": 0.0, "roll_deg": 0.0, "focal_length_mm": 50.0,
             "sensor_width_mm": 36.0, "person_height_fraction": 0.8, "offset": [0.0, 0.0]}
    fitted = fit_camera(vertices, draws, 256, 256)
    from densesynth.scene.camera import look_at

    return PinholeCamera(look_at(np.array(fitted["eye"]), np.array(fitted["target"])), 50.0, 36.0, 256, 256)


def visibility(default_body, vertices, keypoints, camera):
    return keypoint_visibility(keypoints, vertices, default_body.model.faces, default_body.face_part, camera.K,
                               camera.world_to_camera, (camera.width, camera.height), KEYPOINT_PARTS,
                               SURFACE_KEYPOINTS)


def raster_part_at(default_body, vertices, camera, xy):
    geometry = {"vertices": vertices, "faces": default_body.model.faces, "corner_iuv": default_body.corner_iuv,
                "K": camera.K, "world_to_camera": camera.world_to_camera, "image_size": np.array([256, 256])}
    labels = rasterise_iuv(geometry)["I"]
    col, row = np.round(xy).astype(int)
    return int(labels[row, col])


def test_wrist_behind_the_back_is_hidden_from_the_front(default_body, posed):
    vertices, keypoints = posed
    camera = view(vertices, 0.0)
    xy, vis = visibility(default_body, vertices, keypoints, camera)
    names = list(COCO_KEYPOINT_NAMES)
    left, right = names.index("left_wrist"), names.index("right_wrist")
    assert vis[left] == 1 and vis[right] == 2
    # Independent check: what covers the left wrist's pixel is the torso, not the arm.
    assert raster_part_at(default_body, vertices, camera, xy[left]) in TORSO
    assert vis[names.index("nose")] == 2 and vis[names.index("left_eye")] == 2


def test_same_pose_from_behind_shows_the_wrist_and_hides_the_face(default_body, posed):
    vertices, keypoints = posed
    camera = view(vertices, 180.0)
    xy, vis = visibility(default_body, vertices, keypoints, camera)
    names = list(COCO_KEYPOINT_NAMES)
    assert vis[names.index("left_wrist")] == 2
    assert raster_part_at(default_body, vertices, camera, xy[names.index("left_wrist")]) not in TORSO
    assert vis[names.index("nose")] == 1 and vis[names.index("left_eye")] == 1
