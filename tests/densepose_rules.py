"""Reusable checker: does a COCO-DensePose json obey every rule a DensePose trainer relies on?

``check_coco_densepose(annotations_json_path, images_dir, iuv_dir)`` re-reads the file with
pycocotools and asserts the rules of ``shared/reference/densepose-format.md`` plus the
ground-truth agreement with the rendered IUV EXRs. It deliberately shares no code with the
``densesynth`` package (own part table, own EXR reader) so it can catch the package's bugs.

Layout expected: ``images_dir / file_name`` is the image and
``iuv_dir / file_name`` with suffix ``.exr`` its IUV pass (``DIR/iuv/<stem>.exr`` for flat
file names). Call it from any test, including the end-to-end render test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_coco_densepose", "read_exr_iuv"]

DP_SIZE = 256
NUM_COARSE = 14
# The reference table, written out independently of densesynth.core.parts.
_COARSE_GROUPS = {
    1: (1, 2), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7, 9), 7: (8, 10), 8: (11, 13),
    9: (12, 14), 10: (15, 17), 11: (16, 18), 12: (19, 21), 13: (20, 22), 14: (23, 24),
}
COARSE_OF_FINE = {fine: coarse for coarse, fines in _COARSE_GROUPS.items() for fine in fines}
COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
UV_TOL = 1e-6


def read_exr_iuv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I uint8, U float32, V float32) straight from the EXR: I = round(R) where A > 0.5."""
    import OpenEXR

    channels = {n: np.asarray(c.pixels, dtype=np.float32)
                for n, c in OpenEXR.File(str(path), separate_channels=True).channels().items()}

    def get(letter: str) -> np.ndarray:
        names = [n for n in channels if n == letter or n.endswith("." + letter)]
        assert len(names) == 1, f"{path}: channel {letter} not found once in {sorted(channels)}"
        return channels[names[0]]

    r, g, b, a = (get(c) for c in "RGBA")
    i = np.where(a > 0.5, np.rint(r), 0).astype(np.uint8)
    return i, g, b


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"json holds non-standard constant {name}")


def _decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode(rle)


def _check_categories(data: dict) -> None:
    cats = data["categories"]
    person = [c for c in cats if c["id"] == 1]
    assert len(person) == 1, f"need exactly one category with id 1, got {cats}"
    p = person[0]
    assert p["name"] == "person" and p["supercategory"] == "person", p
    assert p["keypoints"] == COCO17, p["keypoints"]
    for a, b in p["skeleton"]:
        assert 1 <= a <= 17 and 1 <= b <= 17, p["skeleton"]


def _check_image_files(coco: Any, images_dir: Path) -> None:
    import cv2

    for img in coco.dataset["images"]:
        path = images_dir / img["file_name"]
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert arr is not None, f"image {path} missing or unreadable"
        assert (img["height"], img["width"]) == arr.shape[:2], (
            f"{path}: json says {img['height']}x{img['width']}, file is {arr.shape[:2]}")


def _check_segmentation(ann: dict, img: dict) -> None:
    seg = ann["segmentation"]
    assert isinstance(seg, dict) and isinstance(seg["counts"], str), "need compressed RLE, str"
    assert list(seg["size"]) == [img["height"], img["width"]], (seg["size"], img)
    mask = _decode(seg).astype(bool)
    assert ann["area"] == mask.sum(), (ann["area"], int(mask.sum()))
    rows, cols = np.nonzero(mask)
    assert rows.size > 0, f"annotation {ann['id']} has an empty mask"
    x, y = cols.min(), rows.min()
    expect = [x, y, cols.max() - x + 1, rows.max() - y + 1]
    assert list(ann["bbox"]) == expect, f"bbox {ann['bbox']} != mask extent {expect}"


def _check_keypoints(ann: dict) -> None:
    kps = ann["keypoints"]
    assert len(kps) == 51, len(kps)
    vis = kps[2::3]
    assert all(v in (0, 1, 2) for v in vis), vis
    for k, v in enumerate(vis):
        if v == 0:
            assert kps[3 * k] == 0 and kps[3 * k + 1] == 0, f"v=0 keypoint {k} not 0,0,0"
    assert ann["num_keypoints"] == sum(v > 0 for v in vis)


def _painted_masks(masks: list) -> np.ndarray:
    """What DensePose's loader builds: segm[mask_k > 0] = k + 1, later masks on top."""
    assert isinstance(masks, list) and len(masks) == NUM_COARSE, "need exactly 14 dp_masks"
    segm = np.zeros((DP_SIZE, DP_SIZE), np.uint8)
    for k, m in enumerate(masks):
        if isinstance(m, list):
            assert m == [], f"dp_masks[{k}] must be [] or an RLE dict"
            continue
        assert list(m["size"]) == [DP_SIZE, DP_SIZE] and isinstance(m["counts"], str), m
        decoded = _decode(m)
        assert decoded.shape == (DP_SIZE, DP_SIZE)
        assert decoded.any(), f"dp_masks[{k}] is present but empty"
        segm[decoded > 0] = k + 1
    assert segm.any(), "all 14 dp_masks empty"
    return segm


def _check_point_ranges(ann: dict) -> None:
    """The format rules a point obeys whoever annotated it: lengths, box frame, parts, U and V."""
    n = len(ann["dp_x"])
    assert n > 0 and all(len(ann[key]) == n for key in DP_KEYS), ann["id"]
    dp_x, dp_y, dp_i, dp_u, dp_v = (np.asarray(ann[k], np.float64) for k in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V"))
    assert ((dp_x >= 0) & (dp_x <= DP_SIZE) & (dp_y >= 0) & (dp_y <= DP_SIZE)).all()
    assert (dp_i == np.round(dp_i)).all() and ((dp_i >= 1) & (dp_i <= 24)).all(), dp_i
    assert ((dp_u >= 0) & (dp_u <= 1) & (dp_v >= 0) & (dp_v <= 1)).all()
    _painted_masks(ann["dp_masks"])


def _check_points(ann: dict, iuv: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    n = len(ann["dp_x"])
    assert n > 0, f"annotation {ann['id']} has zero points"
    for key in DP_KEYS:
        assert len(ann[key]) == n, f"{key} length {len(ann[key])} != {n}"
    dp_x, dp_y, dp_u, dp_v = (np.asarray(ann[k], np.float64)
                              for k in ("dp_x", "dp_y", "dp_U", "dp_V"))
    dp_i = np.asarray(ann["dp_I"], np.float64)
    assert ((dp_x >= 0) & (dp_x < DP_SIZE) & (dp_y >= 0) & (dp_y < DP_SIZE)).all()
    assert (dp_i == np.round(dp_i)).all() and ((dp_i >= 1) & (dp_i <= 24)).all(), dp_i
    assert ((dp_u > 0) & (dp_u < 1) & (dp_v > 0) & (dp_v < 1)).all(), "U,V not inside (0,1)"

    segm = _painted_masks(ann["dp_masks"])
    coarse = np.array([COARSE_OF_FINE[int(i)] for i in dp_i])
    cells = segm[dp_y.astype(np.int64), dp_x.astype(np.int64)]
    bad = np.flatnonzero(cells != coarse)
    assert bad.size == 0, f"{bad.size} points outside the dp_mask of their part, e.g. {bad[:5]}"

    x0, y0, w, h = ann["bbox"]
    cols = np.floor(x0 + dp_x * w / DP_SIZE).astype(np.int64)
    rows = np.floor(y0 + dp_y * h / DP_SIZE).astype(np.int64)
    I, U, V = iuv
    assert ((rows >= 0) & (rows < I.shape[0]) & (cols >= 0) & (cols < I.shape[1])).all()
    assert (I[rows, cols] == dp_i.astype(np.uint8)).all(), "dp_I disagrees with the EXR"
    assert np.abs(U[rows, cols] - dp_u).max() <= UV_TOL, "dp_U disagrees with the EXR"
    assert np.abs(V[rows, cols] - dp_v).max() <= UV_TOL, "dp_V disagrees with the EXR"


def check_coco_densepose(annotations_json_path, images_dir, iuv_dir,
                         require_points_per_image: bool = True) -> dict[str, int]:
    """Assert every COCO-DensePose rule; returns counts (images, annotations, points).

    ``require_points_per_image``: every image must hold an instance with all dp_* fields,
    since the default DensePose data filter drops images that have none.
    """
    from pycocotools.coco import COCO

    path = Path(annotations_json_path)
    images_dir, iuv_dir = Path(images_dir), Path(iuv_dir)
    with open(path, encoding="utf-8") as f:
        data = json.load(f, parse_constant=_reject_constant)
    coco = COCO(str(path))

    _check_categories(data)
    img_ids = [im["id"] for im in data["images"]]
    ann_ids = [a["id"] for a in data["annotations"]]
    assert len(set(img_ids)) == len(img_ids), "duplicate image ids"
    assert len(set(ann_ids)) == len(ann_ids), "duplicate annotation ids"
    _check_image_files(coco, images_dir)

    num_points = 0
    for img_id in sorted(coco.getImgIds()):
        img = coco.imgs[img_id]
        iuv = read_exr_iuv((iuv_dir / img["file_name"]).with_suffix(".exr"))
        assert iuv[0].shape == (img["height"], img["width"]), "EXR size != image size"
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        with_points = 0
        for ann in anns:
            photo = ann.get("source") == "photo"  # a backdrop photograph's own person, kept
            assert ann["category_id"] == 1 and (ann["iscrowd"] == 0 or photo), ann["id"]
            assert ann.get("ignore", 0) == 0, f"annotation {ann['id']} has ignore set"
            _check_segmentation(ann, img)
            _check_keypoints(ann)
            present = [k for k in DP_KEYS if k in ann]
            if not present:
                continue
            assert not ann["iscrowd"], f"crowd annotation {ann['id']} carries DensePose points"
            assert len(present) == len(DP_KEYS), f"ann {ann['id']} has only {present}"
            assert "dp_masks" in ann, f"ann {ann['id']} has points but no dp_masks"
            if photo:  # annotated by people on the photograph: not comparable with the render
                _check_point_ranges(ann)
                continue
            _check_points(ann, iuv)
            assert all(math.isfinite(x) for k in DP_KEYS for x in ann[k])
            with_points += 1
            num_points += len(ann["dp_x"])
        if require_points_per_image:
            assert with_points > 0, f"image {img['file_name']} has no DensePose instance"
    return {"images": len(img_ids), "annotations": len(ann_ids), "points": num_points}
