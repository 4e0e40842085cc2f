"""Photograph backdrops: a folder of images, or a COCO annotation file and its image folder.

The catalogue (the sorted list of usable files) is built once per process and cached, so a
sample's spec only records which file it drew (relative to the folder) and how it was
cropped: the same spec picks the same photo on any machine that has the same folder.
A COCO catalogue can keep only images without people (clean backgrounds) or only images
with people (harder negatives), read from the annotation file itself.
The scale / crop / flip is one `PhotoCrop` (`photo_crop`), so the photo's own COCO people can be
moved by exactly the transform its pixels went through (annotate/real_people.py).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PhotoPeople:
    """The annotated people of one COCO photograph and the size its `images` entry gives
    (None when the entry has none: `photo_size` then reads the file)."""

    annotations: tuple[dict, ...]
    size: tuple[int, int] | None = None  # (width, height)


@lru_cache(maxsize=2)
def _coco_index(annotations: str) -> dict[str, PhotoPeople]:
    """file name -> its photograph's size and person annotations, read once per process (a
    COCO file is hundreds of MB: only the person annotations are kept)."""
    path = Path(annotations).expanduser()
    if not annotations or not path.is_file():
        raise UserError(f"COCO annotation file '{annotations}' does not exist: set backdrop.coco_annotations "
                        "(e.g. annotations/instances_train2017.json from cocodataset.org)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        people: dict = {}
        for ann in data.get("annotations", []):
            if ann.get("category_id") == COCO_PERSON_CATEGORY:
                people.setdefault(ann["image_id"], []).append(ann)
        return {image["file_name"]: PhotoPeople(tuple(people.get(image["id"], ())),
                                                (int(image["width"]), int(image["height"]))
                                                if "width" in image and "height" in image else None)
                for image in data["images"]}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"COCO annotation file {path} is not a COCO instances file ({exc})") from None


def photo_people(cfg: dict, file_name: str) -> PhotoPeople | None:
    """The annotated people of a drawn photograph (kind coco), or None for other kinds."""
    if cfg["kind"] != "coco":
        return None
    return _coco_index(cfg["coco_annotations"])[file_name]


@lru_cache(maxsize=4)
def _coco_catalogue(annotations: str, images: str, people: str) -> tuple[Path, tuple[str, ...]]:
    root = Path(images).expanduser()
    index = _coco_index(annotations)
    if not images or not root.is_dir():
        raise UserError(f"COCO image folder '{images}' does not exist: set backdrop.coco_images")
    keep = {
        "any": lambda photo: True,
        "without": lambda photo: not photo.annotations,
        "with": lambda photo: bool(photo.annotations),
    }[people]
    path = Path(annotations).expanduser()
    names = tuple(sorted(name for name, photo in index.items() if keep(photo)))
    if not names:
        raise UserError(f"COCO annotation file {path} lists no images for backdrop.coco_people: {people}")
    return root, names


@lru_cache(maxsize=64)
def _file_size(path: str) -> tuple[int, int]:
    image = read_image(Path(path), cv2.IMREAD_COLOR, "backdrop image")
    return image.shape[1], image.shape[0]


def photo_size(cfg: dict, file_name: str) -> tuple[int, int]:
    """(width, height) of a catalogue photograph: from the COCO file when it says, else read."""
    people = photo_people(cfg, file_name)
    if people is not None and people.size is not None:
        return people.size
    root, _ = catalogue(cfg)
    return _file_size(str(root / file_name))


def draw_photo(d, cfg: dict) -> dict:
    """Which photograph and how it is cropped: recorded in the spec."""
    root, names = catalogue(cfg)
    return {
        "file": names[d.integer(len(names))],
        "zoom": d.uniform([1.0, 1.5]),
        "centre": [d.uniform([0.0, 1.0]), d.uniform([0.0, 1.0])],
        "flip": d.chance(0.5),
    }


@dataclass(frozen=True)
class PhotoCrop:
    """Where photo_backdrop puts the photograph: scale (per axis), crop origin, output size, flip.

    Kept as one value so that anything placed on the photograph (its own COCO people) is
    moved by exactly the transform the pixels went through. The scales are the rounded
    resized size over the photo size, since that is what cv2.resize stretches by.
    """

    scale_x: float
    scale_y: float
    x0: int
    y0: int
    width: int
    height: int
    flip: bool

    def resized_size(self, image_width: int, image_height: int) -> tuple[int, int]:
        """(w, h) the photo is resized to before cropping (exact: the scales came from it)."""
        return round(self.scale_x * image_width), round(self.scale_y * image_height)

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) photo coordinates -> output-frame coordinates, both continuous (COCO's
        segmentation / bbox convention: pixel (col, row) covers [col, col + 1), its centre
        is col + 0.5), so a flip is x -> width - x."""
        xy = np.asarray(xy, dtype=np.float64)
        x = xy[..., 0] * self.scale_x - self.x0
        y = xy[..., 1] * self.scale_y - self.y0
        if self.flip:
            x = self.width - x
        return np.stack([x, y], axis=-1)

    def matrix(self) -> np.ndarray:
        """(2, 3) affine of apply() in continuous coordinates (for composing with other frames)."""
        sx = -self.scale_x if self.flip else self.scale_x
        tx = self.width + self.x0 if self.flip else -self.x0
        return np.array([[sx, 0.0, tx], [0.0, self.scale_y, -self.y0]], dtype=np.float64)


def _cover_scale(params: dict, image_width: int, image_height: int, width: int, height: int) -> float:
    """The scale that makes the photo cover the frame, times the drawn zoom (before rounding)."""
    return max(width / image_width, height / image_height) * params["zoom"]


def photo_crop(params: dict, image_width: int, image_height: int, width: int, height: int) -> PhotoCrop:
    """The transform photo_backdrop applies to a photo of that size (photo_backdrop uses it)."""
    scale = _cover_scale(params, image_width, image_height, width, height)
    resized_w = max(width, round(image_width * scale))
    resized_h = max(height, round(image_height * scale))
    return PhotoCrop(
        scale_x=resized_w / image_width,
        scale_y=resized_h / image_height,
        x0=int(round(params["centre"][0] * (resized_w - width))),
        y0=int(round(params["centre"][1] * (resized_h - height))),
        width=int(width),
        height=int(height),
        flip=bool(params["flip"]),
    )


def photo_backdrop(params: dict, cfg: dict, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]: the photo scaled to cover the frame, cropped, maybe flipped."""
    return placed_photo(params, cfg, width, height)[0]


def placed_photo(params: dict, cfg: dict, width: int, height: int) -> tuple[np.ndarray, PhotoCrop, tuple[int, int]]:
    """(the backdrop as photo_backdrop gives it, the crop it went through, the photo's (w, h))."""
    root, _ = catalogue(cfg)
    path = root / params["file"]
    image = read_image(path, cv2.IMREAD_COLOR, "backdrop image")
    image_h, image_w = image.shape[:2]
    crop = photo_crop(params, image_w, image_h, width, height)
    scale = _cover_scale(params, image_w, image_h, width, height)
    resized = cv2.resize(image, crop.resized_size(image_w, image_h),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pixels = resized[crop.y0 : crop.y0 + height, crop.x0 : crop.x0 + width]
    if crop.flip:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels[..., ::-1], dtype=np.float32) / 255.0, crop, (image_w, image_h)
