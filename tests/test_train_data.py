"""densepose_train.data and densepose_train.charts: reading, validation, targets, flips, mixing.

Expectations are hand-built (tiny COCO files written here with known points and RLE masks),
formulas (DensePose's box-frame mirror x_img -> W - x_img, its table indexing), round trips
(flip twice) and the anny charts' documented mirror rule.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from densepose_train.charts import ChartSurface, find_charts
from densepose_train.data.coco_densepose import CocoDensePose
from densepose_train.data.dataset import DensePoseDataset, collate
from densepose_train.data.sources import MixedSampler, build_training_set, parse_data_arg, symmetry_for
from densepose_train.data.symmetry import SymmetryTables, load_densepose_symmetry, tables_from_surface
from densepose_train.data.targets import DensePoseTarget
from densepose_train.data.transforms import flipped, hflip
from densepose_train.errors import TrainUserError

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48  # image size of the hand-built datasets


# ---------------------------------------------------------------- hand-built datasets
def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


def dp_masks_with(parts: dict[int, tuple[slice, slice]]) -> list:
    """14 entries; `parts` maps coarse label (1..14) to a (rows, cols) rectangle in the 256 frame."""
    masks: list = []
    for label in range(1, 15):
        if label in parts:
            m = np.zeros((256, 256), np.uint8)
            m[parts[label]] = 1
            masks.append(rle(m))
        else:
            masks.append([])
    return masks


def person(ann_id: int, image_id: int, bbox, dp: bool = True, **extra) -> dict:
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(bbox),
           "area": bbox[2] * bbox[3]}
    box_mask = np.zeros((H, W), np.uint8)
    x, y, w, h = (int(round(v)) for v in bbox)
    box_mask[y:y + h, x:x + w] = 1
    ann["segmentation"] = rle(box_mask)
    if dp:
        ann.update({"dp_x": [32.0, 128.5, 200.0], "dp_y": [10.0, 128.0, 250.0], "dp_I": [3.0, 1.0, 23.0],
                    "dp_U": [0.25, 0.5, 0.9], "dp_V": [0.75, 0.5, 0.1],
                    "dp_masks": dp_masks_with({2: (slice(0, 128), slice(0, 64)), 1: (slice(128, 256), slice(0, 256))})})
    ann.update(extra)
    return ann


def write_dataset(folder: Path, annotations: list[dict], images: list[dict] | None = None,
                  colours: dict[int, tuple[int, int, int]] | None = None) -> Path:
    """DIR/annotations.json + DIR/images/*.png (solid BGR colour per image); returns DIR."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                        {"id": 2, "file_name": "b.png", "height": H, "width": W}]
    for image in images:
        bgr = np.zeros((image["height"], image["width"], 3), np.uint8)
        bgr[:] = (colours or {}).get(image["id"], (10, 20, 30))
        cv2.imwrite(str(folder / "images" / image["file_name"]), bgr)
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


@pytest.fixture()
def simple(tmp_path) -> Path:
    """Image 1: a DensePose person, a crowd and a person without points (polygon mask);
    image 2: only a person without points."""
    crowd = person(2, 1, [0, 0, 10, 10], dp=False, iscrowd=1)
    plain = person(3, 1, [30, 5, 20, 30], dp=False)
    plain["segmentation"] = [[30, 5, 50, 5, 50, 35, 30, 35]]  # polygon, as in real COCO
    return write_dataset(tmp_path / "simple", [person(1, 1, [8, 4, 32, 40]), crowd, plain,
                                               person(4, 2, [1, 1, 20, 20], dp=False)],
                         colours={1: (10, 20, 30), 2: (200, 100, 50)})


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# ---------------------------------------------------------------- reading
def test_reads_hand_built_file_with_densepose_keep_rules(simple):
    coco = CocoDensePose.load(simple)
    assert [e.image_id for e in coco.evaluation_entries()] == [1, 2]
    assert [e.image_id for e in coco.training_entries()] == [1]  # image 2 has no DensePose person
    dataset = DensePoseDataset(coco, dataset_index=3, with_masks=True)
    assert len(dataset) == 1
    image, target = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    assert image[:, 0, 0].tolist() == [30.0, 20.0, 10.0]  # BGR on disk -> RGB
    # crowd dropped; XYWH -> XYXY
    assert target["boxes"].tolist() == [[8, 4, 40, 44], [30, 5, 50, 35]]
    assert target["labels"].tolist() == [1, 1]
    assert target["image_id"] == 1 and target["orig_size"] == (H, W) and target["dataset_index"] == 3
    dp, none = target["densepose"]
    assert none is None
    assert dp.x.tolist() == [32.0, 128.5, 200.0] and dp.y.tolist() == [10.0, 128.0, 250.0]
    assert dp.i.dtype == torch.int64 and dp.i.tolist() == [3, 1, 23]
    assert torch.allclose(dp.u, torch.tensor([0.25, 0.5, 0.9])) and torch.allclose(dp.v, torch.tensor([0.75, 0.5, 0.1]))
    # dp_masks[k] paints k + 1; the later torso (label 1 = entry 0) does not overwrite entry 1 (label 2)
    expected = np.zeros((256, 256), np.uint8)
    expected[128:, :] = 1
    expected[:128, :64] = 2
    assert np.array_equal(dp.mask.numpy(), expected)
    # instance masks: RLE box and polygon
    masks = target["masks"].numpy()
    assert masks.shape == (2, H, W)
    assert masks[0].sum() == 32 * 40 and masks[0][4:44, 8:40].all()
    assert masks[1][6:34, 31:49].all() and masks[1].sum() == pytest.approx(20 * 30, rel=0.1)
    images, targets = collate([dataset[0], dataset[0]])
    assert isinstance(images, list) and len(images) == 2 and len(targets) == 2


def test_evaluation_dataset_keeps_images_without_points(simple):
    dataset = DensePoseDataset(CocoDensePose.load(simple), train=False)
    assert len(dataset) == 2
    image, target = dataset[1]
    assert image[:, 5, 5].tolist() == [50.0, 100.0, 200.0]
    assert target["boxes"].tolist() == [[1, 1, 21, 21]] and target["densepose"] == [None]


def test_json_path_finds_images_folder_next_to_it_and_explicit_folder(simple, tmp_path):
    assert CocoDensePose.load(simple / "annotations.json").images_dir == simple / "images"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text((simple / "annotations.json").read_text())
    coco = CocoDensePose.load(elsewhere, images_dir=simple / "images")
    assert coco.read_image(coco.entries[0]).shape == (H, W, 3)
    source = parse_data_arg(f"{elsewhere}::{simple / 'images'}:2")
    assert source.path == elsewhere and source.images_dir == simple / "images" and source.weight == 2.0


# ---------------------------------------------------------------- one-line errors
def bad(folder: Path, mutate) -> Path:
    anns = [person(1, 1, [8, 4, 32, 40])]
    mutate(anns[0])
    return write_dataset(folder, anns)


@pytest.mark.parametrize("mutate, needles", [
    (lambda a: a.update(dp_U=[0.1, 0.2]), ["differ in length", "dp_U 2"]),
    (lambda a: a.update(dp_I=[3, 25, 1]), ["dp_I value 25", "1..24"]),
    (lambda a: a.update(dp_I=[0, 2, 1]), ["dp_I value 0", "1..24"]),
    (lambda a: a.update(dp_I=[2.5, 2, 1]), ["dp_I value 2.5"]),
    (lambda a: a.update(dp_V=[0.1, 1.5, 0.2]), ["dp_V value 1.5", "[0, 1]"]),
    (lambda a: a.update(dp_U=[-0.1, 0.5, 0.2]), ["dp_U value -0.1", "[0, 1]"]),
    (lambda a: a.update(dp_masks=a["dp_masks"][:13]), ["dp_masks has 13 entries", "expected 14", "write all 14"]),
    (lambda a: a.pop("dp_V"), ["but not dp_V", "all five"]),
    (lambda a: a.update(dp_x=[300.0, 1.0, 2.0]), ["dp_x value 300", "256"]),
], ids=["lengths", "I25", "I0", "Ifrac", "V", "U", "masks13", "partial", "xframe"])
def test_bad_densepose_fields_are_one_line_errors(tmp_path, mutate, needles):
    folder = bad(tmp_path / "d", mutate)
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(folder)
    one_line(exc, str(folder / "annotations.json"), "annotation id 1", *needles)


def test_folder_errors_name_the_folder_and_the_fix(tmp_path):
    (tmp_path / "run" / "records").mkdir(parents=True)
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(tmp_path / "run")
    one_line(exc, f"python -m farm merge {tmp_path / 'run'}", "annotations.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(tmp_path / "empty")
    assert "merge" not in one_line(exc, str(tmp_path / "empty"), "annotations.json")
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(tmp_path / "nowhere")
    one_line(exc, str(tmp_path / "nowhere"), "does not exist")


def test_not_json_and_plain_coco_are_one_line_errors(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,')
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(path)
    one_line(exc, str(path), "is not JSON", "line 1")
    folder = write_dataset(tmp_path / "plain", [person(1, 1, [8, 4, 32, 40], dp=False)])
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(folder)
    one_line(exc, str(folder / "annotations.json"), "no DensePose fields", "plain COCO", "DensePose-COCO")


def test_missing_corrupt_and_wrong_size_images(tmp_path):
    folder = write_dataset(tmp_path / "m", [person(1, 1, [8, 4, 32, 40])])
    (folder / "images" / "b.png").unlink()
    with pytest.raises(TrainUserError) as exc:
        CocoDensePose.load(folder)
    one_line(exc, str(folder / "annotations.json"), "1 of 2 images are missing", "b.png", "::IMAGES_DIR")

    folder = write_dataset(tmp_path / "s", [person(1, 1, [8, 4, 32, 40])])
    cv2.imwrite(str(folder / "images" / "a.png"), np.zeros((H + 2, W, 3), np.uint8))
    coco = CocoDensePose.load(folder)  # the size is checked lazily, on the first read
    with pytest.raises(TrainUserError) as exc:
        DensePoseDataset(coco)[0]
    one_line(exc, str(folder / "images" / "a.png"), f"{W}x{H + 2}", f"says {W}x{H}")

    (folder / "images" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(TrainUserError) as exc:
        coco.read_image(coco.entries[0])
    one_line(exc, str(folder / "images" / "a.png"), "cannot read", "re-render")


# ---------------------------------------------------------------- flips
def index_tables() -> SymmetryTables:
    """Table entry = a number that encodes (part, row, col): exposes the indexing used."""
    p, r, c = np.meshgrid(np.arange(24), np.arange(256), np.arange(256), indexing="ij")
    code = (p * 65536 + r * 256 + c).astype(np.float32)
    return SymmetryTables(code, -code)


def test_flip_uses_densepose_table_indexing_and_part_tables():
    target = DensePoseTarget(x=torch.tensor([0.0, 10.0, 255.5, 100.0]), y=torch.tensor([1.0, 2.0, 3.0, 4.0]),
                             i=torch.tensor([3, 1, 23, 16]), u=torch.tensor([0.0, 0.5, 1.0, 0.999]),
                             v=torch.tensor([1.0, 0.25, 0.0, 0.004]))
    out = flipped(target, index_tables())
    assert out.i.tolist() == [4, 1, 24, 15]  # right hand <-> left hand, torso stays, head halves swap
    assert out.x.tolist() == [256.0, 246.0, 0.5, 156.0] and out.y.tolist() == target.y.tolist()
    # [I - 1][int(255 V), int(255 U)], the ORIGINAL part's table
    expected = [(2, 255, 0), (0, 63, 127), (22, 0, 255), (15, 1, 254)]
    assert out.u.tolist() == [p * 65536 + r * 256 + c for p, r, c in expected]
    assert out.v.tolist() == [-(p * 65536 + r * 256 + c) for p, r, c in expected]


def test_hflip_mirrors_image_position_of_points_boxes_and_masks():
    width = 40
    box = (5.0, 2.0, 20.0, 10.0)  # XYWH
    x0, y0, w, h = box
    cols, rows = np.array([6, 12, 24]), np.array([3, 7, 11])
    # dp_x of pixel centres, as writers do: (col + 0.5 - x0) / w * 256
    dp_x = torch.tensor((cols + 0.5 - x0) / w * 256, dtype=torch.float32)
    dp_y = torch.tensor((rows + 0.5 - y0) / h * 256, dtype=torch.float32)
    part_mask = torch.zeros(256, 256, dtype=torch.uint8)
    part_mask[:, :100] = 2  # coarse 2 = right hand, on the image's left
    part_mask[:, 100:] = 1  # torso
    dp = DensePoseTarget(dp_x, dp_y, torch.tensor([3, 9, 2]), torch.tensor([0.3, 0.4, 0.5]),
                         torch.tensor([0.6, 0.7, 0.8]), part_mask)
    image = torch.zeros(3, 16, width)
    image[0, rows, cols] = torch.tensor([1.0, 2.0, 3.0])
    instance_mask = torch.zeros(1, 16, width, dtype=torch.uint8)
    instance_mask[0, 2:12, 5:25] = 1
    target = {"boxes": torch.tensor([[x0, y0, x0 + w, y0 + h]]), "masks": instance_mask, "densepose": [dp]}
    image2, target2 = hflip(image, target, index_tables())
    (fx0, fy0, fx1, fy1), = target2["boxes"].tolist()
    assert (fx0, fx1, fy0, fy1) == (width - (x0 + w), width - x0, y0, y0 + h)
    d2 = target2["densepose"][0]
    x_img = x0 + dp_x * w / 256
    assert torch.allclose(fx0 + d2.x * (fx1 - fx0) / 256, width - x_img, atol=1e-4)
    # the flipped point sits on the mirrored pixel, which carries the original pixel's value
    new_cols = np.floor((fx0 + d2.x * (fx1 - fx0) / 256).numpy()).astype(int)
    assert new_cols.tolist() == (width - 1 - cols).tolist()
    assert image2[0, rows, new_cols].tolist() == [1.0, 2.0, 3.0]
    assert d2.i.tolist() == [4, 10, 2]
    assert target2["masks"][0, 2:12, width - 25:width - 5].all() and target2["masks"].sum() == 200
    assert (d2.mask[:, 256 - 100:] == 3).all() and (d2.mask[:, :256 - 100] == 1).all()  # right hand -> left hand
    assert target2["flipped"] is True


def test_flip_twice_is_identity(anny_surface, anny_tables):
    rng = np.random.default_rng(1)
    n = 2000
    # points on the torso and limb charts (one-to-one there), at random places of their faces
    faces = rng.choice(np.flatnonzero(np.isin(anny_surface.face_part, [1, 2, *range(7, 23)])), n)
    uv = np.einsum("nk,nkd->nd", rng.dirichlet([1, 1, 1], n), anny_surface.corner_iuv[faces, :, 1:])
    mask = torch.from_numpy(rng.integers(0, 15, (256, 256)).astype(np.uint8))
    dp = DensePoseTarget(torch.from_numpy(rng.uniform(0, 256, n).astype(np.float32)),
                         torch.from_numpy(rng.uniform(0, 256, n).astype(np.float32)),
                         torch.from_numpy(anny_surface.face_part[faces]),
                         torch.from_numpy(uv[:, 0].astype(np.float32)), torch.from_numpy(uv[:, 1].astype(np.float32)),
                         mask)
    boxes = torch.tensor([[3.5, 4.0, 30.25, 40.0]])
    image = torch.from_numpy(rng.uniform(0, 255, (3, 50, 60)).astype(np.float32))
    target = {"boxes": boxes, "densepose": [dp, None]}
    image2, target2 = hflip(*hflip(image, target, anny_tables), anny_tables)
    assert torch.equal(image2, image) and torch.equal(target2["boxes"], boxes)
    back = target2["densepose"][0]
    assert target2["densepose"][1] is None and target2["flipped"] is False
    assert torch.allclose(back.x, dp.x, atol=1e-4) and torch.equal(back.i, dp.i) and torch.equal(back.mask, mask)
    # the round trip only quantises U, V to the tables' texels (centres: half a texel)
    error = torch.maximum((back.u - dp.u).abs(), (back.v - dp.v).abs())
    assert (error <= 1 / 255).float().mean() > 0.99 and error.max() < 0.02, error.max()


# ---------------------------------------------------------------- symmetry tables
def quad_surface(offset: float) -> ChartSurface:
    """Two mirror-image grids, part 3 at x in [0.5, 1.5] and part 4 at x in [-1.5, -0.5] (plus
    `offset`), charted so that the mirror keeps U on hands (3 <-> 4) but reverses it for part 7
    <-> 8 (a second pair, charted the other way)."""
    n = 6
    s = np.linspace(0, 1, n)
    gx, gy = np.meshgrid(s, s)
    quads = [(i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j) for i in range(n - 1) for j in range(n - 1)]
    grid_faces = np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    vertices, faces, iuv = [], [], []
    for part, side, z, reverse in ((3, 1, 0.0, False), (4, -1, 0.0, False), (7, 1, 1.0, False), (8, -1, 1.0, True)):
        base = sum(len(v) for v in vertices)
        x = side * (0.5 + gx.ravel())
        vertices.append(np.column_stack([x + offset, gy.ravel(), np.full(n * n, z)]))
        faces.append(grid_faces + base)
        u = 1 - gx.ravel() if reverse else gx.ravel()
        uv = np.column_stack([u, gy.ravel()])[grid_faces]
        iuv.append(np.concatenate([np.full(grid_faces.shape + (1,), part), uv], axis=2))
    return ChartSurface("test", np.concatenate(vertices), np.concatenate(faces), np.concatenate(iuv))


def test_tables_from_a_mirrored_grid_and_their_cache(tmp_path):
    tables = tables_from_surface(quad_surface(0.3), cache_dir=tmp_path)  # mid-plane x = 0.3, estimated
    centres = np.minimum((np.arange(256) + 0.5) / 255, 1.0)
    u_grid, v_grid = np.meshgrid(centres, centres)
    for part, expected_u in ((3, u_grid), (4, u_grid), (7, 1 - u_grid), (8, 1 - u_grid)):
        assert np.abs(tables.U[part - 1] - expected_u).max() < 1e-5, part
        assert np.abs(tables.V[part - 1] - v_grid).max() < 1e-5, part
    assert np.array_equal(tables.U[0], u_grid.astype(np.float32))  # no torso chart: identity
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1
    again = tables_from_surface(quad_surface(0.3), cache_dir=tmp_path)
    assert np.array_equal(again.U, tables.U) and np.array_equal(again.V, tables.V)


def test_densepose_mat_layout_round_trip(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    u, v = rng.random((2, 24, 256, 256)).astype(np.float32)
    cells_u, cells_v = np.empty((1, 24), dtype=object), np.empty((1, 24), dtype=object)
    for k in range(24):
        cells_u[0, k], cells_v[0, k] = u[k], v[k]
    path = tmp_path / "UV_symmetry_transforms.mat"
    scipy.io.savemat(str(path), {"U_transforms": cells_u, "V_transforms": cells_v})
    tables = load_densepose_symmetry(path)
    assert np.array_equal(tables.U, u) and np.array_equal(tables.V, v)
    scipy.io.savemat(str(path), {"U_transforms": cells_u})
    with pytest.raises(TrainUserError) as exc:
        load_densepose_symmetry(path)
    one_line(exc, str(path), "V_transforms")


@pytest.fixture(scope="module")
def anny_surface(default_body) -> ChartSurface:
    rest = default_body.model.rest({})
    return ChartSurface("anny", rest.vertices, default_body.faces, default_body.corner_iuv)


@pytest.fixture(scope="module")
def anny_tables(anny_surface, tmp_path_factory) -> SymmetryTables:
    return tables_from_surface(anny_surface, cache_dir=tmp_path_factory.mktemp("symmetry"))


def test_anny_tables_follow_the_documented_mirror_rule(anny_surface, anny_tables):
    """anny's charts map (U, V) to the same (U, V) on the mirror chart, except the torso
    charts 1, 2 where U -> 1 - U (densesynth/bodies/anny_charts.py). Checked at random points
    of every chart's faces (so only texels the chart covers)."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, len(anny_surface.faces), 40000)
    bary = rng.dirichlet([1, 1, 1], len(faces))
    uv = np.einsum("nk,nkd->nd", bary, anny_surface.corner_iuv[faces, :, 1:].astype(np.float64))
    part = anny_surface.face_part[faces]
    i2, u2, v2 = anny_tables.flip(torch.from_numpy(part), torch.from_numpy(uv[:, 0]), torch.from_numpy(uv[:, 1]))
    expected_u = np.where(np.isin(part, [1, 2]), 1 - uv[:, 0], uv[:, 0])
    ok = (np.abs(u2.numpy() - expected_u) < 0.02) & (np.abs(v2.numpy() - uv[:, 1]) < 0.02)
    per_part = {p: ok[part == p].mean() for p in range(1, 25)}
    # measured (100,000 points): every point within 0.02 and within one texel (1/255), max 0.011;
    # folds (fingers, toes, eyeballs, mouth insert) are mirror-symmetric too
    assert ok.mean() > 0.995, per_part
    assert min(per_part.values()) > 0.98, per_part
    assert np.array_equal(i2.numpy(), np.array([0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17,
                                                20, 19, 22, 21, 24, 23])[part])


# ---------------------------------------------------------------- chart surface
def test_chart_surface_round_trip_and_bad_files(tmp_path):
    surface = quad_surface(0.0)
    path = tmp_path / "charts.npz"
    surface.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert data["vertices"].dtype == np.float32 and data["faces"].dtype == np.int32
        assert data["corner_iuv"].shape == (len(surface.faces), 3, 3) and str(data["body_kind"]) == "test"
    loaded = ChartSurface.load(path)
    assert np.array_equal(loaded.vertices, surface.vertices) and np.array_equal(loaded.corner_iuv, surface.corner_iuv)
    assert find_charts(tmp_path) == path and find_charts(tmp_path / "annotations.json") == path
    (tmp_path / "sub").mkdir()
    assert find_charts(tmp_path / "sub") is None  # a folder: only its own charts.npz

    np.savez(tmp_path / "short.npz", body_kind=np.array("x"), vertices=surface.vertices, faces=surface.faces)
    with pytest.raises(TrainUserError) as exc:
        ChartSurface.load(tmp_path / "short.npz")
    one_line(exc, str(tmp_path / "short.npz"), "lacks corner_iuv", "charts.npz")
    bad_iuv = surface.corner_iuv.copy()
    bad_iuv[0, 0, 0] = 5  # I differs within a face
    np.savez(tmp_path / "bad.npz", body_kind=np.array("x"), vertices=surface.vertices, faces=surface.faces,
             corner_iuv=bad_iuv)
    with pytest.raises(TrainUserError) as exc:
        ChartSurface.load(tmp_path / "bad.npz")
    one_line(exc, str(tmp_path / "bad.npz"), "per face")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(TrainUserError) as exc:
        ChartSurface.load(tmp_path / "junk.npz")
    one_line(exc, str(tmp_path / "junk.npz"), "not a readable")


def test_locate_on_a_grid_hits_corners_and_interpolates_exactly():
    surface = quad_surface(0.0)
    corners = surface.corner_iuv.reshape(-1, 3)
    points, vertex = surface.locate(corners[:, 0], corners[:, 1], corners[:, 2])
    assert np.array_equal(vertex, surface.faces.reshape(-1))
    assert np.array_equal(points, surface.vertices[surface.faces.reshape(-1)])
    points, vertex = surface.locate(np.array([0, 5]), np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    assert np.isnan(points).all() and vertex.tolist() == [-1, -1]  # no chart / a part without faces
    rng = np.random.default_rng(0)
    faces = rng.integers(0, len(surface.faces), 300)
    bary = rng.dirichlet([1, 1, 1], 300)
    truth = np.einsum("nk,nkd->nd", bary, surface.vertices[surface.faces[faces]].astype(np.float64))
    uv = np.einsum("nk,nkd->nd", bary, surface.corner_iuv[faces, :, 1:].astype(np.float64))
    exact, _, _ = surface.surface_points(surface.face_part[faces], uv[:, 0], uv[:, 1])
    assert np.abs(exact - truth).max() < 1e-5


def test_locate_error_is_below_an_edge(anny_surface):
    """Nearest-corner lookup on anny, at area-uniform random points of chart faces: the error
    is close to the best any nearest-vertex lookup can do (distance to the nearest corner of
    the true face). Measured: mean 8.7 mm (best possible 7.2 mm), exact lookup <1 mm at 96 %."""
    surface = anny_surface
    tri = surface.vertices[surface.faces].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rng = np.random.default_rng(0)
    faces = rng.choice(len(tri), 20000, p=area / area.sum())
    bary = rng.dirichlet([1, 1, 1], len(faces))
    truth = np.einsum("nk,nkd->nd", bary, tri[faces])
    uv = np.einsum("nk,nkd->nd", bary, surface.corner_iuv[faces, :, 1:].astype(np.float64))
    points, vertex = surface.locate(surface.face_part[faces], uv[:, 0], uv[:, 1])
    error = np.linalg.norm(points - truth, axis=1)
    best = np.linalg.norm(tri[faces] - truth[:, None], axis=2).min(axis=1)
    assert np.array_equal(points, surface.vertices[vertex])
    assert error.mean() < 1.3 * best.mean() and error.mean() < 0.012, (error.mean(), best.mean())
    exact, _, _ = surface.surface_points(surface.face_part[faces], uv[:, 0], uv[:, 1])
    assert (np.linalg.norm(exact - truth, axis=1) < 1e-3).mean() > 0.9


# ---------------------------------------------------------------- sources and mixing
@pytest.mark.parametrize("text, path, weight, images", [
    ("A.json", "A.json", 1.0, None), ("A.json:2.5", "A.json", 2.5, None), ("B/:3", "B", 3.0, None),
    ("A.json::imgs", "A.json", 1.0, "imgs"), ("A.json::imgs:0.5", "A.json", 0.5, "imgs"), ("A.json:1e-3", "A.json", 1e-3, None),
])
def test_parse_data_arg(text, path, weight, images):
    source = parse_data_arg(text)
    assert source.path == Path(path) and source.weight == weight
    assert source.images_dir == (Path(images) if images else None)


@pytest.mark.parametrize("text", ["A.json:abc", "A.json:0", "A.json:-1", "A.json:inf", "A.json:nan", "A.json:"])
def test_bad_weights_are_one_line_errors(text):
    with pytest.raises(TrainUserError) as exc:
        parse_data_arg(text)
    one_line(exc, "--data", repr(text), "PATH[:WEIGHT]", "positive")


def test_mixed_sampler_frequencies_determinism_and_resume():
    sizes, weights = [10, 1000], [1.0, 3.0]
    draws = np.array(list(itertools.islice(MixedSampler(sizes, weights, seed=5), 40000)))
    from_first = draws < 10
    assert abs(from_first.mean() - 0.25) < 0.01  # weight share, not size share (0.0099)
    counts = np.bincount(draws[from_first], minlength=10)
    assert counts.min() > 0.8 * from_first.sum() / 10 and counts.max() < 1.2 * from_first.sum() / 10
    assert draws.max() < 1010
    again = list(itertools.islice(MixedSampler(sizes, weights, seed=5), 200))
    assert again == draws[:200].tolist()
    assert list(itertools.islice(MixedSampler(sizes, weights, seed=6), 200)) != again
    resumed = list(itertools.islice(MixedSampler(sizes, weights, seed=5, start=5000), 300))
    assert resumed == draws[5000:5300].tolist()
    assert MixedSampler(sizes, weights).source_of(9) == 0 and MixedSampler(sizes, weights).source_of(10) == 1


def test_training_set_records_sources_and_flips_with_own_tables(tmp_path, simple):
    other = write_dataset(tmp_path / "other", [person(1, 1, [2, 2, 30, 30]), person(2, 2, [3, 3, 20, 20])])
    quad_surface(0.0).save(other / "charts.npz")  # its own (test) chart surface
    sources = [parse_data_arg(f"{simple}:1"), parse_data_arg(f"{other}:3")]
    with pytest.raises(TrainUserError) as exc:  # `simple` has no charts.npz: cannot flip
        build_training_set(sources, flip_prob=1.0, cache_dir=tmp_path / "cache")
    one_line(exc, str(simple / "annotations.json"), "symmetry", "charts.npz")
    dataset, sampler = build_training_set(sources, seed=0, flip_prob=0.0)
    assert len(dataset) == 3
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate)
    images, targets = next(iter(loader))
    assert len(images) == 2
    for index, target in zip(itertools.islice(iter(sampler), 2), targets):
        assert target["dataset_index"] == sampler.source_of(index)
    tables = symmetry_for(other / "annotations.json", cache_dir=tmp_path / "cache")
    assert tables is not None and symmetry_for(simple) is None
    flipping = build_training_set([sources[1]], flip_prob=1.0, cache_dir=tmp_path / "cache")[0]
    image, target = flipping[0]
    assert target["flipped"] and target["densepose"][0].i.tolist() == [4, 1, 24]
    assert target["boxes"].tolist() == [[W - 32, 2, W - 2, 32]]


def test_package_imports_only_the_part_tables_from_densesynth():
    code = ("import sys, densepose_train.charts, densepose_train.data.sources, densepose_train.data.transforms; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('densesynth', 'bpy', 'farm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "['densesynth', 'densesynth.core', 'densesynth.core.parts']"


# ---------------------------------------------------------------- a real render
def test_real_render_loads_and_flips(rendered, tmp_path, anny_tables):
    coco = CocoDensePose.load(rendered)
    assert coco.stats["densepose"] > 0 and coco.stats["densepose_without_masks"] == 0
    dataset = DensePoseDataset(coco)
    json_data = json.loads((rendered / "annotations.json").read_text())
    by_image = {}
    for ann in json_data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for k in range(len(dataset)):
        image, target = dataset[k]
        anns = by_image[target["image_id"]]
        x, y, w, h = np.array([a["bbox"] for a in anns], np.float32).T
        assert np.allclose(target["boxes"].numpy(), np.stack([x, y, x + w, y + h], 1))
        assert image.shape[1:] == target["orig_size"]
        for dp, ann in zip(target["densepose"], anns):
            assert dp.mask is not None and dp.mask.max() > 0
            assert np.allclose(dp.u.numpy(), ann["dp_U"]) and dp.i.tolist() == [int(i) for i in ann["dp_I"]]
    charts = find_charts(rendered)
    if charts is not None:  # the renderer's own surface; else the same default body built here
        assert ChartSurface.load(charts).body_kind == "anny"
        anny_tables = symmetry_for(rendered, cache_dir=tmp_path)
    people = [dp for k in range(len(dataset)) for dp in dataset.target(k)["densepose"]]
    i, u, v = (torch.cat([getattr(dp, name) for dp in people]) for name in ("i", "u", "v"))
    i2, u2, v2 = anny_tables.flip(i, u, v)
    expected_u = torch.where((i == 1) | (i == 2), 1 - u, u)
    ok = ((u2 - expected_u).abs() < 0.02) & ((v2 - v).abs() < 0.02)
    assert ok.float().mean() > 0.95, ok.float().mean()
