"""Which SMPL joint each face of a body belongs to: SURREAL's 24-part segmentation by joint.

SURREAL labels each pixel with the SMPL joint that moves the surface there (its segmentation
comes from SMPL's skinning weights, one part per joint). Here a face belongs to the joint with
the largest skinning weight summed over its three corners: a per-face table, so a pixel's part
is exact wherever the surface pass knows the face (no boundary blur, and it follows image
effects with the face id). For anny, whose skeleton has 163 bones, each bone counts for the
SMPL joint the retargeter drives it by (motion/retarget.py's ANNY_JOINT_MAP), or for the nearest
such ancestor (spine03 moves with spine1, the toes' later bones with the foot, the thumb with
the wrist), so both body kinds answer in SMPL's 24 joints.
"""
from __future__ import annotations

import numpy as np

NUM_JOINTS = 24


def face_joints(faces: np.ndarray, vertex_joint_weights: np.ndarray) -> np.ndarray:
    """(F,) int SMPL joint index (0..23) per face: the largest summed corner weight."""
    weights = np.asarray(vertex_joint_weights, dtype=np.float64)
    return np.argmax(weights[np.asarray(faces)].sum(axis=1), axis=1).astype(np.int64)


def anny_bone_joints(bone_labels: list[str], bone_parents: np.ndarray) -> np.ndarray:
    """(B,) SMPL joint per anny bone: the joint its nearest mapped ancestor (or itself) drives."""
    from ..motion.retarget import ANNY_JOINT_MAP

    driven: dict[str, int] = {}
    for joint, bones in ANNY_JOINT_MAP.items():
        for bone in (bones,) if isinstance(bones, str) else bones:
            driven[bone] = joint
    joints = np.full(len(bone_labels), -1, dtype=np.int64)
    for bone, label in enumerate(bone_labels):
        walk = bone
        while walk >= 0 and bone_labels[walk] not in driven:
            walk = int(bone_parents[walk])
        if walk < 0:
            raise ValueError(f"anny bone {label!r} has no ancestor the retargeter drives")
        joints[bone] = driven[bone_labels[walk]]
    return joints


def anny_vertex_joint_weights(vertex_bone_indices: np.ndarray, vertex_bone_weights: np.ndarray,
                              bone_joints: np.ndarray) -> np.ndarray:
    """(V, 24) anny's sparse bone weights summed per SMPL joint."""
    weights = np.zeros((len(vertex_bone_indices), NUM_JOINTS))
    rows = np.repeat(np.arange(len(vertex_bone_indices)), vertex_bone_indices.shape[1])
    np.add.at(weights, (rows, bone_joints[vertex_bone_indices].ravel()), vertex_bone_weights.ravel())
    return weights
