"""DensePose part tables and COCO-17 keypoint tables.

Everything that maps one labelling onto another lives here, in one place, so that
the decoder, the COCO writer, the passes, the visibility test, the training package and
the test-suite agree. It imports nothing of the package (the trainer reads it without the
renderer).

Fine parts ``I`` (1..24, 0 = background) follow DensePose-COCO's chart numbering.
Names are labels for humans only: for SMPL-based bodies ``I`` comes from the chart
data (``UV_Processed.mat``), never from these names. "Left"/"right" are the person's
own left/right.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NUM_FINE_PARTS",
    "NUM_COARSE_PARTS",
    "FINE_PART_NAMES",
    "COARSE_PART_NAMES",
    "FINE_TO_COARSE",
    "FINE_FLIP",
    "COARSE_FLIP",
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "COCO_KEYPOINT_FLIP",
    "KEYPOINT_PARTS",
    "SURFACE_KEYPOINTS",
    "coarse_of",
    "JOINT_PART_NAMES",
    "JOINT_PART_FLIP",
]

NUM_FINE_PARTS = 24
NUM_COARSE_PARTS = 14

# Index = fine part I; entry 0 is the background.
FINE_PART_NAMES: tuple[str, ...] = (
    "background",
    "torso back",
    "torso front",
    "right hand",
    "left hand",
    "left foot",
    "right foot",
    "upper leg right back",
    "upper leg left back",
    "upper leg right front",
    "upper leg left front",
    "lower leg right back",
    "lower leg left back",
    "lower leg right front",
    "lower leg left front",
    "upper arm left front",
    "upper arm right front",
    "upper arm left back",
    "upper arm right back",
    "lower arm left front",
    "lower arm right front",
    "lower arm left back",
    "lower arm right back",
    "head right",
    "head left",
)

# Index = coarse label (the value dp_masks[k] paints is k + 1); entry 0 is the background.
COARSE_PART_NAMES: tuple[str, ...] = (
    "background",
    "torso",
    "right hand",
    "left hand",
    "left foot",
    "right foot",
    "upper leg right",
    "upper leg left",
    "lower leg right",
    "lower leg left",
    "upper arm left",
    "upper arm right",
    "lower arm left",
    "lower arm right",
    "head",
)

# FINE_TO_COARSE[I] is the coarse label of fine part I (0 -> 0). A lookup array so that a
# whole label image converts with one fancy-index: FINE_TO_COARSE[I_map].
FINE_TO_COARSE: np.ndarray = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14],
    dtype=np.uint8,
)
FINE_TO_COARSE.setflags(write=False)

# Horizontal flip (DensePose's tables): label -> label of the mirrored part.
FINE_FLIP: np.ndarray = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    dtype=np.uint8,
)
FINE_FLIP.setflags(write=False)
COARSE_FLIP: np.ndarray = np.array(
    [0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.uint8
)
COARSE_FLIP.setflags(write=False)

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# COCO's person skeleton, 1-based keypoint indices exactly as in person_keypoints_*.json.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)

# Keypoint index -> index of its mirror image (0-based), for horizontal-flip augmentation.
COCO_KEYPOINT_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

_TORSO = frozenset({1, 2})
_HEAD = frozenset({23, 24})
_RIGHT_HAND, _LEFT_HAND = frozenset({3}), frozenset({4})
_LEFT_FOOT, _RIGHT_FOOT = frozenset({5}), frozenset({6})
_UPPER_LEG_R, _UPPER_LEG_L = frozenset({7, 9}), frozenset({8, 10})
_LOWER_LEG_R, _LOWER_LEG_L = frozenset({11, 13}), frozenset({12, 14})
_UPPER_ARM_L, _UPPER_ARM_R = frozenset({15, 17}), frozenset({16, 18})
_LOWER_ARM_L, _LOWER_ARM_R = frozenset({19, 21}), frozenset({20, 22})

# For each COCO keypoint, the fine parts on whose surface the keypoint may be "seen": the
# visibility test calls a joint visible when the first surface the camera ray meets near
# the joint belongs to one of these parts (a joint sits where these parts meet).
KEYPOINT_PARTS: tuple[frozenset[int], ...] = (
    _HEAD,  # nose
    _HEAD,  # left_eye
    _HEAD,  # right_eye
    _HEAD,  # left_ear
    _HEAD,  # right_ear
    _TORSO | _UPPER_ARM_L,  # left_shoulder
    _TORSO | _UPPER_ARM_R,  # right_shoulder
    _UPPER_ARM_L | _LOWER_ARM_L,  # left_elbow
    _UPPER_ARM_R | _LOWER_ARM_R,  # right_elbow
    _LOWER_ARM_L | _LEFT_HAND,  # left_wrist
    _LOWER_ARM_R | _RIGHT_HAND,  # right_wrist
    _TORSO | _UPPER_LEG_L,  # left_hip
    _TORSO | _UPPER_LEG_R,  # right_hip
    _UPPER_LEG_L | _LOWER_LEG_L,  # left_knee
    _UPPER_LEG_R | _LOWER_LEG_R,  # right_knee
    _LOWER_LEG_L | _LEFT_FOOT,  # left_ankle
    _LOWER_LEG_R | _RIGHT_FOOT,  # right_ankle
)

# Keypoints that lie ON the skin (face landmarks) rather than inside a limb (joints); the
# visibility test uses a much tighter depth tolerance for them.
SURFACE_KEYPOINTS: np.ndarray = np.array([True] * 5 + [False] * 12, dtype=bool)
SURFACE_KEYPOINTS.setflags(write=False)


def coarse_of(fine: np.ndarray | int) -> np.ndarray:
    """Coarse label(s) of fine label(s); raises IndexError for values outside 0..24."""
    return FINE_TO_COARSE[np.asarray(fine, dtype=np.intp)]


# SURREAL's 24-part segmentation "by joint": part k (1..24) is SMPL joint k - 1, the joint whose
# skinning weight dominates the surface there (0 = background); the names are SURREAL's own
# (its Blender bone names), in SMPL's joint order. Beside DensePose's charts, not instead of them.
JOINT_PART_NAMES: tuple[str, ...] = (
    "background",
    "hips", "leftUpLeg", "rightUpLeg", "spine", "leftLeg", "rightLeg", "spine1", "leftFoot", "rightFoot",
    "spine2", "leftToeBase", "rightToeBase", "neck", "leftShoulder", "rightShoulder", "head", "leftArm",
    "rightArm", "leftForeArm", "rightForeArm", "leftHand", "rightHand", "leftHandIndex1", "rightHandIndex1",
)


def _joint_part_flip() -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(JOINT_PART_NAMES)}
    flip = []
    for name in JOINT_PART_NAMES:
        if name.startswith("left"):
            flip.append(index["right" + name[4:]])
        elif name.startswith("right"):
            flip.append(index["left" + name[5:]])
        else:
            flip.append(index[name])
    return tuple(flip)


# Joint part -> its mirror image, for horizontal-flip augmentation.
JOINT_PART_FLIP: tuple[int, ...] = _joint_part_flip()
