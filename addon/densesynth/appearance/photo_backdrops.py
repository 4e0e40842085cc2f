"""Photograph backdrops: a folder of images, or a COCO annotation file and its image folder.

The catalogue (the sorted list of usable files) is built once per process and cached, so a
sample's spec only records which file it drew (relative to the folder) and how it was
cropped: the same spec picks the same photo on any machine that has the same folder.
A COCO catalogue can keep only images without people (clean backgrounds) or only images
with people (harder negatives), read from the annotation file itself.
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .image_files import image_files, read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Photographs shipped inside scikit-image's wheel, with clear licences (assets_manifest.yaml):
# CC0 (brick, grass, gravel: CC0Textures; chelsea, coffee: their photographers) and public
# domain (rocket: SpaceX). The embedded photographs that need no download.
EMBEDDED_PHOTOS = ("brick.png", "chelsea.png", "coffee.png", "grass.png", "gravel.png", "rocket.jpg")
COCO_PERSON_CATEGORY = 1


def catalogue(cfg: dict) -> tuple[Path, tuple[str, ...]]:
    """(root folder, sorted relative file names) for the backdrop config, or raise UserError."""
    if cfg["kind"] == "folder":
        return _folder_catalogue(cfg["folder"])
    if cfg["kind"] == "coco":
        return _coco_catalogue(cfg["coco_annotations"], cfg["coco_images"], cfg["coco_people"])
    if cfg["kind"] == "embedded":
        return _embedded_catalogue()
    raise ValueError(f"backdrop kind {cfg['kind']!r} has no catalogue")


def usable_kind(cfg: dict) -> str:
    """The backdrop kind to draw from: the configured one, or 'procedural' when its files are
    missing and the config allows falling back (with a warning, once per process)."""
    if cfg["kind"] == "procedural":
        return "procedural"
    try:
        catalogue(cfg)
    except UserError as exc:
        if cfg["missing"] != "fallback":
            raise
        _warn_once(f"densesynth: warning: {exc}; using procedural backdrops (backdrop.missing: fallback)")
        return "procedural"
    return cfg["kind"]


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    print(message, file=sys.stderr)


@lru_cache(maxsize=1)
def _embedded_catalogue() -> tuple[Path, tuple[str, ...]]:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise UserError("backdrop.kind embedded needs scikit-image (its bundled photographs): pip install scikit-image")
    root = Path(spec.origin).parent / "data"
    missing = [name for name in EMBEDDED_PHOTOS if not (root / name).is_file()]
    if missing:
        raise UserError(f"scikit-image at {root} lacks {', '.join(missing)}: reinstall scikit-image")
    return root, EMBEDDED_PHOTOS


@lru_cache(maxsize=8)
def _folder_catalogue(folder: str) -> tuple[Path, tuple[str, ...]]:
    root = Path(folder).expanduser()
    if not folder or not root.is_dir():
        raise UserError(f"backdrop folder '{folder}' does not exist: set backdrop.folder to a folder of photographs")
    names = tuple(str(path.relative_to(root)) for path in image_files(root, IMAGE_SUFFIXES))
    if not names:
        raise UserError(f"backdrop folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return root, names


@lru_cache(maxsize=4)
def _coco_catalogue(annotations: str, images: str, people: str) -> tuple[Path, tuple[str, ...]]:
    path, root = Path(annotations).expanduser(), Path(images).expanduser()
    if not annotations or not path.is_file():
        raise UserError(f"COCO annotation file '{annotations}' does not exist: set backdrop.coco_annotations "
                        "(e.g. annotations/instances_train2017.json from cocodataset.org)")
    if not images or not root.is_dir():
        raise UserError(f"COCO image folder '{images}' does not exist: set backdrop.coco_images")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        with_people = {a["image_id"] for a in data.get("annotations", []) if a.get("category_id") == COCO_PERSON_CATEGORY}
        files = [(image["id"], image["file_name"]) for image in data["images"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"COCO annotation file {path} is not a COCO instances file ({exc})") from None
    keep = {
        "any": lambda image_id: True,
        "without": lambda image_id: image_id not in with_people,
        "with": lambda image_id: image_id in with_people,
    }[people]
    names = tuple(sorted(name for image_id, name in files if keep(image_id)))
    if not names:
        raise UserError(f"COCO annotation file {path} lists no images for backdrop.coco_people: {people}")
    return root, names


def draw_photo(d, cfg: dict) -> dict:
    """Which photograph and how it is cropped: recorded in the spec."""
    root, names = catalogue(cfg)
    return {
        "file": names[d.integer(len(names))],
        "zoom": d.uniform([1.0, 1.5]),
        "centre": [d.uniform([0.0, 1.0]), d.uniform([0.0, 1.0])],
        "flip": d.chance(0.5),
    }


def photo_backdrop(params: dict, cfg: dict, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]: the photo scaled to cover the frame, cropped, maybe flipped."""
    root, _ = catalogue(cfg)
    path = root / params["file"]
    image = read_image(path, cv2.IMREAD_COLOR, "backdrop image")
    scale = max(width / image.shape[1], height / image.shape[0]) * params["zoom"]
    resized = cv2.resize(image, (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0 = int(round(params["centre"][0] * (resized.shape[1] - width)))
    y0 = int(round(params["centre"][1] * (resized.shape[0] - height)))
    crop = resized[y0 : y0 + height, x0 : x0 + width]
    if params["flip"]:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop[..., ::-1], dtype=np.float32) / 255.0
