"""Real people of a photograph backdrop, re-expressed in the rendered frame.

A COCO (or DensePose-COCO) photograph used as a backdrop brings its own people. If their
annotations were thrown away, every real person would teach the detector "this is
background"; if they were copied unchanged, they would be wrong wherever the backdrop was
scaled, cropped or flipped, and wherever a synthetic person or occluder now hides them.
`keep_real_people` moves each annotation through the exact `PhotoCrop` the pixels went
through and cuts away what is now covered.

Coordinates: segmentation, bbox and DensePose points are continuous (pixel (col, row)
covers [col, col + 1)); keypoints follow this repository's COCO writer and detectron2's
reader (`coco_densepose`: a keypoint at pixel index col means the pixel centre col + 0.5),
so they are shifted by half a pixel around the transform. DensePose points are
``x = bbox_x + dp_x / dp_size * bbox_w`` with ``dp_size`` 256, as this repository writes
them and detectron2's DensePose reads them (pass 255 for the original Caffe2 reading).

The rule, per instance (areas in output pixels):

* ``visible`` = its mask moved into the frame (the parts the crop cut off do not count:
  a person truncated by the frame edge is an ordinary COCO instance);
  ``kept`` = that mask AND NOT ``covered``.
* ``kept < drop_below_area`` (default 16 px, a 4 x 4 sliver): **dropped**; too little to
  annotate, or even to ignore.
* ``kept < min_kept_fraction * visible`` (default 0.5), or the input was already a crowd:
  **crowded**: ``iscrowd = 1`` with its cut mask as RLE, so a detector that fires on the
  remnant is neither rewarded nor punished. Keypoints become 51 zeros (COCOeval reads
  every ground truth's keypoints, crowds included) and the DensePose fields are removed.
* otherwise **cut** (some pixels now covered) or **kept** (none): the full annotation.

Keypoints outside the frame or on covered pixels become (0, 0, 0). DensePose points on
covered pixels, outside the frame or outside the new box are dropped; ``dp_masks`` are
resampled (nearest) into the new box with covered cells cleared. For a flipped crop the
DensePose fields are removed: `core.parts.FINE_FLIP` / `COARSE_FLIP` swap part labels,
but a mirrored point's U, V need DensePose's UV symmetry tables (UV_symmetry_transforms.mat,
or ones regenerated from a body's charts in densepose_train), which the renderer does not
have; flipped I with unflipped U, V would be wrong supervision. Keypoints do flip
exactly (`COCO_KEYPOINT_FLIP`).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..appearance.photo_backdrops import PhotoCrop
from ..core.parts import COCO_KEYPOINT_FLIP, NUM_COARSE_PARTS
from .coco_densepose import DP_SIZE

__all__ = ["DENSEPOSE_FIELDS", "KEYPOINT_OFFSET", "keep_real_people", "photo_mask"]

DENSEPOSE_FIELDS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks")
# Keypoints are pixel indices (centre of pixel col is col); the crop is continuous.
KEYPOINT_OFFSET = 0.5
_DP_POINT_FIELDS = ("dp_I", "dp_U", "dp_V")


def keep_real_people(
    annotations: Sequence[Mapping[str, Any]],
    crop: PhotoCrop,
    covered: np.ndarray,
    photo_size: tuple[int, int],
    *,
    min_kept_fraction: float = 0.5,
    drop_below_area: float = 16.0,
    dp_size: float = DP_SIZE,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The photograph's person annotations in the output frame, and how many were
    kept / cut / crowded / dropped (rule: module docstring).

    Args:
        annotations: COCO person annotations of the photograph (not modified).
        crop: the transform the backdrop went through (`photo_crop`).
        covered: (crop.height, crop.width) bool, output pixels synthetic people and
            occluders now cover.
        photo_size: (width, height) of the photograph (polygons need it to rasterise).
    """
    covered = np.asarray(covered, dtype=bool)
    if covered.shape != (crop.height, crop.width):
        raise ValueError(f"covered is {covered.shape}, the crop is {(crop.height, crop.width)}")
    counts = {"kept": 0, "cut": 0, "crowded": 0, "dropped": 0}
    out: list[dict[str, Any]] = []
    for ann in annotations:
        moved, status = _keep_one(ann, crop, covered, photo_size, min_kept_fraction, drop_below_area, dp_size)
        counts[status] += 1
        if moved is not None:
            out.append(moved)
    return out, counts


def _keep_one(ann: Mapping[str, Any], crop: PhotoCrop, covered: np.ndarray, photo_size: tuple[int, int],
              min_kept_fraction: float, drop_below_area: float,
              dp_size: float) -> tuple[dict[str, Any] | None, str]:
    """One annotation moved and cut, and its status; None when dropped."""
    frame_mask = _warp(photo_mask(ann, *photo_size), _index_matrix(crop.matrix()), (crop.width, crop.height), 0)
    kept_mask = frame_mask & ~covered
    visible, kept = int(frame_mask.sum()), int(kept_mask.sum())
    if kept < drop_below_area or visible == 0:
        return None, "dropped"
    moved = copy.deepcopy(dict(ann))
    moved.update(_mask_fields(kept_mask))
    if ann.get("iscrowd", 0) or kept < min_kept_fraction * visible:
        return _as_crowd(moved), "crowded"
    if "keypoints" in ann:
        moved["keypoints"], moved["num_keypoints"] = _move_keypoints(ann["keypoints"], crop, covered)
    _move_densepose(moved, ann, crop, covered, dp_size)
    return moved, ("cut" if kept < visible else "kept")


def photo_mask(ann: Mapping[str, Any], width: int, height: int) -> np.ndarray:
    """(height, width) bool mask of an annotation in its photograph, from polygons,
    compressed or uncompressed RLE, or (without a segmentation) its bbox."""
    segm = ann.get("segmentation")
    if isinstance(segm, dict):
        if isinstance(segm["counts"], (str, bytes)):
            counts = segm["counts"].encode("ascii") if isinstance(segm["counts"], str) else segm["counts"]
            rle = {"size": list(segm["size"]), "counts": counts}
        else:
            rle = mask_utils.frPyObjects(segm, height, width)
        if tuple(rle["size"]) != (height, width):
            raise ValueError(f"RLE of size {rle['size']} on a {width} x {height} photograph")
    else:
        # Fewer than 3 points is no polygon (and 4 numbers would be read as a bbox).
        polygons = [list(map(float, p)) for p in (segm or []) if len(p) >= 6]
        if not polygons:
            polygons = [list(map(float, ann["bbox"]))] if "bbox" in ann else []
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return mask_utils.decode(rle).astype(bool)


def _index_matrix(continuous: np.ndarray) -> np.ndarray:
    """A continuous-coordinate affine as cv2 wants it (pixel centres at integers)."""
    matrix = np.asarray(continuous, dtype=np.float64).copy()
    matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return matrix


def _warp(mask: np.ndarray, index_matrix: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """Nearest-neighbour resampling of a bool / label image into a (w, h) frame."""
    warped = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.uint8), index_matrix, size,
                            flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return warped.astype(bool) if mask.dtype == bool else warped


def _mask_fields(mask: np.ndarray) -> dict[str, Any]:
    """segmentation (compressed RLE, str counts for JSON), area and bbox of a mask."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
    }


def _as_crowd(moved: dict[str, Any]) -> dict[str, Any]:
    """An ignore region: no keypoints (zeros, as COCO writes crowds) and no DensePose."""
    moved["iscrowd"] = 1
    if "keypoints" in moved:
        moved["keypoints"] = [0] * len(moved["keypoints"])
        moved["num_keypoints"] = 0
    for field in DENSEPOSE_FIELDS:
        moved.pop(field, None)
    return moved


def _visible_at(xy: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Per continuous point: inside the frame and on an uncovered pixel."""
    height, width = covered.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    cols = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, height - 1)
    return inside & ~covered[rows, cols]


def _move_keypoints(keypoints: Sequence[float], crop: PhotoCrop, covered: np.ndarray) -> tuple[list[float], int]:
    """COCO keypoints moved (and left/right swapped when flipped); lost ones (0, 0, 0)."""
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    xy = crop.apply(kps[:, :2] + KEYPOINT_OFFSET)
    keep = (kps[:, 2] > 0) & _visible_at(xy, covered)
    moved = np.where(keep[:, None], np.column_stack([xy - KEYPOINT_OFFSET, kps[:, 2]]), 0.0)
    if crop.flip:
        moved = moved[list(COCO_KEYPOINT_FLIP)]
    flat: list[float] = []
    for x, y, v in moved:
        flat += [float(x), float(y), int(v)]
    return flat, int(np.count_nonzero(moved[:, 2]))


def _box_matrix(bbox: Sequence[float], dp_size: float) -> np.ndarray:
    """(3, 3) continuous affine from a box's dp_size x dp_size frame to the image."""
    x, y, w, h = map(float, bbox)
    return np.array([[w / dp_size, 0.0, x], [0.0, h / dp_size, y], [0.0, 0.0, 1.0]])


def _move_densepose(moved: dict[str, Any], ann: Mapping[str, Any], crop: PhotoCrop,
                    covered: np.ndarray, dp_size: float) -> None:
    """Re-express DensePose points and dp_masks in the new box, or remove them (flip, or
    nothing left) so that no instance carries half a DensePose annotation."""
    if not any(field in ann for field in DENSEPOSE_FIELDS):
        return
    if crop.flip or "bbox" not in ann:
        _remove_densepose(moved)
        return
    if "dp_x" in ann and not _move_points(moved, ann, crop, covered, dp_size):
        _remove_densepose(moved)
        return
    if "dp_masks" in ann:
        moved["dp_masks"] = _move_dp_masks(ann["dp_masks"], ann["bbox"], moved["bbox"], crop, covered)


def _frames(crop: PhotoCrop, old_bbox: Sequence[float], new_bbox: Sequence[float],
            grid: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(2, 3) continuous affines: old box grid -> output frame, old grid -> new grid,
    output frame -> new grid (a box grid is grid x grid over the box)."""
    old_to_frame = np.vstack([crop.matrix(), [0.0, 0.0, 1.0]]) @ _box_matrix(old_bbox, grid)
    frame_to_new = np.linalg.inv(_box_matrix(new_bbox, grid))
    return old_to_frame[:2], (frame_to_new @ old_to_frame)[:2], frame_to_new[:2]


def _remove_densepose(moved: dict[str, Any]) -> None:
    for field in DENSEPOSE_FIELDS:
        moved.pop(field, None)


def _move_points(moved: dict[str, Any], ann: Mapping[str, Any], crop: PhotoCrop,
                 covered: np.ndarray, dp_size: float) -> bool:
    """Move dp_x/dp_y into the new box, dropping covered / outside points; False if none left."""
    old_to_frame, old_to_new, _ = _frames(crop, ann["bbox"], moved["bbox"], dp_size)
    dp = np.column_stack([np.asarray(ann["dp_x"], np.float64), np.asarray(ann["dp_y"], np.float64)])
    if dp.size == 0:
        return False
    homogeneous = np.column_stack([dp, np.ones(len(dp))])
    in_frame, in_box = homogeneous @ old_to_frame.T, homogeneous @ old_to_new.T
    keep = _visible_at(in_frame, covered) & np.all((in_box >= 0) & (in_box < dp_size), axis=1)
    if not keep.any():
        return False
    moved["dp_x"] = [float(v) for v in in_box[keep, 0]]
    moved["dp_y"] = [float(v) for v in in_box[keep, 1]]
    for field in _DP_POINT_FIELDS:
        if field in ann:
            moved[field] = [float(v) for v in np.asarray(ann[field], np.float64)[keep]]
    return True


def _move_dp_masks(dp_masks: Sequence[Any], old_bbox: Sequence[float], new_bbox: Sequence[float],
                   crop: PhotoCrop, covered: np.ndarray) -> list[Any]:
    """The 14 coarse-part masks (always a 256 x 256 grid over the box, cell j covering
    [j, j + 1) of it) resampled into the new box; covered or off-frame cells cleared."""
    size = DP_SIZE
    _, old_to_new, frame_to_new = _frames(crop, old_bbox, new_bbox, size)
    labels = np.zeros((size, size), dtype=np.uint8)
    for k, rle in enumerate(dp_masks[:NUM_COARSE_PARTS]):
        if rle:
            labels[_decode_box_rle(rle, size)] = k + 1
    labels = _warp(labels, _index_matrix(old_to_new), (size, size), 0)
    hidden = _warp(covered, _index_matrix(frame_to_new), (size, size), 1)
    labels[hidden] = 0
    return [_mask_fields(labels == k + 1)["segmentation"] if (labels == k + 1).any() else []
            for k in range(NUM_COARSE_PARTS)]


def _decode_box_rle(rle: Mapping[str, Any], size: int) -> np.ndarray:
    """A dp_masks entry (compressed or uncompressed RLE on the box grid) as a bool mask."""
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(dict(rle), size, size)
    elif isinstance(counts, str):
        rle = {"size": list(rle["size"]), "counts": counts.encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


# The fields a kept real person carries into a sample's record (the photograph's own ids,
# image ids and extra keys are left behind: the dataset writer numbers annotations itself).
RECORD_FIELDS = ("iscrowd", "bbox", "area", "segmentation", "num_keypoints", "keypoints") + DENSEPOSE_FIELDS
PHOTO_SOURCE = "photo"  # the `source` of a kept real person (synthetic people carry none)


def as_record_annotation(moved: Mapping[str, Any]) -> dict[str, Any]:
    """A moved real person as a sample's annotation: the COCO fields only, category person,
    marked ``source: photo`` (checks that compare points with the rendered IUV skip it)."""
    out = {key: moved[key] for key in RECORD_FIELDS if key in moved}
    out["category_id"] = 1
    out["source"] = PHOTO_SOURCE
    return out


def through_lens(moved: Mapping[str, Any], warp: tuple[np.ndarray, np.ndarray], distort_keypoints,
                 drop_below_area: float = 16.0) -> dict[str, Any] | None:
    """A moved real person after the sample's lens distortion (the backdrop went through it).

    The mask is warped exactly as the image was (nearest, `lens.distort_mask`) and its box and
    area recomputed; keypoints go through `distort_keypoints(xy, v) -> (xy, v)`. The DensePose
    fields are removed: each point would move, but its box frame and dp_masks would need
    re-rasterising from a photograph that only has sampled points; a distorted sample's real
    people are detection and keypoint instances. None when the lens leaves too little.
    """
    from ..appearance.lens import distort_mask

    height, width = moved["segmentation"]["size"]
    mask = mask_utils.decode({"size": [height, width], "counts": moved["segmentation"]["counts"].encode("ascii")})
    warped = distort_mask(mask.astype(bool), warp).astype(bool)
    if warped.sum() < drop_below_area:
        return None
    out = {key: value for key, value in moved.items() if key not in DENSEPOSE_FIELDS}
    out.update(_mask_fields(warped))
    if "keypoints" in moved and not out.get("iscrowd", 0):
        triples = np.asarray(moved["keypoints"], dtype=np.float64).reshape(-1, 3)
        xy, v = distort_keypoints(triples[:, :2], triples[:, 2].astype(int))
        xy = np.where((v > 0)[:, None], xy, 0.0)
        out["keypoints"] = [float(x) if i % 3 < 2 else int(x)
                            for i, x in enumerate(np.column_stack([xy, v]).ravel())]
        out["num_keypoints"] = int((v > 0).sum())
    return out
