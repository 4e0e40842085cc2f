"""COCO-DensePose writing on analytic IUV pictures, checked by tests/densepose_rules.py."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import OpenEXR
import pytest
from densepose_rules import check_coco_densepose
from pycocotools import mask as mask_utils

from densesynth.core import parts
from densesynth.annotate.coco_densepose import (
    DatasetWriter,
    dp_coordinates,
    person_annotation,
)
from densesynth.annotate.points import sample_points
from densesynth.decode.iuv_exr import read_iuv_exr

# --------------------------------------------------------------------------- scenes


def paint_rect(img, i, x0, y0, w, h, edge_uv=False):
    """Fill a rectangle with part i; U runs along x, V along y.

    ``edge_uv``: U, V reach exactly 0 and 1 on the border (exercises the clipping).
    """
    rows, cols = np.mgrid[y0:y0 + h, x0:x0 + w]
    if edge_uv:
        u, v = (cols - x0) / max(w - 1, 1), (rows - y0) / max(h - 1, 1)
    else:
        u, v = (cols - x0 + 0.5) / w, (rows - y0 + 0.5) / h
    img[0][y0:y0 + h, x0:x0 + w] = i
    img[1][y0:y0 + h, x0:x0 + w] = u
    img[2][y0:y0 + h, x0:x0 + w] = v


def paint_disc(img, i, cx, cy, r, split_i=None):
    """A disc of part i (left half split_i when given) with radial U and angular V."""
    rows, cols = np.mgrid[0:img[0].shape[0], 0:img[0].shape[1]]
    d = np.hypot(cols + 0.5 - cx, rows + 0.5 - cy)
    inside = d < r
    labels = np.where((cols + 0.5 < cx) & (split_i is not None), split_i or 0, i)
    img[0][inside] = labels[inside]
    img[1][inside] = (d / r)[inside] * 0.98 + 0.01
    img[2][inside] = ((np.arctan2(rows + 0.5 - cy, cols + 0.5 - cx) + np.pi) / (2 * np.pi))[inside]


def person_picture(h, w, scale=1.0, ox=0, oy=0, with_left_hand=True):
    """A stick person from rectangles and a disc, in float32 I, U, V planes."""
    img = [np.zeros((h, w), np.float32) for _ in range(3)]
    s = lambda x: int(round(x * scale))  # noqa: E731
    paint_rect(img, 2, ox + s(40), oy + s(40), s(40), s(60), edge_uv=True)  # torso front
    paint_rect(img, 1, ox + s(40), oy + s(95), s(40), s(5))  # torso back strip
    paint_rect(img, 15, ox + s(80), oy + s(40), s(25), s(10))  # upper arm left front
    paint_rect(img, 19, ox + s(105), oy + s(40), s(20), s(10))  # lower arm left front
    if with_left_hand:
        paint_rect(img, 4, ox + s(125), oy + s(38), s(8), s(14))  # left hand
    paint_rect(img, 16, ox + s(15), oy + s(40), s(25), s(10))  # upper arm right front
    paint_rect(img, 20, ox + s(2), oy + s(40), s(13), s(10))  # lower arm right front
    paint_rect(img, 9, ox + s(42), oy + s(100), s(16), s(45))  # upper leg right front
    paint_rect(img, 10, ox + s(62), oy + s(100), s(16), s(45))  # upper leg left front
    paint_rect(img, 13, ox + s(42), oy + s(145), s(16), s(40))  # lower leg right front
    paint_rect(img, 14, ox + s(62), oy + s(145), s(16), s(40))  # lower leg left front
    paint_rect(img, 6, ox + s(38), oy + s(185), s(20), s(6))  # right foot
    paint_rect(img, 5, ox + s(62), oy + s(185), s(20), s(6))  # left foot
    paint_disc(img, 24, ox + s(60), oy + s(22), s(17), split_i=23)  # head
    return img


def write_exr(path, i, u, v):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    chans = {"R": i, "G": u, "B": v, "A": (i > 0).astype(np.float32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    chans = {k: np.ascontiguousarray(x, np.float32) for k, x in chans.items()}
    with OpenEXR.File(header, chans) as f:
        f.write(str(path))


def keypoints_for(rng):
    xy = rng.random((17, 2)) * 100
    vis = rng.integers(0, 3, 17)
    return xy, vis


def build_dataset(root, pictures, num_points=150, seed=0):
    """Write images/, iuv/ and annotations.json for a list of (stem, I, U, V)."""
    writer = DatasetWriter()
    rng = np.random.default_rng(123)
    for k, (stem, i, u, v) in enumerate(pictures):
        write_exr(root / "iuv" / f"{stem}.exr", i, u, v)
        (root / "images").mkdir(parents=True, exist_ok=True)
        photo = (np.dstack([i * 10, u * 255, v * 255]) % 256).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"{stem}.png"), photo)
        maps = read_iuv_exr(root / "iuv" / f"{stem}.exr")
        img_id = writer.add_image(f"{stem}.png", *maps.shape)
        xy, vis = keypoints_for(rng)
        ann = person_annotation(maps, maps.person_mask(), xy, vis, num_points, seed + k)
        if ann is not None:
            writer.add_annotation(img_id, ann)
    writer.write(root / "annotations.json")
    return writer


@pytest.fixture
def dataset(tmp_path):
    pictures = [
        ("000001", *person_picture(220, 160)),  # box ~131 x 191: narrower than 256
        ("000002", *person_picture(620, 460, scale=3.0, ox=10, oy=15)),  # ~393 x 573: wider
        ("000003", *person_picture(90, 70, scale=0.35, ox=5, oy=8, with_left_hand=False)),
    ]
    writer = build_dataset(tmp_path, pictures)
    return tmp_path, writer, pictures


# --------------------------------------------------------------------------- tests


def test_dataset_obeys_densepose_rules(dataset):
    root, writer, _ = dataset
    counts = check_coco_densepose(root / "annotations.json", root / "images", root / "iuv")
    assert counts["images"] == 3 and counts["annotations"] == 3
    assert counts["points"] > 300
    data = json.loads((root / "annotations.json").read_text())
    big = data["annotations"][1]
    assert big["bbox"][2] > 256 and big["bbox"][3] > 256
    assert data["annotations"][0]["bbox"][2] < 256


def test_box_is_tight_and_keypoints_follow_coco(dataset):
    root, writer, pictures = dataset
    ann = writer.annotations[0]
    i = pictures[0][1]
    rows, cols = np.nonzero(i > 0)
    assert ann["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                           rows.max() - rows.min() + 1]
    assert ann["area"] == (i > 0).sum()
    xy, vis = keypoints_for(np.random.default_rng(123))
    kps = np.array(ann["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(kps[:, 2], vis)
    np.testing.assert_array_equal(kps[vis == 0], 0)
    np.testing.assert_array_equal(kps[vis > 0, :2], xy[vis > 0])  # written unchanged
    assert ann["num_keypoints"] == int((vis > 0).sum())


def test_absent_part_gives_empty_mask(dataset):
    _, writer, pictures = dataset
    small = writer.annotations[2]  # drawn without a left hand (and no picture has a right one)
    left_hand = parts.COARSE_PART_NAMES.index("left hand") - 1
    right_hand = parts.COARSE_PART_NAMES.index("right hand") - 1
    assert small["dp_masks"][left_hand] == [] and small["dp_masks"][right_hand] == []
    assert 4.0 not in small["dp_I"]
    present = {k + 1 for k, m in enumerate(small["dp_masks"]) if m}
    assert present == set(range(1, 15)) - {2, 3}
    assert writer.annotations[0]["dp_masks"][left_hand] != []


def test_dp_masks_match_the_picture_away_from_edges(dataset):
    """Mask cells sampled back into the box agree with the coarse picture."""
    _, writer, pictures = dataset
    ann, i = writer.annotations[1], pictures[1][1].astype(int)
    x0, y0, w, h = (int(c) for c in ann["bbox"])
    segm = np.zeros((256, 256), np.uint8)
    for k, m in enumerate(ann["dp_masks"]):
        if m:
            segm[mask_utils.decode(m) > 0] = k + 1
    centres = np.arange(256) + 0.5
    src_c = np.floor(x0 + centres * w / 256).astype(int)
    src_r = np.floor(y0 + centres * h / 256).astype(int)
    expect = parts.FINE_TO_COARSE[i[np.ix_(src_r, src_c)]]
    # Only the cells overwritten by points may differ (at part boundaries).
    assert (segm != expect).mean() < 0.01


def test_bytes_are_deterministic(tmp_path):
    pics = [("a", *person_picture(220, 160))]
    build_dataset(tmp_path / "one", pics, seed=5)
    build_dataset(tmp_path / "two", pics, seed=5)
    build_dataset(tmp_path / "three", pics, seed=6)
    one = (tmp_path / "one" / "annotations.json").read_bytes()
    assert one == (tmp_path / "two" / "annotations.json").read_bytes()
    assert one != (tmp_path / "three" / "annotations.json").read_bytes()


@pytest.mark.parametrize("w", [1, 3, 97, 255, 256, 257, 1000, 4097])
@pytest.mark.parametrize("x0", [0, 13, 1234])
def test_dp_x_round_trip_exact(w, x0):
    cols = np.arange(x0, x0 + w)
    dp_x, dp_y = dp_coordinates(cols, cols, (x0, x0, w, w))
    assert ((dp_x >= 0) & (dp_x < 256)).all()
    back = np.floor(x0 + dp_x * w / 256).astype(int)
    np.testing.assert_array_equal(back, cols)
    np.testing.assert_array_equal(dp_x, dp_y)
    # The value is the pixel centre, not its corner.
    np.testing.assert_allclose(x0 + dp_x * w / 256, cols + 0.5, atol=1e-9)


def test_thin_stripes_in_a_wide_box_keep_points_in_their_masks(tmp_path):
    """Many pixels per 256-cell, alternating parts: conflicting points must be resolved."""
    h, w = 40, 1200
    i = np.where((np.arange(w) // 2) % 2 == 0, 9, 2).astype(np.float32)[None].repeat(h, 0)
    u = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    v = np.tile(np.linspace(0, 1, h, dtype=np.float32)[:, None], (1, w))
    build_dataset(tmp_path, [("s", i, u, v)], num_points=2000)
    check_coco_densepose(tmp_path / "annotations.json", tmp_path / "images", tmp_path / "iuv")
    ann = json.loads((tmp_path / "annotations.json").read_text())["annotations"][0]
    assert 500 < len(ann["dp_x"]) <= 2000
    assert {1, 6} == {k + 1 for k, m in enumerate(ann["dp_masks"]) if m}


def test_person_without_pixels_gives_none():
    from densesynth.decode.iuv_exr import IUVMaps

    z = np.zeros((10, 12), np.float32)
    maps = IUVMaps(I=np.zeros((10, 12), np.uint8), U=z, V=z, alpha=z)
    xy, vis = np.zeros((17, 2)), np.zeros(17, int)
    assert person_annotation(maps, np.ones((10, 12), bool), xy, vis, 50, 0) is None


def test_checker_catches_broken_annotations(dataset):
    """The rules checker must fail on each kind of corruption."""
    root, writer, _ = dataset
    base = writer.to_dict()

    def broken(mutate):
        data = copy.deepcopy(base)
        mutate(data)
        path = root / "broken.json"
        path.write_text(json.dumps(data))
        with pytest.raises(AssertionError):
            check_coco_densepose(path, root / "images", root / "iuv")

    def shift(ann_index, key, item, delta):
        def mutate(d):
            d["annotations"][ann_index][key][item] += delta
        return mutate

    broken(lambda d: d["annotations"][0]["dp_masks"].pop())
    broken(lambda d: d["annotations"][0]["dp_I"].__setitem__(0, d["annotations"][0]["dp_I"][0] % 24 + 1))
    broken(lambda d: d["annotations"][0]["dp_U"].__setitem__(3, 0.0))
    broken(shift(1, "dp_V", 3, 1e-4))
    broken(shift(0, "dp_x", 0, 3.0))
    broken(shift(0, "bbox", 2, 1))
    broken(lambda d: d["annotations"][0].__setitem__("area", 5.0))
    broken(lambda d: d["annotations"][0].__setitem__("iscrowd", 1))
    broken(lambda d: d["annotations"][2].__setitem__("id", 1))
    broken(lambda d: d["images"][0].__setitem__("width", 161))
    broken(lambda d: d["annotations"][0]["keypoints"].pop())
    broken(lambda d: d["annotations"][0].pop("dp_V"))
    broken(lambda d: d["annotations"][0].__setitem__("dp_masks", [[]] * 14))


# --------------------------------------------------------------------------- parts


def test_part_tables_agree_with_reference():
    groups = {1: (1, 2), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7, 9), 7: (8, 10),
              8: (11, 13), 9: (12, 14), 10: (15, 17), 11: (16, 18), 12: (19, 21),
              13: (20, 22), 14: (23, 24)}
    for coarse, fines in groups.items():
        for f in fines:
            assert parts.FINE_TO_COARSE[f] == coarse
    assert parts.FINE_TO_COARSE[0] == 0 and len(parts.FINE_TO_COARSE) == 25
    # Flips are involutions and commute with the fine -> coarse grouping.
    fine = np.arange(25)
    np.testing.assert_array_equal(parts.FINE_FLIP[parts.FINE_FLIP], fine)
    np.testing.assert_array_equal(parts.COARSE_FLIP[parts.COARSE_FLIP], np.arange(15))
    np.testing.assert_array_equal(parts.FINE_TO_COARSE[parts.FINE_FLIP],
                                  parts.COARSE_FLIP[parts.FINE_TO_COARSE])
    # Names: a fine part's name starts with its coarse name's words, sides swap on flip.
    for f in range(1, 25):
        name = parts.FINE_PART_NAMES[f]
        coarse = parts.COARSE_PART_NAMES[parts.FINE_TO_COARSE[f]]
        assert set(coarse.split()) <= set(name.split()), (name, coarse)
        flipped = parts.FINE_PART_NAMES[parts.FINE_FLIP[f]]
        swap = {"left": "right", "right": "left"}
        if not name.startswith("head"):
            assert flipped == " ".join(swap.get(t, t) for t in name.split())


def test_keypoint_parts_sides():
    names = parts.COCO_KEYPOINT_NAMES
    assert len(names) == 17 and len(parts.KEYPOINT_PARTS) == 17
    for k, name in enumerate(names):
        side = name.split("_")[0]
        for p in parts.KEYPOINT_PARTS[k]:
            pname = parts.FINE_PART_NAMES[p]
            if side in ("left", "right") and "torso" not in pname and "head" not in pname:
                assert side in pname.split(), (name, pname)
        mirror = parts.COCO_KEYPOINT_FLIP[k]
        assert {int(parts.FINE_FLIP[p]) for p in parts.KEYPOINT_PARTS[k]} == set(
            parts.KEYPOINT_PARTS[mirror])
    assert parts.SURFACE_KEYPOINTS.tolist() == [True] * 5 + [False] * 12


# --------------------------------------------------------------------------- points


def test_sample_points_count_distinct_deterministic():
    rng = np.random.default_rng(1)
    mask = rng.random((80, 90)) < 0.3
    r1, c1 = sample_points(mask, 300, seed=7)
    r2, c2 = sample_points(mask, 300, seed=7)
    r3, c3 = sample_points(mask, 300, seed=8)
    assert len(r1) == 300
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(c1, c2)
    assert not (np.array_equal(r1, r3) and np.array_equal(c1, c3))
    assert len(set(zip(r1.tolist(), c1.tolist()))) == 300
    assert mask[r1, c1].all()
    r, c = sample_points(mask, 10**9, seed=0)
    assert len(r) == mask.sum()
    assert len(sample_points(mask, 0, seed=0)[0]) == 0
    assert len(sample_points(np.zeros((5, 5), bool), 10, seed=0)[0]) == 0


def test_sample_points_spread_over_square():
    from scipy.spatial import cKDTree

    mask = np.zeros((260, 260), bool)
    mask[30:230, 30:230] = True
    n = 100
    for seed in range(5):
        rows, cols = sample_points(mask, n, seed)
        assert len(rows) == n
        quads = np.bincount((rows >= 130) * 2 + (cols >= 130), minlength=4)
        assert quads.min() >= 18 and quads.max() <= 32, quads
        # No big holes: every mask pixel has a point within ~1.5 grid spacings.
        pix = np.argwhere(mask)
        gap = cKDTree(np.c_[rows, cols]).query(pix)[0].max()
        assert gap < 1.5 * np.sqrt(mask.sum() / n), gap


def test_sample_points_share_between_blobs():
    mask = np.zeros((100, 300), bool)
    mask[10:90, 10:90] = True  # 6400 px
    mask[10:90, 120:280] = True  # 12800 px
    rows, cols = sample_points(mask, 90, seed=3)
    left = int((cols < 100).sum())
    assert 24 <= left <= 36, left  # expected 30
