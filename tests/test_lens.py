"""Lens distortion warps: OpenCV's model for images, keypoints and exact labels.

The label warp is checked against the independent test rasteriser (``tests/rasteriser.py``)
ray-casting the distorted camera directly.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from iuv_compare import compare_iuv  # noqa: E402
from rasteriser import ideal_sample_points, rasterise_iuv  # noqa: E402

from densesynth.appearance.lens import (  # noqa: E402
    distort_image, distort_labels, distort_mask, distort_points, distortion_maps, draw_distortion,
    is_identity, undistort_points,
)
from densesynth.decode.iuv_exr import IUVMaps  # noqa: E402

BARREL = np.array([-0.28, 0.09, 0.0012, -0.0016, -0.01])
PINCUSHION = np.array([0.12, 0.02, -0.0008, 0.0011, 0.0])
W, H = 160, 120
K = np.array([[130.0, 0.0, (W - 1) / 2.0], [0.0, 130.0, (H - 1) / 2.0], [0.0, 0.0, 1.0]])


def _grid(w=W, h=H):
    rows, cols = np.mgrid[0:h, 0:w]
    return np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64)


# ----------------------------------------------------------------------------- geometry


def test_maps_are_the_exact_undistortion_the_rasteriser_uses():
    for dist in (BARREL, PINCUSHION):
        map_x, map_y = distortion_maps(K, dist, W, H)
        assert map_x.dtype == np.float32 and map_x.shape == (H, W)
        sx, sy = ideal_sample_points(K, dist, W, H, exact_undistort=True)
        np.testing.assert_allclose(map_x.ravel(), sx, atol=1e-4)
        np.testing.assert_allclose(map_y.ravel(), sy, atol=1e-4)
        # Distorting the sample points lands back on the pixel centres.
        ideal, valid = undistort_points(_grid(), K, dist)
        assert valid.all()
        np.testing.assert_allclose(distort_points(ideal, K, dist), _grid(), atol=1e-8)


def test_keypoint_distortion_agrees_with_project_points():
    rng = np.random.default_rng(5)
    cam = np.column_stack([rng.uniform(-1.2, 1.2, 300), rng.uniform(-0.9, 0.9, 300), rng.uniform(1.5, 4.0, 300)])
    ideal = cam[:, :2] / cam[:, 2:] * K[0, 0] + K[:2, 2]
    for dist in (BARREL, PINCUSHION):
        expected, _ = cv2.projectPoints(cam.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
        np.testing.assert_allclose(distort_points(ideal, K, dist), expected.reshape(-1, 2), atol=1e-9)
    # Shapes are kept (e.g. (people, keypoints, 2)).
    assert distort_points(ideal.reshape(3, 100, 2), K, BARREL).shape == (3, 100, 2)


def test_straight_line_bends_as_opencv_predicts():
    y0 = 14.3  # an ideal horizontal line near the top edge: barrel bends it strongly
    rows = np.arange(H, dtype=np.float32)[:, None] * np.ones((1, W), np.float32)
    # A ramp linear in the row across the line: bilinear resampling of it is exact.
    ideal = np.clip((y0 - rows) / 8.0 + 0.5, 0.0, 1.0).astype(np.float32)
    out = distort_image(ideal, distortion_maps(K, BARREL, W, H), border="replicate")

    # Where OpenCV's projection puts the line, column by column.
    u = np.linspace(-40, W + 40, 4000)
    curve = distort_points(np.column_stack([u, np.full_like(u, y0)]), K, BARREL)
    cam = np.column_stack([(u - K[0, 2]) / K[0, 0], np.full_like(u, (y0 - K[1, 2]) / K[1, 1]), np.ones_like(u)])
    cv_curve, _ = cv2.projectPoints(cam.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, BARREL)
    np.testing.assert_allclose(curve, cv_curve.reshape(-1, 2), atol=1e-9)
    predicted = np.interp(np.arange(W), curve[:, 0], curve[:, 1])

    measured = []
    for col in range(W):
        column = out[:, col].astype(np.float64)
        r = int(np.nonzero(column < 0.5)[0][0])  # first row below the line
        measured.append(r - 1 + (column[r - 1] - 0.5) / (column[r - 1] - column[r]))
    measured = np.array(measured)
    assert np.abs(measured - predicted).max() < 0.05
    # The line really bends: barrel pulls its ends towards the centre row.
    assert measured[W // 2] - measured[0] < -3.0 and measured[W // 2] - measured[-1] < -3.0


def test_zero_coefficients_are_the_identity():
    map_x, map_y = distortion_maps(K, np.zeros(5), W, H)
    rows, cols = np.mgrid[0:H, 0:W]
    np.testing.assert_array_equal(map_x, cols.astype(np.float32))
    np.testing.assert_array_equal(map_y, rows.astype(np.float32))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(distort_image(image, (map_x, map_y)), image)
    labels = _labels(_plane_geometry(None))
    warped = distort_labels(labels, (map_x, map_y))
    for name in ("I", "U", "V", "alpha"):
        np.testing.assert_array_equal(getattr(warped, name), getattr(labels, name))
    pts = rng.uniform(0, 100, (10, 2))
    np.testing.assert_array_equal(distort_points(pts, K, None), pts)
    assert is_identity(None) and is_identity([0, 0, 0, 0, 0]) and not is_identity(BARREL)


# ----------------------------------------------------------------------------- labels


def _plane_geometry(dist, occlusion_mask=None):
    """A tilted plane of 4 x 3 patches, each its own part, U/V linear across each patch."""
    O, a, b = np.array([-1.3, -0.8, 2.2]), np.array([2.6, 0.15, 0.9]), np.array([-0.1, 1.6, 0.4])
    n, m = 4, 3
    s, t = np.meshgrid(np.linspace(0, 1, 2 * n + 1), np.linspace(0, 1, 2 * m + 1), indexing="xy")
    st = np.column_stack([s.ravel(), t.ravel()])
    vertices = O + st[:, :1] * a + st[:, 1:] * b
    idx = np.arange(st.shape[0]).reshape(2 * m + 1, 2 * n + 1)
    faces, corner_iuv = [], []
    for i in range(2 * m):
        for j in range(2 * n):
            part = 1 + (i // 2) * n + (j // 2)
            q00, q10, q01, q11 = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            for tri in ((q00, q10, q11), (q00, q11, q01)):
                faces.append(tri)
                corner_iuv.append(np.column_stack([np.full(3, part), *_patch_uv(st[list(tri)], i // 2, j // 2, n, m)]))
    return {
        "vertices": vertices, "faces": np.array(faces), "corner_iuv": np.array(corner_iuv), "K": K,
        "world_to_camera": np.eye(4), "image_size": np.array([W, H]), "dist_coeffs": dist,
        "occlusion_mask": occlusion_mask,
    }


def _patch_uv(st, pi, pj, n, m):
    """Local U, V in [0, 1] of corners inside patch (pi, pj)."""
    return st[:, 0] * n - pj, st[:, 1] * m - pi


def _labels(geometry) -> IUVMaps:
    r = rasterise_iuv(geometry)
    return IUVMaps(I=r["I"].astype(np.uint8), U=r["U"].astype(np.float32), V=r["V"].astype(np.float32),
                   alpha=r["mask"].astype(np.float32))


@pytest.mark.parametrize("dist", [BARREL, PINCUSHION], ids=["barrel", "pincushion"])
def test_label_warp_matches_the_rasteriser(dist):
    undistorted = _labels(_plane_geometry(None))
    assert len(np.unique(undistorted.I)) == 13  # 12 parts and background
    warped = distort_labels(undistorted, distortion_maps(K, dist, W, H))
    ref = rasterise_iuv(_plane_geometry(dist), exact_undistort=True)
    assert (ref["mask"] != undistorted.I.astype(bool)).sum() > 200  # the distortion matters

    score = compare_iuv(warped.I, warped.U, warped.V, ref)
    assert score["num_pixels"] > 0.6 * W * H
    assert score["agreement"] >= 0.995, score
    # Nearest-neighbour U, V are off by at most ~0.7 px of chart gradient (~0.03 / px here).
    assert score["median_uv_error"] < 0.015, score
    # Every warped value is an exact rendered value (no blending across parts).
    body = warped.I > 0
    src = set(zip(undistorted.U[undistorted.I > 0].tolist(), undistorted.V[undistorted.I > 0].tolist()))
    assert all(pair in src for pair in zip(warped.U[body].tolist(), warped.V[body].tolist()))
    assert np.all(warped.U[~body] == 0) and np.all(warped.V[~body] == 0)
    np.testing.assert_array_equal(warped.alpha > 0.5, body)


def test_person_index_and_masks_warp_with_the_labels():
    undistorted = _labels(_plane_geometry(None))
    person = np.where(undistorted.I > 0, 1 + (undistorted.I > 6), 0).astype(np.int64)
    maps = distortion_maps(K, BARREL, W, H)
    warped = distort_labels(IUVMaps(undistorted.I, undistorted.U, undistorted.V, undistorted.alpha, person), maps)
    np.testing.assert_array_equal(warped.person_index, np.where(warped.I > 0, 1 + (warped.I > 6), 0))
    np.testing.assert_array_equal(distort_mask(undistorted.I, maps), warped.I)


def test_draw_distortion_is_plausible_and_deterministic():
    draws = [draw_distortion(np.random.default_rng(s), 1.0, K, (W, H)) for s in range(200)]
    assert draws[3] == draw_distortion(np.random.default_rng(3), 1.0, K, (W, H))
    k1 = np.array([d[0] for d in draws])
    assert (k1 < 0).mean() > 0.5 and (k1 > 0).any()  # mostly barrel, some pincushion
    assert np.all(np.abs(k1) <= 0.35) and all(abs(d[2]) <= 1e-3 and abs(d[3]) <= 1e-3 for d in draws)
    assert all(isinstance(v, float) for v in draws[0])
    # Every drawn lens is invertible over the frame and moves pixels by a bounded amount.
    for d in draws[:40]:
        ideal, valid = undistort_points(_grid(), K, d)
        assert valid.all()
        assert np.abs(ideal - _grid()).max() <= 0.08 * np.hypot(W, H) + 1e-9
    assert draw_distortion(np.random.default_rng(1), 0.0) == [0.0] * 5
    # A very wide lens forces the draw down to an invertible one.
    wide = K.copy()
    wide[0, 0] = wide[1, 1] = 40.0
    for s in range(20):
        d = draw_distortion(np.random.default_rng(s), 1.0, wide, (W, H))
        assert undistort_points(_grid(), wide, d)[1].all()
