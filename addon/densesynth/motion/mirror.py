"""Left-right mirroring of SMPL-format motion (doubles the motion variety for free)."""
from __future__ import annotations

import numpy as np

# SMPL joint index -> its mirror partner.
MIRROR_JOINTS = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22])


def mirror_pose(pose72: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflect across the person's sagittal plane (x -> -x in SMPL's frame).

    A rotation R reflects to M R M with M = diag(-1, 1, 1), which for an axis-angle vector
    (x, y, z) is (x, -y, -z); left and right joints swap their rotations.
    """
    pose = np.asarray(pose72, dtype=np.float64).reshape(24, 3)[MIRROR_JOINTS].copy()
    pose[:, 1:] *= -1.0
    trans = np.asarray(trans, dtype=np.float64).copy()
    trans[0] *= -1.0
    return pose.ravel(), trans
