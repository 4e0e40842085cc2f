"""Read and validate a COCO-DensePose annotation file: DenseSynth's, or real DensePose-COCO.

Every user mistake is one TrainUserError line naming the file and the fix. The file is parsed
once into compact NumPy arrays per person (the json objects are dropped); images are read
lazily with OpenCV, and their size is checked against the json when they are read.

Which images are used by whom (DensePose's own rules):

- Training (`CocoDensePose.training_entries`, used by `data.dataset.DensePoseDataset`):
  `iscrowd` people are dropped (DensePose's DatasetMapper does), and an image is kept only
  if at least one of its remaining people carries all of dp_x, dp_y, dp_I, dp_U, dp_V
  (DensePose's keep predicate in `densepose/data/build.py`). People without DensePose fields
  in a kept image stay, as box/mask supervision with no points.
- Evaluation ground truth (`CocoDensePose.evaluation_entries`, and the json itself for
  pycocotools): every image, crowds included (COCOeval uses crowds as ignore regions and
  counts images without points for box and mask AP).

Where images are looked up: a dataset folder `DIR` means `DIR/annotations.json` with images
under `DIR/images/`; a json path means the given `images_dir`, else `<json folder>/images/`
when that exists, else the json's folder (`file_name` is relative to it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from densepose_train.data.targets import DP_SIZE
from densepose_train.errors import TrainUserError

__all__ = ["CocoDensePose", "ImageEntry", "Instance", "DensePosePoints", "DP_KEYS", "resolve_source",
           "ANNOTATIONS_FILE", "decode_dp_masks", "decode_segmentation"]

ANNOTATIONS_FILE = "annotations.json"
DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
NUM_COARSE = 14
NUM_FINE = 24


@dataclass(frozen=True, eq=False)
class DensePosePoints:
    """One person's DensePose annotation: points in the 256 box frame, and the 14 part RLEs.

    masks: 14 entries (a compressed or uncompressed RLE dict, or None for an absent part), or
    None when the annotation has no dp_masks.
    """

    x: np.ndarray  # float32 (P,)
    y: np.ndarray  # float32 (P,)
    i: np.ndarray  # uint8 (P,) 1..24
    u: np.ndarray  # float32 (P,)
    v: np.ndarray  # float32 (P,)
    masks: tuple[dict[str, Any] | None, ...] | None

    def mask_image(self) -> np.ndarray | None:
        """(256, 256) uint8 coarse labels (mask k paints k + 1, later parts over earlier), or None."""
        return None if self.masks is None else decode_dp_masks(self.masks)


@dataclass(frozen=True, eq=False)
class Instance:
    """One person: COCO box (XYWH, pixels), crowd flag, raw segmentation, DensePose or None."""

    ann_id: int
    bbox: tuple[float, float, float, float]
    iscrowd: bool
    segmentation: Any
    dp: DensePosePoints | None


@dataclass(eq=False)
class ImageEntry:
    """One image of the file and its people (size as the json states it; checked on every read)."""

    image_id: int
    file_name: str
    height: int
    width: int
    instances: tuple[Instance, ...]

    @property
    def trainable(self) -> bool:
        """DensePose's keep predicate: some non-crowd person carries all DensePose point fields."""
        return any(inst.dp is not None and not inst.iscrowd for inst in self.instances)


def decode_dp_masks(masks: Sequence[dict[str, Any] | None]) -> np.ndarray:
    """Paint the 14 part RLEs into one (256, 256) uint8 label image, as DensePose does."""
    import pycocotools.mask as mask_utils

    label = np.zeros((DP_SIZE, DP_SIZE), dtype=np.uint8)
    for k, rle in enumerate(masks):
        if rle:
            label[mask_utils.decode(_compressed(rle)) > 0] = k + 1
    return label


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 0/1 mask of a COCO segmentation: polygons, uncompressed or compressed RLE."""
    import pycocotools.mask as mask_utils

    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    else:
        rle = _compressed(segmentation)
    return mask_utils.decode(rle).astype(np.uint8)


def _compressed(rle: dict[str, Any]) -> dict[str, Any]:
    import pycocotools.mask as mask_utils

    if isinstance(rle.get("counts"), list):
        height, width = rle["size"]
        return mask_utils.frPyObjects(rle, height, width)
    return rle


def resolve_source(source: str | Path, images_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(annotation json, images folder) of a `--data` path; see the module docstring."""
    source = Path(source)
    if source.is_dir():
        json_path = source / ANNOTATIONS_FILE
        if not json_path.is_file():
            if (source / "records").is_dir():
                raise TrainUserError(f"{source} has no {ANNOTATIONS_FILE}: run `python -m farm merge {source}` first")
            raise TrainUserError(f"{source} has no {ANNOTATIONS_FILE}: pass a DenseSynth output folder or a "
                                 "COCO-DensePose json file")
        default_images = source / "images"
    elif source.is_file():
        json_path = source
        default_images = source.parent / "images" if (source.parent / "images").is_dir() else source.parent
    else:
        raise TrainUserError(f"{source} does not exist: pass a DenseSynth output folder or a COCO-DensePose json file")
    images = Path(images_dir) if images_dir is not None else default_images
    if not images.is_dir():
        raise TrainUserError(f"{json_path}: images folder {images} does not exist; give the right one as "
                             f"{json_path}::IMAGES_DIR")
    return json_path, images


class CocoDensePose:
    """A validated COCO-DensePose file: its images (`entries`) and where their files are."""

    def __init__(self, json_path: Path, images_dir: Path, entries: list[ImageEntry], stats: dict[str, int]):
        self.json_path = json_path
        self.images_dir = images_dir
        self.entries = entries
        self.stats = stats

    @classmethod
    def load(cls, source: str | Path, images_dir: str | Path | None = None, check_files: bool = True) -> "CocoDensePose":
        """Parse and validate; `check_files` also requires every image file to exist (a stat per image)."""
        json_path, images = resolve_source(source, images_dir)
        data = _read_json(json_path)
        entries, stats = _parse(json_path, data)
        del data
        coco = cls(json_path, images, entries, stats)
        if check_files:
            coco._check_files()
        return coco

    def __len__(self) -> int:
        return len(self.entries)

    def training_entries(self) -> list[ImageEntry]:
        """Images DensePose trains on (see the module docstring)."""
        return [entry for entry in self.entries if entry.trainable]

    def evaluation_entries(self) -> list[ImageEntry]:
        """All images: evaluation ground truth keeps images without points and crowds."""
        return list(self.entries)

    def image_path(self, entry: ImageEntry) -> Path:
        return self.images_dir / entry.file_name

    def read_image(self, entry: ImageEntry) -> np.ndarray:
        """(H, W, 3) uint8 RGB; an unreadable file or a size that disagrees with the json is a TrainUserError."""
        import cv2

        path = self.image_path(entry)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise TrainUserError(f"{path}: cannot read the image (missing, corrupt or not an image); re-render it or "
                                 f"remove image id {entry.image_id} from {self.json_path}")
        height, width = image.shape[:2]
        if (height, width) != (entry.height, entry.width):
            raise TrainUserError(f"{path}: image is {width}x{height} pixels but {self.json_path} says "
                                 f"{entry.width}x{entry.height} (width x height); fix the json's width/height or "
                                 "replace the image")
        return np.ascontiguousarray(image[:, :, ::-1])

    def _check_files(self) -> None:
        missing = [entry.file_name for entry in self.entries if not self.image_path(entry).is_file()]
        if missing:
            raise TrainUserError(f"{self.json_path}: {len(missing)} of {len(self.entries)} images are missing under "
                                 f"{self.images_dir} (first: {missing[0]}); put them there or give their folder as "
                                 f"{self.json_path}::IMAGES_DIR")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise TrainUserError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); pass a "
                             "COCO-DensePose annotations file") from None
    except UnicodeDecodeError:
        raise TrainUserError(f"{path} is not JSON (not UTF-8 text); pass a COCO-DensePose annotations file") from None
    except OSError as exc:
        raise TrainUserError(f"{path}: cannot read ({exc.strerror}); check the path and its permissions") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise TrainUserError(f"{path} is not a COCO file (needs 'images' and 'annotations' lists); pass a "
                             "COCO-DensePose annotations file")
    return data


def _person_category(data: dict[str, Any]) -> int | None:
    """Id of the 'person' category, or None to accept every annotation (no categories list)."""
    for category in data.get("categories") or []:
        if isinstance(category, dict) and category.get("name") == "person":
            return category.get("id")
    return None


def _parse(path: Path, data: dict[str, Any]) -> tuple[list[ImageEntry], dict[str, int]]:
    def fail(what: str, fix: str = "fix or regenerate the file") -> TrainUserError:
        return TrainUserError(f"{path}: {what}; {fix}")

    images: dict[int, dict[str, Any]] = {}
    for image in data["images"]:
        if not isinstance(image, dict) or not all(k in image for k in ("id", "file_name", "height", "width")):
            raise fail("an image entry lacks id, file_name, height or width")
        if image["id"] in images:
            raise fail(f"image id {image['id']} appears twice")
        images[image["id"]] = image
    person = _person_category(data)
    people: dict[int, list[Instance]] = {image_id: [] for image_id in images}
    seen_ids: set[int] = set()
    stats = {"images": len(images), "annotations": 0, "crowd": 0, "densepose": 0, "densepose_without_masks": 0,
             "densepose_empty_masks": 0, "other_categories": 0}
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "id" not in ann or "image_id" not in ann:
            raise fail("an annotation lacks id or image_id")
        ann_id = ann["id"]
        if ann_id in seen_ids:
            raise fail(f"annotation id {ann_id} appears twice", "give every annotation a unique id")
        seen_ids.add(ann_id)
        if person is not None and ann.get("category_id", person) != person:
            stats["other_categories"] += 1
            continue
        if ann["image_id"] not in people:
            raise fail(f"annotation id {ann_id} refers to image id {ann['image_id']}, which is not in 'images'")
        instance = _instance(ann, fail)
        stats["annotations"] += 1
        stats["crowd"] += int(instance.iscrowd)
        if instance.dp is not None:
            stats["densepose"] += 1
            if instance.dp.masks is None:
                stats["densepose_without_masks"] += 1
            elif not any(instance.dp.masks):
                stats["densepose_empty_masks"] += 1
        people[ann["image_id"]].append(instance)
    if stats["densepose"] == 0:
        raise TrainUserError(f"{path} has no DensePose fields ({', '.join(DP_KEYS)}) in any of its "
                             f"{stats['annotations']} annotations: it is plain COCO; pass a DensePose-COCO file "
                             "(e.g. densepose_coco_2014_train.json) or a DenseSynth dataset")
    entries = [ImageEntry(int(image_id), str(image["file_name"]), int(image["height"]), int(image["width"]),
                          tuple(people[image_id])) for image_id, image in images.items()]
    return entries, stats


def _instance(ann: dict[str, Any], fail) -> Instance:
    ann_id = ann["id"]
    where = f"annotation id {ann_id}"
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 \
            or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bbox):
        raise fail(f"{where} has no valid bbox [x, y, w, h]")
    iscrowd = bool(ann.get("iscrowd", 0))
    present = [key for key in DP_KEYS if key in ann]
    dp = None
    if present and len(present) < len(DP_KEYS):
        missing = [key for key in DP_KEYS if key not in ann]
        raise fail(f"{where} has {', '.join(present)} but not {', '.join(missing)}",
                   "write all five DensePose point fields or none")
    if present:
        dp = _densepose(ann, where, fail)
    return Instance(int(ann_id), tuple(float(b) for b in bbox), iscrowd, ann.get("segmentation"), dp)


def _densepose(ann: dict[str, Any], where: str, fail) -> DensePosePoints:
    arrays = {}
    for key in DP_KEYS:
        value = ann[key]
        if not isinstance(value, list):
            raise fail(f"{where}: {key} is not a list")
        try:
            arrays[key] = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise fail(f"{where}: {key} holds non-numbers") from None
        if len(arrays[key]) != len(value) or not np.isfinite(arrays[key]).all():
            raise fail(f"{where}: {key} holds non-numbers or NaN/infinite values")
    lengths = {key: len(arrays[key]) for key in DP_KEYS}
    if len(set(lengths.values())) > 1:
        text = ", ".join(f"{key} {n}" for key, n in lengths.items())
        raise fail(f"{where}: DensePose point lists differ in length ({text})", "write one entry per point in each")
    part = arrays["dp_I"]
    if len(part) and ((part != np.rint(part)).any() or part.min() < 1 or part.max() > NUM_FINE):
        bad = part[(part != np.rint(part)) | (part < 1) | (part > NUM_FINE)][0]
        raise fail(f"{where}: dp_I value {bad:g} is not a part index 1..24", "write fine part labels 1..24")
    for key in ("dp_U", "dp_V"):
        values = arrays[key]
        if len(values) and (values.min() < 0.0 or values.max() > 1.0):
            bad = values[(values < 0) | (values > 1)][0]
            raise fail(f"{where}: {key} value {bad:g} is outside [0, 1]", "write chart coordinates in [0, 1]")
    for key in ("dp_x", "dp_y"):
        values = arrays[key]
        # One unit of slack: a point on the box border is harmless, image pixels are not.
        if len(values) and (values.min() < -1.0 or values.max() > DP_SIZE + 1.0):
            bad = values[(values < -1.0) | (values > DP_SIZE + 1.0)][0]
            raise fail(f"{where}: {key} value {bad:g} is outside the 256 box frame [0, 256]",
                       "write dp_x = (x - x0) / w * 256")
    masks = None
    if "dp_masks" in ann:
        raw = ann["dp_masks"]
        if not isinstance(raw, list) or len(raw) != NUM_COARSE:
            count = len(raw) if isinstance(raw, list) else type(raw).__name__
            raise fail(f"{where}: dp_masks has {count} entries, expected 14 (one RLE or [] per coarse part)",
                       "write all 14 entries")
        masks = []
        for k, rle in enumerate(raw):
            if not rle:
                masks.append(None)
                continue
            if not isinstance(rle, dict) or "counts" not in rle or list(rle.get("size", [])) != [DP_SIZE, DP_SIZE]:
                raise fail(f"{where}: dp_masks[{k}] is not a 256 x 256 RLE dict", "write {'size': [256, 256], 'counts': ...}")
            masks.append(rle)
        masks = tuple(masks)
    return DensePosePoints(arrays["dp_x"].astype(np.float32), arrays["dp_y"].astype(np.float32),
                           part.astype(np.uint8), arrays["dp_U"].astype(np.float32),
                           arrays["dp_V"].astype(np.float32), masks)
