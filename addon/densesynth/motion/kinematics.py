"""Forward kinematics of SMPL-layout poses on a rest skeleton."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .smpl_skeleton import NUM_JOINTS, PARENTS


def local_rotations(pose72: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 72) -> rotation matrices (..., 24, 3, 3)."""
    pose = np.asarray(pose72, dtype=np.float64)
    if pose.shape[-1] != 3 * NUM_JOINTS:
        raise ValueError(f"pose must have {3 * NUM_JOINTS} values per frame, got shape {pose.shape}")
    lead = pose.shape[:-1]
    mats = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
    return mats.reshape(*lead, NUM_JOINTS, 3, 3)


def forward_kinematics(
    pose72: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray = PARENTS
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations and joint positions of a pose (root at its rest position, no trans).

    pose72: (72,) or (..., 72) parent-relative axis-angle rotations, root first.
    rest_joints: (24, 3) rest joint positions.
    Returns (world_rotations (..., 24, 3, 3), joint_positions (..., 24, 3)). A joint's world
    rotation is the product of the local rotations from the root down to it; because SMPL's
    rest frames are the identity, it is also the joint's rest-to-posed delta in the world.
    """
    rest = np.asarray(rest_joints, dtype=np.float64)
    if rest.shape != (NUM_JOINTS, 3):
        raise ValueError(f"rest_joints must be ({NUM_JOINTS}, 3), got {rest.shape}")
    local = local_rotations(pose72)
    world = np.empty_like(local)
    positions = np.empty(local.shape[:-2] + (3,))
    world[..., 0, :, :] = local[..., 0, :, :]
    positions[..., 0, :] = rest[0]
    for joint in range(1, NUM_JOINTS):
        parent = int(parents[joint])
        world[..., joint, :, :] = world[..., parent, :, :] @ local[..., joint, :, :]
        positions[..., joint, :] = positions[..., parent, :] + np.einsum(
            "...ij,j->...i", world[..., parent, :, :], rest[joint] - rest[parent]
        )
    return world, positions
