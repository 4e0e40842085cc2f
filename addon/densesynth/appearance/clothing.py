"""Procedural clothing textures painted in the body's own texture (UV) space.

Garments are painted by body part: each texture pixel knows which DensePose part of the
body it lands on (rasterised once per body from the texture coordinates and the charts),
so a 'top', 'trousers' or 'shoes' region follows the body whatever its UV layout is.
SURREAL-style texture images (issue: domain randomisation) go through the same material.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

TORSO = (1, 2)
UPPER_ARMS = (15, 16, 17, 18)
LOWER_ARMS = (19, 20, 21, 22)
HANDS = (3, 4)
FEET = (5, 6)
UPPER_LEGS = (7, 8, 9, 10)
LOWER_LEGS = (11, 12, 13, 14)
HEAD = (23, 24)


def uv_part_map(corner_uv: np.ndarray, face_part: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 image of the fine part under each texel; row 0 is V = 0.

    Row 0 at V = 0 is Blender's pixel order, so the texture uploads without a flip. Texels
    outside every UV island take the nearest island's part, so filtering at island borders
    never bleeds a wrong garment colour.
    """
    part_map = np.zeros((size, size), dtype=np.uint8)
    points = np.round(corner_uv * size * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for part in np.unique(face_part):
        polygons = list(points[face_part == part])
        cv2.fillPoly(part_map, polygons, int(part), lineType=cv2.LINE_8, shift=4)
    empty = part_map == 0
    if empty.any():
        nearest = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        part_map = part_map[nearest[0], nearest[1]]
    return part_map


def _pattern(garment: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) mask in [0, 1] of where the garment's pattern colour shows."""
    pattern = garment["pattern"]
    if pattern == "solid":
        return np.zeros((size, size), dtype=np.float32)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(coords, coords)
    angle = np.deg2rad(garment["pattern_angle_deg"])
    scale = garment["pattern_scale"]
    along = u * np.cos(angle) + v * np.sin(angle)
    if pattern == "stripes":
        return (np.sin(2 * np.pi * scale * along) > 0.3).astype(np.float32)
    if pattern == "checks":
        across = -u * np.sin(angle) + v * np.cos(angle)
        return ((np.floor(scale * along) + np.floor(scale * across)) % 2).astype(np.float32)
    cells = max(2, int(scale))
    noise = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _garment_layer(garment: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(garment["colour"], dtype=np.float32)
    accent = np.asarray(garment["pattern_colour"], dtype=np.float32)
    mix = _pattern(garment, size, rng)[..., None]
    return base * (1 - mix) + accent * mix


def clothing_texture(appearance: dict, part_map: np.ndarray) -> np.ndarray:
    """RGBA float32 texture (Blender pixel order) for one person's drawn appearance."""
    size = part_map.shape[0]
    rng = np.random.default_rng(appearance["texture_seed"])
    texture = np.empty((size, size, 3), dtype=np.float32)
    texture[:] = np.asarray(appearance["skin"], dtype=np.float32)
    top_parts = TORSO + UPPER_ARMS + (LOWER_ARMS if appearance["long_sleeves"] else ())
    bottom_parts = UPPER_LEGS + (LOWER_LEGS if appearance["long_trousers"] else ())
    for parts, layer in (
        (top_parts, _garment_layer(appearance["top"], size, rng)),
        (bottom_parts, _garment_layer(appearance["bottom"], size, rng)),
    ):
        where = np.isin(part_map, parts)
        texture[where] = layer[where]
    texture[np.isin(part_map, FEET)] = np.asarray(appearance["shoes"], dtype=np.float32)
    # Low-frequency shading variation, so flat colours do not look like plastic.
    grain = cv2.resize(rng.random((32, 32)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    texture *= (0.9 + 0.2 * grain.clip(0, 1))[..., None]
    rgba = np.ones((size, size, 4), dtype=np.float32)
    rgba[..., :3] = texture.clip(0.0, 1.0)
    return rgba
