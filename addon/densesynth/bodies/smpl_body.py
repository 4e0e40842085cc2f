"""SMPL bodies in the pipeline: the user's licensed models, DensePose's own charts.

Only SMPL renders give IUV that means exactly what DensePose-COCO's means: the charts come
from DensePose's `UV_Processed.mat`, per face corner. Posing is SMPL's own forward model
in NumPy (the same maths as the Blender rig in `render/smpl_rig.py`), with the built-in
and converted motion clips, which are SMPL-format already: no retargeting needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import UserError
from .smpl_charts import build_smpl_charts, smpl_corner_texture_uv
from .smpl_files import find_smpl_file, load_smpl
from .smpl_model import SmplModel

SMPL_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Y up -> Blender's Z up
# COCO-17 keypoints on SMPL: surface vertices for the face (the usual SMPL vertex ids), joints elsewhere.
COCO_FACE_VERTICES = {"nose": 332, "left_eye": 2800, "right_eye": 6260, "left_ear": 583, "right_ear": 4071}
COCO_BODY_JOINTS = {"left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
                    "left_wrist": 20, "right_wrist": 21, "left_hip": 1, "right_hip": 2, "left_knee": 4,
                    "right_knee": 5, "left_ankle": 7, "right_ankle": 8}
COCO_ORDER = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")


@dataclass
class SmplBody:
    models: dict[str, SmplModel]  # per gender available
    faces: np.ndarray  # (F, 3), shared by every gender (SMPL's topology)
    face_part: np.ndarray  # (F,)
    corner_uv: np.ndarray  # (F, 3, 2) chart U, V
    corner_texture_uv: np.ndarray  # (F, 3, 2) SMPL's texture layout (SURREAL textures)

    @classmethod
    def load(cls, smpl_dir: str, genders: tuple[str, ...]) -> "SmplBody":
        if not smpl_dir:
            raise UserError("body.kind smpl needs the SMPL model folder: pass --smpl-dir DIR "
                            "(or set body.smpl_dir); see the README, 'SMPL bodies'")
        models = {gender: SmplModel(load_smpl(find_smpl_file(smpl_dir, gender), gender)) for gender in genders}
        faces = next(iter(models.values())).arrays.faces
        charts = build_smpl_charts(faces)
        return cls(models=models, faces=faces, face_part=charts.face_part.astype(np.int64),
                   corner_uv=charts.corner_uv, corner_texture_uv=smpl_corner_texture_uv(faces))

    @property
    def num_vertices(self) -> int:
        return len(next(iter(self.models.values())).arrays.v_template)

    @cached_property
    def corner_iuv(self) -> np.ndarray:
        iuv = np.empty((len(self.face_part), 3, 3), dtype=np.float32)
        iuv[..., 0] = self.face_part[:, None]
        iuv[..., 1:] = self.corner_uv
        return iuv

    def pose(self, body: dict, pose72: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World (Z-up) vertices and COCO keypoints of one drawn SMPL person."""
        model = self.models.get(body["gender"])
        if model is None:
            raise UserError(f"no {body['gender']} SMPL model loaded: add it to --smpl-dir or set body.gender")
        out = model.forward(np.asarray(body["betas"]), pose72, trans)
        keypoints = np.array([out.vertices[COCO_FACE_VERTICES[name]] if name in COCO_FACE_VERTICES
                              else out.joints[COCO_BODY_JOINTS[name]] for name in COCO_ORDER])
        return out.vertices @ SMPL_TO_WORLD.T, keypoints @ SMPL_TO_WORLD.T
