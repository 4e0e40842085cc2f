"""COCO-DensePose annotations from decoded IUV maps.

Coordinate conventions (all chosen to match what detectron2 / DensePose read back):

* Pixel (col, row) covers the square [col, col+1) x [row, row+1) in COCO's continuous
  coordinates used by ``bbox`` and ``segmentation``: ``bbox = [min col, min row,
  max col - min col + 1, max row - min row + 1]`` encloses whole pixels.
* ``keypoints`` use COCO's *pixel index* convention: the centre of pixel (col, row) is
  (col, row), i.e. exactly OpenCV's convention, so ``keypoints_xy`` from the projection is
  written unchanged. Evidence: detectron2's COCO loader adds 0.5 to keypoint x, y on load
  ("keypoint coordinates are integers in [0, H-1 or W-1] ... pixel indices") and its COCO
  exporter subtracts 0.5 again. Writing pixel centres as col + 0.5 here would shift every
  keypoint by half a pixel after detectron2 loads it. Entries with v = 0 are 0, 0, 0.
* ``dp_x, dp_y`` are pixel centres in the box stretched to 256 x 256:
  ``dp_x = (col + 0.5 - x0) / w * 256`` (DensePose maps back with ``x0 + dp_x * w / 256``),
  so every value lies in [0, 256).
* ``dp_masks[k]`` (k = 0..13) paints coarse label k + 1 on the same 256 x 256 box frame,
  row index = dp_y cell, column index = dp_x cell (as ``pycocotools.mask.decode`` returns
  it); absent parts are ``[]``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.label_maps import IUVMaps
from ..io_utils import atomic_write_bytes
from ..core.parts import COCO_KEYPOINT_NAMES, COCO_SKELETON, FINE_TO_COARSE, NUM_COARSE_PARTS
from .points import sample_points

__all__ = [
    "DP_SIZE",
    "UV_EPS",
    "PERSON_CATEGORY",
    "bbox_of_mask",
    "encode_rle",
    "dp_coordinates",
    "dp_cells",
    "coarse_grid",
    "person_annotation",
    "sequence_fields",
    "image_extras",
    "DatasetWriter",
]

DP_SIZE = 256
# dp_U, dp_V are clipped to [UV_EPS, 1 - UV_EPS]: strictly inside (0, 1) even after a
# float32 cast by the trainer (float32 spacing below 1.0 is 6e-8), and far below the 1e-6
# tolerance the rules checker allows against the EXR.
UV_EPS = 1e-7

# Sequences (`sequence.length` > 1) link their frames' annotations: image and annotation carry
# `sequence` (the sequence id) and `frame_index` (0-based frame in it), an annotation also
# `track_id`, the same for one person in every frame of its sequence and never shared
# across the run: sequence * TRACKS_PER_SEQUENCE + person number + 1 (config/loader.py
# allows at most 8 people per image). Without sequences none of these keys is written.
TRACKS_PER_SEQUENCE = 8
SEQUENCE_IMAGE_KEYS = ("sequence", "frame_index")


def sequence_fields(sequence: Mapping[str, Any] | None, person: int | None = None) -> dict[str, int]:
    """The linking keys of an image (person None) or of person `person`'s annotation, from a
    spec's `sequence` entry; {} outside sequences."""
    if not sequence:
        return {}
    fields = {"sequence": int(sequence["id"]), "frame_index": int(sequence["frame"])}
    if person is not None:
        if not 0 <= person < TRACKS_PER_SEQUENCE:
            raise ValueError(f"person number {person} outside 0..{TRACKS_PER_SEQUENCE - 1}")
        fields["track_id"] = int(sequence["id"]) * TRACKS_PER_SEQUENCE + person + 1
    return fields


def image_extras(image: Mapping[str, Any]) -> dict[str, int]:
    """The linking keys a record's image entry carries into the COCO image (none by default)."""
    return {key: int(image[key]) for key in SEQUENCE_IMAGE_KEYS if key in image}


PERSON_CATEGORY: dict[str, Any] = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
    "skeleton": [list(edge) for edge in COCO_SKELETON],
}


def bbox_of_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight [x, y, w, h] around the True pixels in pixel-edge coordinates, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    x0, y0 = int(cols[0]), int(rows[0])
    return x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a 2-D mask with ``counts`` as str (JSON-serialisable)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii")}


def dp_coordinates(rows: np.ndarray, cols: np.ndarray,
                   bbox: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres -> (dp_x, dp_y) in the 256 x 256 box frame (each axis on its own)."""
    x0, y0, w, h = bbox
    dp_x = (np.asarray(cols, np.float64) + 0.5 - x0) / w * DP_SIZE
    dp_y = (np.asarray(rows, np.float64) + 0.5 - y0) / h * DP_SIZE
    return dp_x, dp_y


def dp_cells(dp_x: np.ndarray, dp_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cell row, cell col) of the 256 x 256 mask cell under each dp point."""
    cy = np.clip(np.floor(dp_y).astype(np.int64), 0, DP_SIZE - 1)
    cx = np.clip(np.floor(dp_x).astype(np.int64), 0, DP_SIZE - 1)
    return cy, cx


def coarse_grid(coarse: np.ndarray, bbox: Sequence[int]) -> np.ndarray:
    """Sample a coarse label image at the 256 x 256 cell centres mapped into the box.

    Cell j's centre (j + 0.5) maps to image x = x0 + (j + 0.5) * w / 256, which lies inside
    pixel floor(x) in [x0, x0 + w - 1]: nearest-neighbour, never outside the box.
    """
    x0, y0, w, h = bbox
    centres = np.arange(DP_SIZE, dtype=np.float64) + 0.5
    src_cols = np.clip(np.floor(x0 + centres * w / DP_SIZE).astype(np.int64), x0, x0 + w - 1)
    src_rows = np.clip(np.floor(y0 + centres * h / DP_SIZE).astype(np.int64), y0, y0 + h - 1)
    return coarse[np.ix_(src_rows, src_cols)].astype(np.uint8)


def _keypoint_list(keypoints_xy: np.ndarray, visibility: np.ndarray) -> tuple[list[float], int]:
    """51 COCO numbers x, y, v (v = 0 entries as 0, 0, 0) and the count of v > 0."""
    xy = np.asarray(keypoints_xy, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visibility, dtype=np.int64).reshape(-1)
    if xy.shape[0] != len(COCO_KEYPOINT_NAMES) or vis.shape[0] != xy.shape[0]:
        raise ValueError(f"expected 17 keypoints and 17 flags, got {xy.shape} and {vis.shape}")
    if not np.isin(vis, (0, 1, 2)).all():
        raise ValueError(f"keypoint visibility must be 0, 1 or 2, got {vis.tolist()}")
    out: list[float] = []
    for (x, y), v in zip(xy, vis):
        if v == 0:
            out += [0.0, 0.0, 0]
            continue
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"keypoint with v={v} has non-finite position ({x}, {y})")
        out += [float(x), float(y), int(v)]
    return out, int(np.count_nonzero(vis))


def _drop_cell_conflicts(cy: np.ndarray, cx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Keep-mask over points so that no two kept points in one cell differ in label.

    With a box wider than 256 px several pixels share a cell; if they lie on different
    coarse parts the cell can carry only one label (DensePose paints one label per cell),
    so the first point (raster order) keeps the cell and the disagreeing ones are dropped.
    """
    cell = cy * DP_SIZE + cx
    _, first_idx, inverse = np.unique(cell, return_index=True, return_inverse=True)
    return labels == labels[first_idx][inverse]


def _dp_masks(grid: np.ndarray) -> list[Any]:
    """14 entries: RLE of (grid == k + 1) for present coarse parts, [] for absent ones."""
    masks: list[Any] = []
    for label in range(1, NUM_COARSE_PARTS + 1):
        part = grid == label
        masks.append(encode_rle(part) if part.any() else [])
    return masks


def person_annotation(
    maps: IUVMaps,
    person_mask: np.ndarray,
    keypoints_xy: np.ndarray,
    keypoint_visibility: np.ndarray,
    num_points: int,
    seed: int,
) -> dict[str, Any] | None:
    """One person's COCO-DensePose annotation (without ``id`` / ``image_id``).

    Args:
        maps: decoded IUV pass of the image.
        person_mask: (H, W) bool, this person's pixels (intersected with ``maps.I > 0``).
        keypoints_xy: (17, 2) image positions, OpenCV / COCO pixel-index convention.
        keypoint_visibility: (17,) ints in {0, 1, 2}.
        num_points: DensePose points to sample (fewer when the body has fewer pixels, or
            when big boxes force dropping points whose 256-grid cell is another part's).
        seed: point sampling seed.

    Returns:
        A dict with bbox, area, segmentation, iscrowd, category_id, num_keypoints,
        keypoints, dp_x, dp_y, dp_I, dp_U, dp_V, dp_masks; None without visible pixels.
    """
    body = np.asarray(person_mask, dtype=bool) & (maps.I > 0)
    bbox = bbox_of_mask(body)
    if bbox is None:
        return None
    keypoints, num_keypoints = _keypoint_list(keypoints_xy, keypoint_visibility)

    rows, cols = sample_points(body, num_points, seed)
    fine = maps.I[rows, cols].astype(np.int64)
    dp_x, dp_y = dp_coordinates(rows, cols, bbox)
    cy, cx = dp_cells(dp_x, dp_y)
    coarse_pts = FINE_TO_COARSE[fine]
    keep = _drop_cell_conflicts(cy, cx, coarse_pts)
    rows, cols, fine, dp_x, dp_y, cy, cx, coarse_pts = (
        a[keep] for a in (rows, cols, fine, dp_x, dp_y, cy, cx, coarse_pts)
    )

    grid = coarse_grid(np.where(body, FINE_TO_COARSE[maps.I], 0), bbox)
    grid[cy, cx] = coarse_pts  # every point's cell carries the point's own coarse part
    u = np.clip(maps.U[rows, cols].astype(np.float64), UV_EPS, 1.0 - UV_EPS)
    v = np.clip(maps.V[rows, cols].astype(np.float64), UV_EPS, 1.0 - UV_EPS)

    return {
        "iscrowd": 0,
        "category_id": PERSON_CATEGORY["id"],
        "bbox": [float(c) for c in bbox],
        "area": float(body.sum()),
        "segmentation": encode_rle(body),
        "num_keypoints": num_keypoints,
        "keypoints": keypoints,
        "dp_x": dp_x.tolist(),
        "dp_y": dp_y.tolist(),
        "dp_I": fine.astype(np.float64).tolist(),
        "dp_U": u.tolist(),
        "dp_V": v.tolist(),
        "dp_masks": _dp_masks(grid),
    }


class DatasetWriter:
    """Collects images and annotations and writes one COCO-DensePose json.

    Ids are assigned sequentially from 1 in call order, so the same sequence of calls
    gives byte-identical output (no timestamps, fixed key order, floats via ``repr``).
    """

    def __init__(self, info: Mapping[str, Any] | None = None,
                 licenses: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.info: dict[str, Any] = dict(info) if info is not None else {
            "description": "DenseSynth synthetic people with exact DensePose ground truth",
            "version": "1.0",
            "contributor": "DenseSynth",
        }
        self.licenses: list[dict[str, Any]] = [dict(x) for x in (licenses or [])]
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add_image(self, file_name: str, height: int, width: int, extra: Mapping[str, Any] | None = None) -> int:
        """Register an image (``file_name`` relative to ``DIR/images``); returns its id.
        ``extra`` keys (e.g. :func:`image_extras`) follow the standard ones."""
        if os.path.isabs(file_name):
            raise ValueError(f"file_name must be relative to the images dir: {file_name!r}")
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": str(file_name).replace(os.sep, "/"),
                            "height": int(height), "width": int(width), **(extra or {})})
        return image_id

    def add_annotation(self, image_id: int, annotation: Mapping[str, Any]) -> int:
        """Attach a :func:`person_annotation` dict to an image; returns the annotation id."""
        if not 1 <= image_id <= len(self.images):
            raise ValueError(f"unknown image id {image_id}")
        ann_id = len(self.annotations) + 1
        self.annotations.append({"id": ann_id, "image_id": int(image_id), **annotation})
        return ann_id

    def to_dict(self) -> dict[str, Any]:
        """The COCO dictionary."""
        return {
            "info": self.info,
            "licenses": self.licenses,
            "images": self.images,
            "annotations": self.annotations,
            "categories": [copy.deepcopy(PERSON_CATEGORY)],
        }

    def to_bytes(self) -> bytes:
        """Deterministic UTF-8 JSON; NaN/inf are rejected rather than written as invalid JSON."""
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False,
                          ensure_ascii=True)
        return (text + "\n").encode("utf-8")

    def write(self, path: str | os.PathLike) -> None:
        """Write the json atomically (temp file + ``os.replace``)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_bytes(path, self.to_bytes())
