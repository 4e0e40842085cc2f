"""Cut-out occluders: soft in the image, hard in the labels, consistent with the rasteriser."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rasteriser import rasterise_iuv  # noqa: E402

from densesynth.appearance.lens import distort_labels, distort_mask, distortion_maps  # noqa: E402
from densesynth.appearance.occluders import (  # noqa: E402
    OCCLUDER_KINDS, apply_occlusion, composite_occluders, default_occluders, load_occluders, occluded_fraction,
    occluder_library, person_bbox, place_occluders,
)
from densesynth.decode.iuv_exr import IUVMaps  # noqa: E402
from densesynth.errors import UserError  # noqa: E402

W, H = 160, 120
K = np.array([[130.0, 0.0, (W - 1) / 2.0], [0.0, 130.0, (H - 1) / 2.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.25, 0.07, 0.001, -0.0012, 0.0])


def _geometry(**extra):
    """A tilted quad (two parts) in front of the camera, U/V linear across it."""
    O, a, b = np.array([-0.6, -0.8, 2.0]), np.array([1.2, 0.1, 0.3]), np.array([0.05, 1.6, 0.2])
    n = 6
    s, t = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1), indexing="xy")
    st = np.column_stack([s.ravel(), t.ravel()])
    idx = np.arange(st.shape[0]).reshape(n + 1, n + 1)
    faces, civ = [], []
    for i in range(n):
        for j in range(n):
            for tri in ((idx[i, j], idx[i, j + 1], idx[i + 1, j + 1]), (idx[i, j], idx[i + 1, j + 1], idx[i + 1, j])):
                faces.append(tri)
                part = 2 if i < n // 2 else 9
                civ.append(np.column_stack([np.full(3, part), st[list(tri), 0], st[list(tri), 1]]))
    g = {"vertices": O + st[:, :1] * a + st[:, 1:] * b, "faces": np.array(faces), "corner_iuv": np.array(civ),
         "K": K, "world_to_camera": np.eye(4), "image_size": np.array([W, H])}
    g.update(extra)
    return g


def _maps(r) -> IUVMaps:
    return IUVMaps(I=r["I"].astype(np.uint8), U=r["U"].astype(np.float32), V=r["V"].astype(np.float32),
                   alpha=r["mask"].astype(np.float32))


def _occluded_scene(seed=3):
    labels = _maps(rasterise_iuv(_geometry()))
    box = person_bbox(labels.I > 0)
    rng = np.random.default_rng(seed)
    placements = place_occluders(rng, box, (W, H), {"count": [2, 2]})
    image = np.full((H, W, 3), 90, np.uint8)
    image[labels.I > 0] = (30, 200, 240)
    out, mask = composite_occluders(image, placements, default_occluders())
    return labels, placements, image, out, mask


def test_default_set_is_embedded_and_deterministic():
    lib = default_occluders()
    assert {name.split("/")[1].rsplit("_", 1)[0] for name in lib} == set(OCCLUDER_KINDS)
    again = default_occluders()
    for name, image in lib.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4
        alpha = image[..., 3]
        assert (alpha > 127).mean() > 0.05 and (alpha < 128).any()  # a shape, not a full rectangle
        np.testing.assert_array_equal(image, again[name])


def test_placements_are_deterministic_and_over_the_person():
    box = [40.0, 20.0, 90.0, 110.0]
    names = sorted(default_occluders())
    for seed in range(20):
        a = place_occluders(np.random.default_rng(seed), box, (W, H), {"count": [1, 3]}, names)
        assert a == place_occluders(np.random.default_rng(seed), box, (W, H), {"count": [1, 3]}, names)
        assert json.loads(json.dumps(a)) == a and 1 <= len(a) <= 3
        for p in a:
            assert p["occluder"] in names
            x, y = p["centre_px"]
            assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
            assert 0.2 <= p["scale"] <= 1.6 and p["height_px"] == pytest.approx(p["scale"] * 91, rel=1e-5)
    picks = [p["occluder"] for s in range(40) for p in place_occluders(np.random.default_rng(s), box, (W, H))]
    assert len(set(picks)) > 8


def test_no_label_pixel_under_the_mask_survives():
    labels, placements, _, _, mask = _occluded_scene()
    body = labels.I > 0
    assert 0.03 < occluded_fraction(body, mask) < 0.97
    hidden = apply_occlusion(labels, mask)
    assert not (hidden.I[mask] > 0).any()
    assert np.all(hidden.U[mask] == 0) and np.all(hidden.V[mask] == 0) and np.all(hidden.alpha[mask] == 0)
    for name in ("I", "U", "V", "alpha"):
        np.testing.assert_array_equal(getattr(hidden, name)[~mask], getattr(labels, name)[~mask])
    # Exactly what the reference rasteriser makes of the same occlusion mask.
    ref = rasterise_iuv(_geometry(occlusion_mask=mask))
    np.testing.assert_array_equal(hidden.I, ref["I"])
    np.testing.assert_array_equal(hidden.U, ref["U"].astype(np.float32))
    # The person index is cleared too.
    with_person = IUVMaps(labels.I, labels.U, labels.V, labels.alpha, (labels.I > 0).astype(np.int64))
    assert not apply_occlusion(with_person, mask).person_index[mask].any()


def test_feather_is_soft_but_mask_is_binary():
    occluder = np.zeros((60, 60, 4), np.uint8)
    occluder[10:50, 10:50] = (255, 255, 255, 255)
    placement = {"occluder": "sq", "centre_px": [80.5, 60.5], "height_px": 60.0, "rotation_deg": 0.0,
                 "flip": False, "feather_px": 1.5}
    black = np.zeros((H, W, 3), np.uint8)
    out, mask = composite_occluders(black, [placement], {"sq": occluder})
    assert mask.dtype == bool
    # Hard footprint: the square's 40 x 40 opaque pixels (source 10..49 -> image 61..100).
    assert mask.sum() == 40 * 40 and mask[41:81, 61:101].all()
    grey = out[..., 0].astype(int)
    inner = grey[mask & (grey < 250)]
    outer = grey[~mask & (grey > 5)]
    assert inner.size > 50 and outer.size > 50  # soft on both sides of the hard edge
    # Along straight edges the feathered 0.5 contour sits on the hard edge (corners round off).
    mid = grey[50:72]
    assert mid[:, 61:101].min() > 127 and mid[:, :61].max() < 128 and mid[:, 101:].max() < 128
    assert grey[60, 80] == 255 and grey[5, 5] == 0
    # Without feathering the image edge is as hard as the mask.
    placement["feather_px"] = 0.0
    hard, mask2 = composite_occluders(black, [placement], {"sq": occluder})
    np.testing.assert_array_equal(mask2, mask)
    assert set(np.unique(hard[..., 0])) == {0, 255}


def test_composite_is_deterministic_and_leaves_the_rest_alone():
    _, placements, image, out, mask = _occluded_scene()
    again, mask2 = composite_occluders(image, placements, default_occluders())
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(mask, mask2)
    far = cv2.dilate(mask.astype(np.uint8), np.ones((13, 13), np.uint8)) == 0
    np.testing.assert_array_equal(out[far], image[far])
    assert np.abs(out[mask].astype(int) - image[mask]).mean() > 10


def test_occlusion_commutes_with_the_lens_warp():
    """Occlude then distort == distort then apply the warped mask == the rasteriser."""
    labels, _, _, _, mask = _occluded_scene(5)
    maps_xy = distortion_maps(K, DIST, W, H)
    first = distort_labels(apply_occlusion(labels, mask), maps_xy)
    warped_mask = distort_mask(mask, maps_xy)
    second = apply_occlusion(distort_labels(labels, maps_xy), warped_mask)
    for name in ("I", "U", "V", "alpha"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    ref = rasterise_iuv(_geometry(dist_coeffs=DIST, occlusion_mask=warped_mask), exact_undistort=True)
    from iuv_compare import compare_iuv

    score = compare_iuv(first.I, first.U, first.V, ref)
    assert score["agreement"] >= 0.995 and score["num_pixels"] > 0.5 * W * H
    assert not (first.I[warped_mask] > 0).any()


def test_folder_errors_are_one_line_user_errors(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(UserError, match="no_such_folder") as info:
        load_occluders(missing)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="no_such_folder"):
        occluder_library({"folder": str(missing)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no RGBA images"):
        load_occluders(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png") as info:
        load_occluders(bad)
    assert "\n" not in str(info.value)
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    cv2.imwrite(str(rgb / "opaque.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="opaque.png.*alpha"):
        load_occluders(rgb)
    with pytest.raises(UserError, match="not in the occluder library"):
        composite_occluders(np.zeros((8, 8, 3), np.uint8), [{"occluder": "folder/x.png"}], {})


def test_folder_images_load_and_place(tmp_path):
    folder = tmp_path / "occ"
    folder.mkdir()
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[5:35, 5:25] = (10, 20, 30, 255)
    cv2.imwrite(str(folder / "sign.png"), rgba)
    (folder / "notes.txt").write_text("ignored")
    lib = load_occluders(folder)
    assert list(lib) == ["folder/sign.png"]
    np.testing.assert_array_equal(lib["folder/sign.png"], rgba)
    both = occluder_library({"folder": str(folder)})
    assert "folder/sign.png" in both and any(name.startswith("default/") for name in both)
    only = occluder_library({"folder": str(folder), "use_default_set": False})
    placements = place_occluders(np.random.default_rng(0), [10, 10, 60, 90], (W, H), {}, list(only))
    image, mask = composite_occluders(np.zeros((H, W, 3), np.uint8), placements, only)
    assert mask.any()
