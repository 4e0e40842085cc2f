"""IUV EXR decoding and the PNG label maps, against hand-built expectations."""

from __future__ import annotations

import os

import cv2
import numpy as np
import OpenEXR
import pytest

from densesynth.decode.iuv_exr import IUVDecodeError, read_iuv_exr
from densesynth.decode.label_maps import (
    iuv_image,
    write_coarse_png,
    write_fine_png,
    write_iuv_png,
)


def write_exr(path, r, g, b, a, prefix: str = "") -> None:
    """Float32 RGBA EXR with separate channels, as Blender writes it (ZIP, scanlines)."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {prefix + name: np.ascontiguousarray(x, dtype=np.float32)
                for name, x in zip("RGBA", (r, g, b, a))}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


@pytest.fixture
def synthetic():
    """Known per-pixel I, U, V, A with junk in R/G/B where A = 0 (must be ignored)."""
    rng = np.random.default_rng(0)
    h, w = 37, 53
    alpha = (rng.random((h, w)) < 0.6).astype(np.float32)
    labels = rng.integers(1, 25, size=(h, w))
    r = np.where(alpha > 0, labels, rng.random((h, w)) * 30).astype(np.float32)
    g = rng.random((h, w)).astype(np.float32)
    b = rng.random((h, w)).astype(np.float32)
    expect_i = np.where(alpha > 0, labels, 0).astype(np.uint8)
    return r, g, b, alpha, expect_i


def test_decode_exact(tmp_path, synthetic):
    r, g, b, a, expect_i = synthetic
    path = tmp_path / "frame.exr"
    write_exr(path, r, g, b, a)
    maps = read_iuv_exr(path)
    assert maps.I.dtype == np.uint8 and maps.U.dtype == np.float32
    np.testing.assert_array_equal(maps.I, expect_i)
    body = a > 0
    np.testing.assert_array_equal(maps.U[body], g[body])
    np.testing.assert_array_equal(maps.V[body], b[body])
    assert (maps.U[~body] == 0).all() and (maps.V[~body] == 0).all()
    np.testing.assert_array_equal(maps.alpha, a)
    np.testing.assert_array_equal(maps.person_mask(), body)
    np.testing.assert_array_equal(maps.person_mask(1), body)


def test_decode_layered_channel_names(tmp_path, synthetic):
    r, g, b, a, expect_i = synthetic
    path = tmp_path / "layered.exr"
    write_exr(path, r, g, b, a, prefix="ViewLayer.Combined.")
    np.testing.assert_array_equal(read_iuv_exr(path).I, expect_i)


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "iuv" / "nope.exr"
    with pytest.raises(IUVDecodeError, match="nope.exr"):
        read_iuv_exr(path)


def test_missing_channel_names_path_and_channel(tmp_path):
    path = tmp_path / "rgb_only.exr"
    z = np.zeros((4, 5), np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"R": z, "G": z, "B": z}) as f:
        f.write(str(path))
    with pytest.raises(IUVDecodeError, match=r"rgb_only\.exr.*'A'"):
        read_iuv_exr(path)


def test_filtered_labels_are_rejected(tmp_path, synthetic):
    r, g, b, a, _ = synthetic
    r = r.copy()
    row, col = np.argwhere(a > 0)[0]
    r[row, col] += 0.4  # what a pixel filter does at a part boundary
    path = tmp_path / "filtered.exr"
    write_exr(path, r, g, b, a)
    with pytest.raises(IUVDecodeError, match=r"filtered\.exr.*denoiser"):
        read_iuv_exr(path)
    assert read_iuv_exr(path, strict=False).I.max() <= 24


def test_label_pngs_round_trip(tmp_path, synthetic):
    r, g, b, a, expect_i = synthetic
    write_exr(tmp_path / "f.exr", r, g, b, a)
    maps = read_iuv_exr(tmp_path / "f.exr")
    write_fine_png(tmp_path / "parts" / "f.png", maps)
    write_coarse_png(tmp_path / "coarse" / "f.png", maps)

    fine = cv2.imread(str(tmp_path / "parts" / "f.png"), cv2.IMREAD_UNCHANGED)
    assert fine.dtype == np.uint8 and fine.shape == expect_i.shape
    np.testing.assert_array_equal(fine, expect_i)

    coarse = cv2.imread(str(tmp_path / "coarse" / "f.png"), cv2.IMREAD_UNCHANGED)
    groups = {1: (1, 2), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7, 9), 7: (8, 10),
              8: (11, 13), 9: (12, 14), 10: (15, 17), 11: (16, 18), 12: (19, 21),
              13: (20, 22), 14: (23, 24)}
    expect_c = np.zeros_like(expect_i)
    for c, fines in groups.items():
        expect_c[np.isin(expect_i, fines)] = c
    np.testing.assert_array_equal(coarse, expect_c)
    assert coarse.max() <= 14 and fine.max() <= 24
    leftovers = [p for p in os.listdir(tmp_path / "parts") if p != "f.png"]
    assert leftovers == [], f"temp files left behind: {leftovers}"


def test_iuv_png_channel_order(tmp_path):
    """cv2.imread gives [I, U, V]; an RGB reader (PIL) sees R = V, G = U, B = I."""
    from PIL import Image

    h, w = 2, 3
    labels = np.array([[1, 24, 0], [7, 3, 12]], np.float32)
    u = np.array([[0.5, 1.0, 0.7], [0.001, 0.998, 0.2]], np.float32)
    v = np.array([[0.0, 0.25, 0.9], [1 / 255, 0.3, 0.6]], np.float32)
    alpha = (labels > 0).astype(np.float32)
    write_exr(tmp_path / "x.exr", labels, u, v, alpha)
    maps = read_iuv_exr(tmp_path / "x.exr")
    write_iuv_png(tmp_path / "x_IUV.png", maps)

    # round(255 * x), worked out by hand; background (I = 0) is all zero.
    exp_u = np.array([[128, 255, 0], [0, 254, 51]], np.uint8)
    exp_v = np.array([[0, 64, 0], [1, 77, 153]], np.uint8)
    got = cv2.imread(str(tmp_path / "x_IUV.png"), cv2.IMREAD_UNCHANGED)
    assert got.shape == (h, w, 3)
    np.testing.assert_array_equal(got[..., 0], labels.astype(np.uint8))
    np.testing.assert_array_equal(got[..., 1], exp_u)
    np.testing.assert_array_equal(got[..., 2], exp_v)
    np.testing.assert_array_equal(got, iuv_image(maps))

    rgb = np.asarray(Image.open(tmp_path / "x_IUV.png").convert("RGB"))
    np.testing.assert_array_equal(rgb[..., 0], exp_v)
    np.testing.assert_array_equal(rgb[..., 1], exp_u)
    np.testing.assert_array_equal(rgb[..., 2], labels.astype(np.uint8))


def test_uncharted_opaque_pixels_are_background_and_out_of_range_labels_fail(tmp_path):
    """A=1 with R=0 (geometry without a chart) decodes as background; R=25 is an error."""
    r = np.array([[0.0, 5.0], [24.0, 0.0]], np.float32)
    ones = np.ones((2, 2), np.float32)
    write_exr(tmp_path / "ok.exr", r, ones * 0.5, ones * 0.25, ones)
    maps = read_iuv_exr(tmp_path / "ok.exr")
    np.testing.assert_array_equal(maps.I, [[0, 5], [24, 0]])
    np.testing.assert_array_equal(maps.U, [[0, 0.5], [0.5, 0]])
    r[0, 0] = 25.0
    write_exr(tmp_path / "bad.exr", r, ones, ones, ones)
    with pytest.raises(IUVDecodeError, match=r"bad\.exr"):
        read_iuv_exr(tmp_path / "bad.exr")
