"""Real people of a photograph backdrop moved into the rendered frame: expectations computed
by hand from the crop formula (scale, round, crop origin, flip), never by the code itself."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from densesynth.appearance.photo_backdrops import PhotoCrop, photo_backdrop, photo_crop
from densesynth.annotate.real_people import keep_real_people

NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 5, 6, 11, 12


def rectangle_person(x0: int, y0: int, x1: int, y1: int, keypoints: dict[int, tuple[float, float]]) -> dict:
    """A person covering photo pixels [x0, x1) x [y0, y1) as a polygon, with keypoints (v = 2)."""
    kps = [0.0] * 51
    for index, (x, y) in keypoints.items():
        kps[3 * index: 3 * index + 3] = [x, y, 2]
    return {"id": 7, "image_id": 3, "category_id": 1, "iscrowd": 0, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": float((x1 - x0) * (y1 - y0)), "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            "keypoints": kps, "num_keypoints": len(keypoints)}


def crop_of(width: int, height: int, photo_w: int, photo_h: int, zoom=1.0, centre=(0.0, 0.0), flip=False) -> PhotoCrop:
    return photo_crop({"zoom": zoom, "centre": list(centre), "flip": flip}, photo_w, photo_h, width, height)


def keypoint(ann: dict, index: int) -> list[float]:
    return ann["keypoints"][3 * index: 3 * index + 3]


def decoded(ann: dict) -> np.ndarray:
    rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode("ascii"))
    return mask_utils.decode(rle).astype(bool)


# --- scale 2, right half covered -------------------------------------------------------------

def test_covered_half_cuts_mask_bbox_and_keypoints():
    # Photo 200 x 100 into 400 x 200: scale exactly 2, no crop offset. Person [40, 120) x [10, 90)
    # -> [80, 240) x [20, 180); covered x >= 200 leaves [80, 200) x [20, 180).
    crop = crop_of(400, 200, 200, 100)
    covered = np.zeros((200, 400), bool)
    covered[:, 200:] = True
    person = rectangle_person(40, 10, 120, 90, {L_SHOULDER: (60, 30), R_SHOULDER: (110, 30), NOSE: (80, 12)})
    out, counts = keep_real_people([person], crop, covered, (200, 100))
    assert counts == {"kept": 0, "cut": 1, "crowded": 0, "dropped": 0}
    (ann,) = out
    assert ann["area"] == 120 * 160
    assert ann["bbox"] == [80.0, 20.0, 120.0, 160.0]
    assert decoded(ann).sum() == 120 * 160 and decoded(ann)[20:180, 80:200].all()
    # Pixel-index keypoints: x' = (x + 0.5) * 2 - 0.5.
    assert keypoint(ann, L_SHOULDER) == [120.5, 60.5, 2]
    assert keypoint(ann, NOSE) == [160.5, 24.5, 2]
    assert keypoint(ann, R_SHOULDER) == [0.0, 0.0, 0]  # 220.5 is covered
    assert ann["num_keypoints"] == 2
    assert ann["iscrowd"] == 0 and ann["id"] == 7 and ann["image_id"] == 3
    assert person["bbox"] == [40, 10, 80, 80]  # the input is not modified


def test_untouched_person_is_kept_whole():
    crop = crop_of(400, 200, 200, 100)
    person = rectangle_person(40, 10, 120, 90, {L_HIP: (50, 70)})
    out, counts = keep_real_people([person], crop, np.zeros((200, 400), bool), (200, 100))
    assert counts == {"kept": 1, "cut": 0, "crowded": 0, "dropped": 0}
    assert out[0]["bbox"] == [80.0, 20.0, 160.0, 160.0] and out[0]["area"] == 160 * 160
    assert keypoint(out[0], L_HIP) == [100.5, 140.5, 2]


# --- flip ----------------------------------------------------------------------------------

def test_flip_mirrors_x_and_swaps_left_right():
    # Photo 200 x 100 into 200 x 100, scale 1, flipped: continuous x -> 200 - x, so pixel
    # index x -> 199 - x, and [40, 120) -> [80, 160).
    crop = crop_of(200, 100, 200, 100, flip=True)
    person = rectangle_person(40, 10, 120, 90, {L_SHOULDER: (60, 30), R_SHOULDER: (100, 32), NOSE: (80, 15),
                                                L_HIP: (70, 80)})
    out, counts = keep_real_people([person], crop, np.zeros((100, 200), bool), (200, 100))
    assert counts["kept"] == 1
    (ann,) = out
    assert ann["bbox"] == [80.0, 10.0, 80.0, 80.0]
    assert keypoint(ann, R_SHOULDER) == [139.0, 30.0, 2]  # the old left shoulder
    assert keypoint(ann, L_SHOULDER) == [99.0, 32.0, 2]   # the old right shoulder
    assert keypoint(ann, NOSE) == [119.0, 15.0, 2]
    assert keypoint(ann, R_HIP) == [129.0, 80.0, 2] and keypoint(ann, L_HIP) == [0.0, 0.0, 0]
    assert ann["num_keypoints"] == 4


# --- crop + zoom ---------------------------------------------------------------------------

def test_crop_and_zoom_follow_the_formula():
    # Photo 300 x 200 into 120 x 100, zoom 1.25, centre (0.25, 0.6):
    # scale = max(120/300, 100/200) * 1.25 = 0.625; resized (round(187.5) = 188, 125);
    # x0 = round(0.25 * (188 - 120)) = 17, y0 = round(0.6 * (125 - 100)) = 15.
    crop = crop_of(120, 100, 300, 200, zoom=1.25, centre=(0.25, 0.6))
    sx, sy = 188 / 300, 125 / 200
    assert (crop.x0, crop.y0, crop.width, crop.height, crop.flip) == (17, 15, 120, 100, False)
    assert crop.scale_x == pytest.approx(sx, abs=1e-12) and crop.scale_y == pytest.approx(sy, abs=1e-12)
    np.testing.assert_allclose(crop.apply(np.array([[100.0, 80.0]])), [[100 * sx - 17, 80 * sy - 15]])

    person = rectangle_person(80, 40, 200, 180, {L_SHOULDER: (100, 80), NOSE: (5, 5)})
    out, _ = keep_real_people([person], crop, np.zeros((100, 120), bool), (300, 200))
    (ann,) = out
    x, y, v = keypoint(ann, L_SHOULDER)
    assert (x, y, v) == (pytest.approx(100.5 * sx - 17 - 0.5), pytest.approx(80.5 * sy - 15 - 0.5), 2)
    assert keypoint(ann, NOSE) == [0.0, 0.0, 0]  # 5.5 * 0.627 - 17 < 0: outside the frame
    # Nearest sampling: output column j is in the mask when its centre j + 0.5 maps into
    # [80, 200) * sx - 17, i.e. j from ceil(80 sx - 17 - 0.5) to ceil(200 sx - 17 - 0.5) - 1.
    c0, c1 = math.ceil(80 * sx - 17.5), math.ceil(200 * sx - 17.5)
    r0, r1 = math.ceil(40 * sy - 15.5), math.ceil(180 * sy - 15.5)
    assert (c0, c1, r0, r1) == (33, 108, 10, 97)
    assert ann["bbox"] == [c0, r0, c1 - c0, r1 - r0]
    assert ann["area"] == (c1 - c0) * (r1 - r0)
    # Analytic area of the scaled rectangle, within a pixel of rounding on each edge.
    assert abs(ann["area"] - 120 * sx * 140 * sy) < 120 * sx + 140 * sy


def test_truncated_by_the_frame_is_not_crowd():
    # Scale 1, crop x0 = round(1.0 * (300 - 200)) = 100: the person [80, 140) loses 20 of 60 columns
    # to the frame edge; that is ordinary truncation, not occlusion.
    crop = crop_of(200, 100, 300, 100, centre=(1.0, 0.0))
    assert crop.x0 == 100
    out, counts = keep_real_people([rectangle_person(80, 10, 140, 90, {})], crop, np.zeros((100, 200), bool),
                                   (300, 100))
    assert counts["kept"] == 1 and out[0]["bbox"] == [0.0, 10.0, 40.0, 80.0]


# --- crowd / drop --------------------------------------------------------------------------

def test_mostly_covered_becomes_crowd_and_nearly_gone_is_dropped():
    crop = crop_of(200, 100, 200, 100)
    covered = np.ones((100, 200), bool)
    covered[0:50, 40:56] = False  # person A [40, 120) x [10, 90) keeps [40, 56) x [10, 50): 10 %
    covered[40:43, 150:153] = False  # person C keeps 3 x 3 = 9 px < 16: dropped
    a = rectangle_person(40, 10, 120, 90, {L_SHOULDER: (45, 30)})
    a["dp_x"], a["dp_y"], a["dp_I"], a["dp_U"], a["dp_V"] = [10.0], [10.0], [2.0], [0.5], [0.5]
    b = rectangle_person(0, 0, 30, 30, {})  # entirely covered: dropped
    c = rectangle_person(150, 10, 190, 90, {})
    out, counts = keep_real_people([a, b, c], crop, covered, (200, 100))
    assert counts == {"kept": 0, "cut": 0, "crowded": 1, "dropped": 2}
    (crowd,) = out
    assert crowd["iscrowd"] == 1
    assert crowd["area"] == 16 * 40 and crowd["bbox"] == [40.0, 10.0, 16.0, 40.0]
    assert crowd["keypoints"] == [0] * 51 and crowd["num_keypoints"] == 0
    assert not any(k.startswith("dp_") for k in crowd)
    assert isinstance(crowd["segmentation"]["counts"], str)


def test_thresholds_are_parameters():
    crop = crop_of(200, 100, 200, 100)
    covered = np.zeros((100, 200), bool)
    covered[:, 100:] = True  # 60 of 80 columns left: 75 %
    person = rectangle_person(40, 10, 120, 90, {})
    assert keep_real_people([person], crop, covered, (200, 100))[1]["cut"] == 1
    assert keep_real_people([person], crop, covered, (200, 100), min_kept_fraction=0.8)[1]["crowded"] == 1
    assert keep_real_people([person], crop, covered, (200, 100), drop_below_area=60 * 80 + 1)[1]["dropped"] == 1


# --- segmentation formats ------------------------------------------------------------------

def runs_fortran(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts: run lengths of the column-major flattening, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])) != 0)
    return np.diff(np.concatenate([[0], edges])).tolist()


def test_polygon_and_rle_inputs_agree():
    mask = np.zeros((100, 200), np.uint8)
    mask[10:90, 40:120] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))
    counts = runs_fortran(mask)
    assert sum(counts) == mask.size and counts[0] == 40 * 100 + 10
    polygon = rectangle_person(40, 10, 120, 90, {L_SHOULDER: (60, 30)})
    variants = [polygon,
                dict(polygon, segmentation={"size": [100, 200], "counts": compressed["counts"].decode("ascii")}),
                dict(polygon, segmentation={"size": [100, 200], "counts": compressed["counts"]}),
                dict(polygon, segmentation={"size": [100, 200], "counts": counts})]
    crop = crop_of(150, 90, 200, 100, zoom=1.3, centre=(0.7, 0.2), flip=True)
    covered = np.zeros((90, 150), bool)
    covered[30:60, 20:140] = True
    results = [keep_real_people([v], crop, covered, (200, 100)) for v in variants]
    first, first_counts = results[0]
    assert first_counts["cut"] == 1 and first[0]["area"] > 0
    for out, out_counts in results[1:]:
        assert out_counts == first_counts
        assert out[0]["segmentation"] == first[0]["segmentation"]
        assert out[0]["bbox"] == first[0]["bbox"] and out[0]["area"] == first[0]["area"]
        assert out[0]["keypoints"] == first[0]["keypoints"]


# --- DensePose -----------------------------------------------------------------------------

def densepose_person() -> dict:
    person = rectangle_person(40, 10, 120, 90, {})
    torso, head = np.zeros((256, 256), np.uint8), np.zeros((256, 256), np.uint8)
    torso[:, :128], head[:, 128:] = 1, 1
    masks: list = [[] for _ in range(14)]
    for k, m in ((0, torso), (13, head)):
        rle = mask_utils.encode(np.asfortranarray(m))
        masks[k] = {"size": [256, 256], "counts": rle["counts"].decode("ascii")}
    # Box [40, 120) x [10, 90): dp 64 -> x 40 + 64 * 80 / 256 = 60, dp 192 -> 100, dp 128 -> y 50.
    person.update(dp_x=[64.0, 192.0], dp_y=[128.0, 128.0], dp_I=[2.0, 23.0], dp_U=[0.25, 0.75],
                  dp_V=[0.5, 0.6], dp_masks=masks)
    return person


def test_densepose_points_and_masks_move_into_the_new_box():
    crop = crop_of(400, 200, 200, 100)  # scale 2: points at (120, 100) and (200, 100)
    covered = np.zeros((200, 400), bool)
    covered[:, 200:] = True
    out, _ = keep_real_people([densepose_person()], crop, covered, (200, 100))
    (ann,) = out
    assert ann["bbox"] == [80.0, 20.0, 120.0, 160.0]
    # Second point is at x = 200: covered. First: ((120 - 80) / 120 * 256, (100 - 20) / 160 * 256).
    assert ann["dp_x"] == [pytest.approx(40 / 120 * 256)] and ann["dp_y"] == [pytest.approx(128.0)]
    assert ann["dp_I"] == [2.0] and ann["dp_U"] == [0.25] and ann["dp_V"] == [0.5]
    masks = ann["dp_masks"]
    assert len(masks) == 14 and all(m == [] for k, m in enumerate(masks) if k not in (0, 13))
    torso = mask_utils.decode(dict(masks[0], counts=masks[0]["counts"].encode("ascii")))
    head = mask_utils.decode(dict(masks[13], counts=masks[13]["counts"].encode("ascii")))
    # New cell j's centre lies at output x = 80 + (j + 0.5) * 120 / 256; torso was photo x < 80,
    # i.e. output x < 160 -> j <= 170. Head: photo [80, 120) -> output [160, 240), uncovered up to 200.
    assert torso.shape == (256, 256) and torso[:, :171].all() and not torso[:, 171:].any()
    assert head[:, 171:].all() and not head[:, :171].any()


def test_densepose_masks_lose_covered_cells():
    crop = crop_of(400, 200, 200, 100)
    covered = np.zeros((200, 400), bool)
    covered[100:, 80:160] = True  # lower half of the torso side
    out, _ = keep_real_people([densepose_person()], crop, covered, (200, 100))
    (ann,) = out
    assert ann["bbox"] == [80.0, 20.0, 160.0, 160.0]
    torso = mask_utils.decode(dict(ann["dp_masks"][0], counts=ann["dp_masks"][0]["counts"].encode("ascii")))
    # Rows: output y = 20 + (i + 0.5) * 160 / 256 < 100 -> i <= 127. Columns: x < 160 -> j <= 127.
    assert torso[:128, :128].all() and not torso[128:].any() and not torso[:, 128:].any()
    # Point 1 at output (120, 100) lies on covered pixel (col 120, row 100): dropped. Point 2 at
    # (200, 100) is uncovered: ((200 - 80) / 160 * 256, (100 - 20) / 160 * 256) = (192, 128).
    assert ann["dp_x"] == [pytest.approx(192.0)] and ann["dp_y"] == [pytest.approx(128.0)]
    assert ann["dp_I"] == [23.0] and ann["dp_U"] == [0.75] and ann["dp_V"] == [0.6]


def test_flip_removes_densepose_but_keeps_keypoints():
    crop = crop_of(200, 100, 200, 100, flip=True)
    person = densepose_person()
    person["keypoints"][3 * L_SHOULDER: 3 * L_SHOULDER + 3] = [60, 30, 2]
    out, _ = keep_real_people([person], crop, np.zeros((100, 200), bool), (200, 100))
    (ann,) = out
    assert not any(k.startswith("dp_") for k in ann)
    assert keypoint(ann, R_SHOULDER) == [139.0, 30.0, 2]


# --- the crop and the backdrop agree -------------------------------------------------------

def folder_cfg(folder) -> dict:
    return {"kind": "folder", "folder": str(folder), "coco_annotations": "", "coco_images": "",
            "coco_people": "any", "missing": "error"}


@pytest.mark.parametrize("shape, size, zoom, centre, flip", [
    ((90, 120), (64, 48), 1.3, (0.4, 0.7), True),     # enlarged: INTER_LINEAR
    ((300, 400), (64, 48), 1.0, (0.5, 0.5), False),   # shrunk: INTER_AREA
    ((100, 100), (160, 90), 1.37, (1.0, 0.0), True),  # non-square frame, zoom > 1
    # scale 0.98 < 1 (INTER_AREA) although the width rounds back to 20 (resized 20 x 196).
    ((200, 20), (19, 196), 1.0, (0.5, 0.5), False),
])
def test_photo_backdrop_matches_a_direct_cv2_crop(tmp_path, shape, size, zoom, centre, flip):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "p.png"), photo)
    width, height = size
    params = {"file": "p.png", "zoom": zoom, "centre": list(centre), "flip": flip}
    got = photo_backdrop(params, folder_cfg(folder), width, height)

    h, w = shape
    scale = max(width / w, height / h) * zoom
    rw, rh = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(photo, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = int(round(centre[0] * (rw - width))), int(round(centre[1] * (rh - height)))
    expected = resized[y0:y0 + height, x0:x0 + width]
    if flip:
        expected = expected[:, ::-1]
    expected = np.ascontiguousarray(expected[..., ::-1], dtype=np.float32) / 255.0
    assert got.dtype == np.float32 and got.shape == (height, width, 3)
    assert np.array_equal(got, expected)


def test_moved_mask_lands_on_the_backdrop_pixels(tmp_path):
    # A white rectangle in a black photo: after photo_backdrop, the bright pixels and the
    # moved segmentation coincide (up to the one-pixel blur of linear interpolation).
    photo = np.zeros((100, 150, 3), np.uint8)
    photo[20:70, 30:90] = 255
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "p.png"), photo)
    params = {"file": "p.png", "zoom": 1.45, "centre": [0.3, 0.8], "flip": True}
    image = photo_backdrop(params, folder_cfg(folder), 128, 96)
    bright = image[..., 0] > 0.5
    crop = photo_crop(params, 150, 100, 128, 96)
    out, _ = keep_real_people([rectangle_person(30, 20, 90, 70, {})], crop, np.zeros((96, 128), bool), (150, 100))
    moved = decoded(out[0])
    assert np.abs(np.array(out[0]["bbox"]) - np.array(mask_utils.toBbox(
        mask_utils.encode(np.asfortranarray(bright.astype(np.uint8)))))).max() <= 1
    _, _, bw, bh = out[0]["bbox"]
    assert moved.sum() > 0.9 * bright.sum() and (moved != bright).sum() <= 2 * (bw + bh)


def test_covered_must_match_the_frame():
    with pytest.raises(ValueError, match="covered"):
        keep_real_people([], crop_of(200, 100, 200, 100), np.zeros((10, 10), bool), (200, 100))


def test_densepose_points_outside_the_new_box_are_dropped():
    # The DensePose box [40, 120) is wider than the segmentation [40, 80): the new box is
    # [40, 80), so the uncovered point at photo x = 100 (dp 192) has no place in it.
    person = densepose_person()
    person["segmentation"] = [[40, 10, 80, 10, 80, 90, 40, 90]]
    out, _ = keep_real_people([person], crop_of(200, 100, 200, 100), np.zeros((100, 200), bool), (200, 100))
    (ann,) = out
    assert ann["bbox"] == [40.0, 10.0, 40.0, 80.0]
    assert ann["dp_x"] == [pytest.approx((60 - 40) / 40 * 256)] and ann["dp_I"] == [2.0]


def test_crowd_input_stays_crowd():
    mask = np.zeros((100, 200), np.uint8)
    mask[10:90, 40:120] = 1
    crowd = {"id": 9, "iscrowd": 1, "category_id": 1, "bbox": [40, 10, 80, 80],
             "segmentation": {"size": [100, 200], "counts": runs_fortran(mask)},
             "keypoints": [0] * 51, "num_keypoints": 0}
    out, counts = keep_real_people([crowd], crop_of(400, 200, 200, 100), np.zeros((200, 400), bool), (200, 100))
    assert counts["crowded"] == 1 and out[0]["iscrowd"] == 1
    assert out[0]["bbox"] == [80.0, 20.0, 160.0, 160.0] and out[0]["area"] == 160 * 160
