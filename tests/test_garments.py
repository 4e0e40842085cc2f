"""Garments and hair as geometry keep every label exact (issue 13, acceptance 1).

A dressed person is the body's own surface pushed out where it is clothed, so each garment or
hair point keeps the body surface point beneath it. The independent rasteriser, given the dressed
geometry (the debug geometry's vertices) and the body's per-corner (I, U, V), must agree with the
label EXR at today's thresholds; the person mask must hold every garment and hair pixel (the
pixels the dressed rasteriser shows and the bare body's does not).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from conftest import TEST_CONFIG, render_with_config
from iuv_compare import compare_iuv, read_exr_rgba, uniform_3x3
from rasteriser import rasterise_iuv

GARMENTS = """
garments:
  probability: 1.0
  top_thickness_m: [0.03, 0.04]
  bottom_thickness_m: [0.02, 0.03]
  hair_probability: 1.0
  hair_thickness_m: [0.03, 0.04]
annotation:
  points_per_person: 80
  write_debug_geometry: true
"""


def posed_default(default_body):
    from densesynth.scene.person import pose_person

    person = {"body": {"kind": "anny", "phenotype": {}},
              "motion": {"clip": "walk", "phase": 0.3, "mirror": False}}
    return pose_person(person, {"anny": default_body})


def test_dressing_moves_only_clothed_and_scalp_vertices_by_their_thickness(default_body):
    from densesynth.appearance.garment_geometry import dress

    posed = posed_default(default_body)
    faces, parts = default_body.faces, default_body.face_part
    garments = {"top_m": 0.03, "bottom_m": 0.02, "fold_m": 0.0, "fold_scale_m": 0.1, "fold_seed": 1,
                "hair": True, "hair_m": 0.025, "hair_colour": [0.1, 0.1, 0.1]}
    appearance = {"long_sleeves": False, "long_trousers": True, "garments": garments}
    outer, hair = dress(posed.vertices, faces, parts, posed.keypoints, appearance)
    moved = np.linalg.norm(outer - posed.vertices, axis=1)

    def interior(part_ids):
        """Vertices all of whose faces (and their neighbours' faces) are of these parts."""
        inside = np.isin(parts, part_ids)
        bad = np.zeros(len(posed.vertices), bool)
        bad[faces[~inside].ravel()] = True
        ring = np.zeros(len(faces), bool)
        ring |= bad[faces].any(axis=1)
        far = np.zeros(len(posed.vertices), bool)
        far[faces[ring].ravel()] = True
        return np.flatnonzero(~far & np.isin(np.arange(len(posed.vertices)), faces[inside].ravel()))

    torso = interior((1, 2))
    assert np.median(moved[torso]) == pytest.approx(0.03, abs=0.002)
    shins = interior((11, 12, 13, 14))  # long trousers cover the lower legs
    assert np.median(moved[shins]) == pytest.approx(0.02, abs=0.002)
    hands = interior((3, 4))
    assert np.max(moved[hands]) < 1e-3  # skin stays skin
    # The hair is on the head only, and above the eyes' level or behind the ears.
    assert hair.any() and np.isin(parts[hair], (23, 24)).all()
    nose = posed.keypoints[0]
    scalp_centres = posed.vertices[faces[hair]].mean(axis=1)
    assert np.median(scalp_centres[:, 2]) > nose[2]
    # Outward: a dressed torso vertex is farther from the body's axis than the bare one.
    axis = 0.5 * (posed.keypoints[11] + posed.keypoints[12])
    radial = lambda v: np.linalg.norm((v - axis)[:, :2], axis=1)  # noqa: E731
    assert np.mean(radial(outer[torso]) > radial(posed.vertices[torso])) > 0.9


@pytest.fixture(scope="module")
def dressed(tmp_path_factory, anny_archive):
    return render_with_config(tmp_path_factory.mktemp("garments"), TEST_CONFIG + GARMENTS, 3, 21)


@pytest.mark.blender
@pytest.mark.parametrize("stem", ["00000000", "00000001", "00000002"])
def test_garment_and_hair_pixels_carry_the_body_labels_beneath_them(dressed, stem):
    spec = json.loads((dressed / "specs" / f"{stem}.json").read_text())
    assert all("garments" in a for a in spec["appearance"])
    geometry = dict(np.load(dressed / "geometry" / f"{stem}.npz"))
    assert "body_vertices" in geometry
    reference = rasterise_iuv(geometry)
    rgba = read_exr_rgba(dressed / "iuv" / f"{stem}.exr")
    exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
    stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
    assert stats["agreement"] == 1.0 and stats["median_uv_error"] < 1e-4, stats
    # The garment pixels: what the dressed surface covers and the bare body does not.
    bare = rasterise_iuv({**geometry, "vertices": geometry["body_vertices"]})
    garment = (reference["I"] > 0) & (bare["I"] == 0)
    interior = garment & uniform_3x3((reference["I"] > 0).astype(int))  # off the silhouette's edge
    assert garment.sum() > 50  # the clothes really widen the silhouette
    record = json.loads((dressed / "records" / f"{stem}.json").read_text())
    (annotation,) = record["annotations"]
    mask = mask_utils.decode({"size": annotation["segmentation"]["size"],
                              "counts": annotation["segmentation"]["counts"].encode()}).astype(bool)
    assert mask[interior].all()  # the person mask holds every garment and hair pixel
