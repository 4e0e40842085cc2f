"""SMPL people in the pipeline: one loaded model per gender, sharing SMPL's topology and charts.

Only SMPL renders give IUV that means exactly what DensePose-COCO's means: the charts come
from DensePose's `UV_Processed.mat`, per face corner (see `smpl_charts.py`). A sample may
mix genders, so the pipeline holds every gender it can draw; each is a `SmplBody`
(`smpl_model.py`). Motion clips are SMPL-format already: no retargeting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .smpl_model import SmplBody


@dataclass
class SmplPeople:
    bodies: dict[str, SmplBody]  # per gender

    @classmethod
    def load(cls, smpl_dir: str, genders: tuple[str, ...]) -> "SmplPeople":
        if not smpl_dir:
            raise UserError("body.kind smpl needs the SMPL model folder: pass --smpl-dir DIR "
                            "(or set body.smpl_dir); see the README, 'SMPL bodies'")
        return cls({gender: SmplBody.load(smpl_dir, gender) for gender in genders})

    @property
    def _first(self) -> SmplBody:
        return next(iter(self.bodies.values()))

    # The interface every body kind offers the pipeline (see DefaultBody).
    faces = property(lambda self: self._first.faces)
    face_part = property(lambda self: self._first.face_part)
    corner_iuv = property(lambda self: self._first.corner_iuv)
    corner_texture_uv = property(lambda self: self._first.corner_texture_uv)
    num_vertices = property(lambda self: self._first.num_vertices)

    def face_joints(self, body: dict) -> np.ndarray:
        """(F,) SMPL joint (0..23) per face from this gender's skinning weights (SURREAL's
        parts by joint, bodies/joint_parts.py)."""
        return self.model(body["gender"]).face_joint

    def model(self, gender: str) -> SmplBody:
        if gender not in self.bodies:
            raise UserError(f"no {gender} SMPL model loaded: add it to --smpl-dir or set body.gender")
        return self.bodies[gender]

    def pose(self, body: dict, pose72: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World (Z-up) vertices and COCO-17 keypoints of one drawn SMPL person."""
        smpl = self.model(body["gender"])
        out = smpl.pose(np.asarray(body["betas"]), pose72, trans)
        return out.vertices, smpl.keypoints(out.vertices, out.joints)

    def rest_joints(self, body: dict) -> np.ndarray:
        """Rest joints in SMPL's own frame (Y up), for leg-length ratios."""
        return self.model(body["gender"]).model.rest_joints(np.asarray(body["betas"]))
