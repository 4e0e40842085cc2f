"""Clothing textures from a folder of images in a body's UV layout (SURREAL-style).

SURREAL ships full-body textures in SMPL's UV layout, in `male/` and `female/` sets. A
person draws textures from the set of its gender; with part mixing, body regions (torso,
arms, legs, head, hands, feet) come from different textures and are blended across soft
seams in UV space. Blending is done with Gaussian-feathered region masks, so no hard
colour edge appears where two garments meet. Images must be in the UV layout of the body
they dress (`appearance.texture_layout`); the embedded default is procedural.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .clothing import FEET, HANDS, HEAD, LOWER_ARMS, LOWER_LEGS, TORSO, UPPER_ARMS, UPPER_LEGS
from .image_files import image_files, read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
REGIONS = {"torso": TORSO, "arms": UPPER_ARMS + LOWER_ARMS, "legs": UPPER_LEGS + LOWER_LEGS, "head": HEAD,
           "hands": HANDS, "feet": FEET}


@lru_cache(maxsize=8)
def texture_catalogue(folder: str) -> dict[str, tuple[str, ...]]:
    """Relative texture paths per gender ('male', 'female'; 'any' when the folder has no such subfolders)."""
    root = Path(folder).expanduser()
    if not folder or not root.is_dir():
        raise UserError(f"texture folder '{folder}' does not exist: set appearance.texture_folder "
                        "(e.g. SURREAL's textures/ with male/ and female/ inside)")
    sets = {}
    for gender in ("male", "female"):
        if (root / gender).is_dir():
            sets[gender] = tuple(str(p.relative_to(root)) for p in image_files(root / gender, IMAGE_SUFFIXES))
    if not sets:
        sets["any"] = tuple(str(p.relative_to(root)) for p in image_files(root, IMAGE_SUFFIXES))
    if not any(sets.values()):
        raise UserError(f"texture folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return sets


def draw_folder_textures(d, folder: str, gender: str, mix_parts: bool) -> dict:
    """Which texture dresses each body region (one texture for all regions without mixing)."""
    sets = texture_catalogue(folder)
    names = sets.get(gender) or sets.get("any") or next(v for v in sets.values() if v)
    base = names[d.integer(len(names))]
    regions = {region: (names[d.integer(len(names))] if mix_parts else base) for region in REGIONS}
    return {"folder_regions": regions, "seam_width": d.uniform([0.004, 0.02])}


@lru_cache(maxsize=32)
def _load(path: str, size: int) -> np.ndarray:
    image = read_image(path, cv2.IMREAD_COLOR, "texture image")
    # Texture images are stored top row = V 1; Blender's pixel order starts at V 0.
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)[::-1, :, ::-1]
    return np.ascontiguousarray(resized, dtype=np.float32) / 255.0


def folder_texture(params: dict, folder: str, part_map: np.ndarray) -> np.ndarray:
    """RGBA float32 texture (Blender pixel order) mixing the drawn textures over body regions."""
    size = part_map.shape[0]
    root = Path(folder).expanduser()
    regions = params["folder_regions"]
    sigma = max(params["seam_width"] * size, 0.5)
    weights, layers = [], []
    for region, parts in REGIONS.items():
        mask = np.isin(part_map, parts).astype(np.float32)
        weights.append(cv2.GaussianBlur(mask, (0, 0), sigma) + 1e-6 * mask)
        layers.append(_load(os.fspath(root / regions[region]), size))
    weights = np.stack(weights)
    weights /= np.maximum(weights.sum(axis=0, keepdims=True), 1e-6)
    rgb = np.einsum("rhw,rhwc->hwc", weights, np.stack(layers))
    rgba = np.ones((size, size, 4), np.float32)
    rgba[..., :3] = rgb
    return rgba
