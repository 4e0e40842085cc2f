"""SMPL's 24-joint skeleton: names, parents and a generic rest skeleton.

The canonical motion format (see `clip.py`) stores SMPL-layout rotations. Motion that does
not come with its own skeleton (the built-in clips, AMASS files read without an SMPL model)
is defined on `GENERIC_REST_JOINTS`: a T-pose of a person about 1.70 m tall.

`GENERIC_REST_JOINTS` is NOT taken from SMPL's model files (their licence forbids
redistribution). It is written here from textbook anthropometric proportions of stature H
(segment lengths as fractions of H after Drillis & Contini / Winter, "Biomechanics and Motor
Control of Human Movement"): ankle joint about 0.04 H above the floor, knee 0.285 H, hip
joint 0.53 H, shoulder joint about 0.82 H, shank and thigh about 0.245 H each, hip joint
centres about 0.05 H either side of the midline; arm segments are chosen so that the arm
span equals the stature. Its joint placement only follows SMPL's conventions (which
anatomical point each joint stands for), so SMPL motion looks right on it.

Frame: SMPL's world, metres, Y up, the person faces +Z, the person's left is +X; the floor
is y = 0 and the rest skeleton stands on it (trans = 0 means standing at the origin).
"""
from __future__ import annotations

import numpy as np

NUM_JOINTS = 24

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
    dtype=np.int64,
)

STATURE = 1.70  # metres, the generic person's height (top of the head)


def _generic_rest_joints() -> np.ndarray:
    def both(name: str, x: float, y: float, z: float) -> dict[str, tuple[float, float, float]]:
        return {f"left_{name}": (x, y, z), f"right_{name}": (-x, y, z)}

    joints: dict[str, tuple[float, float, float]] = {
        "pelvis": (0.0, 0.97, -0.01),
        "spine1": (0.0, 1.08, -0.02),
        "spine2": (0.0, 1.21, -0.01),
        "spine3": (0.0, 1.27, 0.01),
        "neck": (0.0, 1.46, -0.03),
        "head": (0.0, 1.54, 0.01),
        **both("hip", 0.085, 0.90, 0.0),  # 0.53 H
        **both("knee", 0.09, 0.485, 0.0),  # 0.285 H
        **both("ankle", 0.085, 0.07, -0.02),  # 0.04 H
        **both("foot", 0.10, 0.02, 0.11),  # ball of the foot (toe base)
        **both("collar", 0.07, 1.37, -0.01),
        **both("shoulder", 0.18, 1.40, -0.02),  # ~0.82 H
        **both("elbow", 0.45, 1.40, -0.03),  # upper arm 0.27 m
        **both("wrist", 0.69, 1.40, -0.03),  # forearm 0.24 m
        **both("hand", 0.77, 1.40, -0.03),  # knuckles; fingertips at ~0.86 = span / 2
    }
    return np.array([joints[name] for name in JOINT_NAMES], dtype=np.float64)


GENERIC_REST_JOINTS: np.ndarray = _generic_rest_joints()
GENERIC_REST_JOINTS.setflags(write=False)

# Approximate position of SMPL's pelvis joint in SMPL's template frame (about 22 cm below
# the template origin; it varies with the body shape by a few cm). AMASS translations are
# relative to it, so reading AMASS files onto the generic skeleton needs it.
SMPL_TEMPLATE_PELVIS = np.array([0.0, -0.22, 0.03])


def children(parents: np.ndarray = PARENTS) -> list[list[int]]:
    """Children of every joint, in index order."""
    kids: list[list[int]] = [[] for _ in range(len(parents))]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            kids[int(parent)].append(joint)
    return kids
