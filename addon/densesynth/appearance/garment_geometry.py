"""Garments and hair as geometry: the body's own surface, pushed out where it is clothed.

A skin-tight body is thinner than a clothed person, and DensePose-COCO's annotators labelled
points on clothing and hair with the body surface beneath. Offsetting each clothed vertex along
its normal (by the garment's thickness, tapered at hems, with low-frequency folds) gives that
silhouette while keeping every label exact: a garment point *is* the displaced body vertex, so
it keeps the body's faces and per-corner (I, U, V), and the label pass, the person mask, the
box and keypoint visibility (the clothed surface hides joints) all see it without a new rule.
The garment follows the pose because it is computed from the posed body, every sample.

Regions follow the clothing texture (appearance/clothing.py): the top covers the torso and
upper arms (and the forearms with long sleeves), the bottom the upper legs (and the lower legs
with long trousers); hair caps the top and back of the head, found from the head's own
keypoints (nose, eyes, ears), so it works for every body kind. No library offsets a skinned
mesh by regions; this is a few NumPy/SciPy lines.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from .clothing import LOWER_ARMS, LOWER_LEGS, TORSO, UPPER_ARMS, UPPER_LEGS

HEM_SMOOTHING_STEPS = 6  # neighbour-averaging passes: hems taper over a few rings of vertices
HEAD_PARTS = (23, 24)


def draw_garment_geometry(d, cfg: dict[str, Any]) -> dict[str, Any]:
    """Per-person garment geometry draws (config section `garments`), recorded in the spec."""
    return {
        "top_m": d.uniform(cfg["top_thickness_m"]),
        "bottom_m": d.uniform(cfg["bottom_thickness_m"]),
        "fold_m": d.uniform(cfg["fold_amplitude_m"]),
        "fold_scale_m": d.uniform(cfg["fold_scale_m"]),
        "fold_seed": d.integer(),
        "hair": d.chance(cfg["hair_probability"]),
        "hair_m": d.uniform(cfg["hair_thickness_m"]),
        "hair_colour": d.colour([0.02, 0.12], [0.2, 0.8], [0.03, 0.6]),
    }


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for counter-clockwise faces)."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def hair_faces(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(F,) bool: head faces on the scalp (above the ears' level, or behind them), from the
    posed head's keypoints (COCO order: 0 nose, 1-2 eyes, 3-4 ears)."""
    ears = 0.5 * (keypoints[3] + keypoints[4])
    eyes = 0.5 * (keypoints[1] + keypoints[2])
    forward = keypoints[0] - ears
    forward /= max(np.linalg.norm(forward), 1e-9)
    across = keypoints[3] - keypoints[4]
    up = np.cross(across, forward)
    up /= max(np.linalg.norm(up), 1e-9)
    if np.dot(up, eyes - keypoints[0]) < 0:  # eyes are above the nose: point `up` that way
        up = -up
    centres = vertices[faces].mean(axis=1) - ears
    height = centres @ up
    ahead = centres @ forward
    brow = float((eyes - ears) @ up) + 0.02  # the hairline sits a little above the eyes
    return np.isin(face_part, HEAD_PARTS) & ((height > brow) | ((ahead < -0.02) & (height > -0.06)))


def _face_thickness(face_part: np.ndarray, appearance: dict[str, Any], garments: dict[str, Any],
                    hair: np.ndarray) -> np.ndarray:
    top = TORSO + UPPER_ARMS + (LOWER_ARMS if appearance["long_sleeves"] else ())
    bottom = UPPER_LEGS + (LOWER_LEGS if appearance["long_trousers"] else ())
    thickness = np.zeros(len(face_part))
    thickness[np.isin(face_part, top)] = garments["top_m"]
    thickness[np.isin(face_part, bottom)] = garments["bottom_m"]
    if garments["hair"]:
        thickness[hair] = garments["hair_m"]
    return thickness


def _smoothing_operator(faces: np.ndarray, num_vertices: int) -> sparse.csr_matrix:
    """Row-normalised vertex adjacency (with self loops): one neighbour-averaging step."""
    rows = np.concatenate([faces[:, i] for i in (0, 1, 2, 1, 2, 0)] + [np.arange(num_vertices)])
    cols = np.concatenate([faces[:, i] for i in (1, 2, 0, 0, 1, 2)] + [np.arange(num_vertices)])
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))
    adjacency.data[:] = 1.0
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sparse.diags(1.0 / degree) @ adjacency


def _folds(rest_like: np.ndarray, garments: dict[str, Any]) -> np.ndarray:
    """Low-frequency fold field in [-1, 1]: a few random 3D sinusoids of the garment's scale."""
    rng = np.random.default_rng(garments["fold_seed"])
    directions = rng.normal(size=(4, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, 4)
    waves = np.sin(rest_like @ directions.T * (2 * np.pi / garments["fold_scale_m"]) + phases)
    return waves.mean(axis=1) * 2.0 / np.sqrt(4)


def dress(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray, keypoints: np.ndarray,
          appearance: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(outer surface vertices (V, 3), hair faces (F,) bool) of a posed person whose appearance
    carries `garments` draws; the body itself when it carries none."""
    garments = appearance.get("garments")
    hair = np.zeros(len(faces), dtype=bool)
    if not garments:
        return vertices, hair
    if garments["hair"]:
        hair = hair_faces(vertices, faces, face_part, keypoints)
    face_thickness = _face_thickness(face_part, appearance, garments, hair)
    num_vertices = len(vertices)
    corner_sum = np.zeros(num_vertices)
    corner_count = np.zeros(num_vertices)
    for corner in range(3):
        np.add.at(corner_sum, faces[:, corner], face_thickness)
        np.add.at(corner_count, faces[:, corner], 1.0)
    thickness = corner_sum / np.maximum(corner_count, 1.0)
    clothed = thickness > 0
    # Folds ride on the garments (not on hair or skin), measured in the body's own frame
    # (relative to its hips) so they move with the person rather than swim over it.
    hips = 0.5 * (keypoints[11] + keypoints[12])
    fold = garments["fold_m"] * _folds(vertices - hips, garments)
    garment_only = clothed & ~np.isin(np.arange(num_vertices), faces[hair].ravel())
    thickness = np.where(garment_only, np.maximum(thickness + fold, 0.3 * thickness), thickness)
    smooth = _smoothing_operator(faces, num_vertices)
    for _ in range(HEM_SMOOTHING_STEPS):
        thickness = smooth @ thickness
    outer = vertices + vertex_normals(vertices, faces) * thickness[:, None]
    return outer, hair


def rendered_surface(person: dict[str, Any], appearance: dict[str, Any], bodies: dict[str, Any]) -> np.ndarray:
    """(V, 3) what the camera sees of one spec person: posed (scene/person.pose_person) and
    dressed exactly as pipeline.SpecScene.build dresses it (the body itself when undressed)."""
    from ..scene.person import pose_person

    body = bodies[person["body"]["kind"]]
    posed = pose_person(person, bodies)
    outer, _hair = dress(posed.vertices, body.faces, body.face_part, posed.keypoints, appearance)
    return outer


def paint_faces(rgba: np.ndarray, corner_texture_uv: np.ndarray, faces_mask: np.ndarray,
                colour) -> np.ndarray:
    """The texture with the given faces' texels painted `colour` (hair over the scalp); row 0
    of the texture is V = 0, as uv_part_map rasterises it."""
    import cv2

    size = rgba.shape[0]
    mask = np.zeros((size, size), dtype=np.uint8)
    points = np.round(corner_texture_uv[faces_mask] * size * 16).astype(np.int32)
    cv2.fillPoly(mask, list(points), 1, lineType=cv2.LINE_8, shift=4)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0  # no skin seams at island borders
    out = rgba.copy()
    out[mask, :3] = np.asarray(colour, dtype=np.float32)
    return out
