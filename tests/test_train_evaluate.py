"""The evaluator: geodesics against closed forms and exact paths, GPS / GPSm / segm / bbox AP on
hand-built cases whose answers are known (DensePose's protocol, densepose_coco_evaluation.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from densepose_train.charts import ChartSurface
from densepose_train.errors import TrainUserError
from densepose_train.evaluate import evaluate_predictions, format_table
from densepose_train.evaluate.geodesics import GeodesicDistances, accuracy_report
from densepose_train.evaluate.gps import KAPPA_2019, kappa_per_part, summarize_eval
from densepose_train.model.outputs import DensePoseResult

SPACING = 0.01  # metres between grid vertices of the flat test surface
COLS, ROWS = 100, 20  # squares; part 1 (torso) on columns 0..50, part 3 (hand) on 50..100
HALF = COLS // 2


# --------------------------------------------------------------------------- surfaces
def grid_mesh(cols: int, rows: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """A flat (cols x rows) grid of squares in the z = 0 plane, two triangles per square."""
    ii, jj = np.meshgrid(np.arange(cols + 1), np.arange(rows + 1), indexing="ij")
    vertices = np.stack([ii.ravel() * spacing, jj.ravel() * spacing, np.zeros(ii.size)], axis=1)
    vid = lambda i, j: i * (rows + 1) + j
    faces = []
    for i in range(cols):
        for j in range(rows):
            a, b, c, d = vid(i, j), vid(i + 1, j), vid(i, j + 1), vid(i + 1, j + 1)
            faces += [[a, b, d], [a, d, c]]
    return vertices, np.array(faces)


def strip_surface() -> ChartSurface:
    """Flat strip: chart I=1 on the left half, I=3 on the right half, U along x, V along y."""
    vertices, faces = grid_mesh(COLS, ROWS, SPACING)
    corner = np.zeros((len(faces), 3, 3), dtype=np.float32)
    for f, tri in enumerate(faces):
        i = vertices[tri, 0] / SPACING
        j = vertices[tri, 1] / SPACING
        left = i.mean() < HALF
        corner[f, :, 0] = 1 if left else 3
        corner[f, :, 1] = i / HALF if left else (i - HALF) / HALF
        corner[f, :, 2] = j / ROWS
    return ChartSurface("smpl", vertices, faces, corner)


def strip_iuv(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chart coordinates of grid vertex (i, j) (left half: I=1; right half: I=3)."""
    left = i < HALF
    I = np.where(left, 1, 3)
    U = np.where(left, i / HALF, (i - HALF) / HALF)
    return I, U, j / ROWS


def cylinder_mesh(radius: float, length: float, around: int, along: int) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arange(around) * 2 * np.pi / around
    z = np.linspace(0.0, length, along)
    vertices = np.array([[radius * np.cos(t), radius * np.sin(t), zz] for zz in z for t in theta])
    faces = []
    for j in range(along - 1):
        for i in range(around):
            a, b = j * around + i, j * around + (i + 1) % around
            c, d = a + around, b + around
            faces += [[a, b, d], [a, d, c]]
    return vertices, np.array(faces)


def icosphere(levels: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5 ** 0.5) / 2
    V = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=float)
    F = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    for _ in range(levels):
        edges = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = V[unique].mean(axis=1)
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = len(V) + inverse.reshape(3, -1).T
        a, b, c = F.T
        ab, bc, ca = m.T
        F = np.concatenate([np.stack(x, axis=1) for x in ([a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca])])
        V = np.concatenate([V, mid])
    return V, F


# --------------------------------------------------------------------------- geodesics
def test_flat_grid_distances_are_euclidean():
    vertices, faces = grid_mesh(30, 10, SPACING)
    g = GeodesicDistances(vertices, faces, cache_dir=False)
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, len(vertices), 200), rng.integers(0, len(vertices), 200)
    exact = np.linalg.norm(vertices[src] - vertices[dst], axis=1)
    got = g.pairwise(src, dst)
    # Along grid lines the graph has the straight path itself: exact up to float16 rounding.
    same_row = vertices[src, 1] == vertices[dst, 1]
    assert np.allclose(got[same_row], exact[same_row], rtol=1e-3, atol=1e-5)
    assert np.all(got >= exact * (1 - 1e-3) - 1e-5)  # never shorter than the straight line
    assert np.mean((got - exact)[exact > 0] / exact[exact > 0]) < 0.005
    report = accuracy_report(vertices, faces, num_sources=3, targets_per_source=4, near=0.1)
    assert report["pairs"] >= 9 and abs(report["mean"]) < 0.005


def test_cylinder_and_sphere_match_closed_forms():
    # Cylinder: the unrolled distance sqrt((r dtheta)^2 + dz^2).
    V, F = cylinder_mesh(0.1, 0.6, 48, 40)
    g = GeodesicDistances(V, F, cache_dir=False)
    rng = np.random.default_rng(1)
    src, dst = rng.integers(0, len(V), 300), rng.integers(0, len(V), 300)
    ang = np.arctan2(V[:, 1], V[:, 0])
    dtheta = np.abs(ang[src] - ang[dst])
    dtheta = np.minimum(dtheta, 2 * np.pi - dtheta)
    exact = np.hypot(0.1 * dtheta, V[src, 2] - V[dst, 2])
    got = g.pairwise(src, dst)
    far = exact > 0.03
    rel = (got[far] - exact[far]) / exact[far]
    assert abs(rel.mean()) < 0.01 and np.percentile(np.abs(rel), 95) < 0.03
    # Sphere of radius 0.1 m: great-circle distances r * acos(p.q).
    V, F = icosphere(3)
    g = GeodesicDistances(V * 0.1, F, cache_dir=False)
    src, dst = rng.integers(0, len(V), 300), rng.integers(0, len(V), 300)
    exact = 0.1 * np.arccos(np.clip((V[src] * V[dst]).sum(1), -1, 1))
    got = g.pairwise(src, dst)
    far = exact > 0.03
    rel = (got[far] - exact[far]) / exact[far]
    assert abs(rel.mean()) < 0.01 and np.percentile(np.abs(rel), 95) < 0.03


def test_anny_distances_match_exact_flip_geodesics(default_body):
    """On the real default body: close to potpourri3d's flip geodesics (locally shortest paths)."""
    import potpourri3d as pp3d
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    rest = default_body.model.rest({})
    V = np.asarray(rest.vertices, dtype=np.float64)
    F = np.asarray(default_body.faces, dtype=np.int64)
    edges = sp.coo_matrix((np.ones(3 * len(F)), (F.ravel(), F[:, [1, 2, 0]].ravel())), shape=(len(V), len(V)))
    n_comp, label = connected_components(edges, directed=False)
    assert n_comp > 1  # anny ships separate eyeballs and a mouth insert
    # The flip solver needs a manifold: compare on the largest component alone.
    main = np.argmax(np.bincount(label))
    keep = np.flatnonzero(label == main)
    remap = np.full(len(V), -1)
    remap[keep] = np.arange(len(keep))
    Vm, Fm = V[keep], remap[F[label[F[:, 0]] == main]]
    ours = GeodesicDistances(Vm, Fm, cache_dir=False)
    solver = pp3d.EdgeFlipGeodesicSolver(Vm, Fm)
    rng = np.random.default_rng(2)
    rel = []
    for s in rng.choice(len(Vm), 6, replace=False):
        near = np.flatnonzero(np.linalg.norm(Vm - Vm[s], axis=1) < 0.3)
        for t in rng.choice(near, 5):
            if t != s:
                flip = np.linalg.norm(np.diff(solver.find_geodesic_path(int(s), int(t)), axis=0), axis=1).sum()
                rel.append(ours.pairwise([s], [t])[0] / flip - 1.0)
    rel = np.array(rel)
    # Both are lengths of real surface paths (upper bounds of the exact geodesic); flip paths are
    # up to ~3 % long where they settle in a local minimum, ours measured <= 1.3 %.
    assert abs(rel.mean()) < 0.01 and rel.max() < 0.03 and rel.min() > -0.04, rel
    # On the whole mesh every vertex is reachable: an eyeball is near the face, not infinitely far.
    whole = GeodesicDistances(V, F, unfold_depth=0, cache_dir=False)  # bridges do not depend on depth
    other = np.flatnonzero(label != main)
    d = whole.pairwise(np.full(len(other), keep[0]), other)
    assert np.isfinite(d).all() and d.max() < 3.0


def test_disk_cache_keeps_rows(tmp_path):
    vertices, faces = grid_mesh(10, 4, SPACING)
    first = GeodesicDistances(vertices, faces, cache_dir=tmp_path)
    assert first.prepare([3, 7, 7]) == 2
    again = GeodesicDistances(vertices, faces, cache_dir=tmp_path)
    assert again.prepare([3, 7]) == 0  # already on disk
    assert np.allclose(again.pairwise([3, 7], [40, 0]), first.pairwise([3, 7], [40, 0]))
    assert np.isclose(again.pairwise([0], [5 * 10])[0], 10 * SPACING, rtol=1e-3)  # vertex (10, 0)


# --------------------------------------------------------------------------- COCO fixtures
IMAGE_HW = (240, 256)


def ellipse_mask(box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    rr, cc = np.mgrid[0:IMAGE_HW[0], 0:IMAGE_HW[1]]
    inside = ((cc + 0.5 - (x + w / 2)) / (w / 2)) ** 2 + ((rr + 0.5 - (y + h / 2)) / (h / 2)) ** 2 < 0.95
    return inside.astype(np.uint8)


def rle(mask: np.ndarray) -> dict:
    out = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    out["counts"] = out["counts"].decode()
    return out


def box_frame(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The image mask sampled on the 256 x 256 box frame (cell centres), as a writer makes dp_masks."""
    x, y, w, h = box
    u = np.floor(x + (np.arange(256) + 0.5) * w / 256).astype(int)
    v = np.floor(y + (np.arange(256) + 0.5) * h / 256).astype(int)
    return mask[np.clip(v, 0, IMAGE_HW[0] - 1)][:, np.clip(u, 0, IMAGE_HW[1] - 1)]


def person(ann_id: int, box: tuple[int, int, int, int], rng: np.random.Generator, n_points: int = 40,
           columns: tuple[int, int] = (0, COLS + 1), dp: bool = True) -> tuple[dict, dict]:
    """A GT person (exact convention) with points on distinct mask pixels and IUV of grid vertices
    whose column lies in `columns`; also returns the (row, col, i, j) of every point."""
    mask = ellipse_mask(box)
    ann = {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": list(map(float, box)),
           "area": float(mask.sum()), "segmentation": rle(mask)}
    if not dp:
        return ann, {}
    rows, cols = np.nonzero(mask)
    pick = rng.choice(len(rows), n_points, replace=False)
    r, c = rows[pick], cols[pick]
    i = rng.integers(columns[0], columns[1], n_points)
    j = rng.integers(0, ROWS + 1, n_points)
    I, U, V = strip_iuv(i, j)
    x, y, w, h = box
    dp_masks = [rle(box_frame(mask, box))] + [[] for _ in range(13)]
    ann.update(dp_x=((c + 0.5 - x) / w * 256).tolist(), dp_y=((r + 0.5 - y) / h * 256).tolist(),
               dp_I=I.astype(float).tolist(), dp_U=U.tolist(), dp_V=V.tolist(), dp_masks=dp_masks)
    return ann, {"r": r, "c": c, "i": i, "j": j}


def dataset(anns: list[dict]) -> dict:
    return {"images": [{"id": 1, "file_name": "a.png", "height": IMAGE_HW[0], "width": IMAGE_HW[1]}],
            "categories": [{"id": 1, "name": "person"}], "annotations": anns}


def prediction(ann: dict, points: dict, score: float = 0.9, shift: int = 0, mask: bool = True) -> dict:
    """A prediction on the GT box: mask = the GT mask, points' cells hold the IUV of the grid vertex
    `shift` columns to the right of the GT's (0 = perfect)."""
    x, y, w, h = (int(v) for v in ann["bbox"])
    full = mask_utils.decode(ann["segmentation"])
    labels = (full[y:y + h, x:x + w] > 0).astype(np.uint8) * (1 if mask else 0)
    uv = np.full((2, h, w), 0.5, dtype=np.float32)
    if points:
        I, U, V = strip_iuv(points["i"] + shift, points["j"])
        labels[points["r"] - y, points["c"] - x] = I
        uv[0, points["r"] - y, points["c"] - x] = U
        uv[1, points["r"] - y, points["c"] - x] = V
    result = DensePoseResult(labels=labels, uv=uv, coarse=labels > 0)
    return {"image_id": 1, "category_id": 1, "bbox": list(ann["bbox"]), "score": score, "densepose": result}


@pytest.fixture(scope="module")
def strip() -> ChartSurface:
    return strip_surface()


@pytest.fixture(scope="module")
def two_people():
    rng = np.random.default_rng(5)
    a, pa = person(1, (20, 30, 80, 100), rng)  # medium
    b, pb = person(2, (120, 40, 110, 150), rng)  # large
    return [a, b], [pa, pb]


def evaluate(gt, preds, charts, **kw):
    return evaluate_predictions(gt, preds, charts, geodesic_cache=False, **kw)


# --------------------------------------------------------------------------- known answers
def test_perfect_prediction_scores_100_everywhere(strip, two_people, tmp_path):
    anns, points = two_people
    preds = [prediction(a, p) for a, p in zip(anns, points)]
    metrics = evaluate(dataset(anns), preds, strip, out_dir=tmp_path)
    for task in ("bbox", "segm", "gps", "gpsm"):
        for key in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75"):
            assert metrics[task][key] == pytest.approx(100.0), (task, key, metrics[task])
    assert metrics["bbox"]["APs"] is None  # no small person; pycocotools' -1
    assert metrics["gps"]["APs"] is None  # DensePose evaluates no small range at all
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["info"]["dp_convention"] == "exact"
    assert saved["info"]["kappa"]["metres"]["hands"] == 0.107
    assert saved["info"]["num_densepose_instances"] == 2
    assert {k: saved[k] for k in ("bbox", "segm", "gps", "gpsm")} == metrics
    text = (tmp_path / "metrics.json").read_text()
    assert text.index('"bbox"') < text.index('"gps"') < text.index('"info"') < text.index('"segm"')  # sorted


def test_shuffled_uv_lowers_gps_not_segm(strip, two_people):
    anns, points = two_people
    rng = np.random.default_rng(9)
    preds = []
    for a, p in zip(anns, points):
        shuffled = dict(p)
        order = rng.permutation(len(p["i"]))
        # Shuffle within parts: keep each point's part, move its (U, V) to another point of that part.
        for part_cols in ((0, HALF), (HALF, COLS + 1)):
            sel = np.flatnonzero((p["i"] >= part_cols[0]) & (p["i"] < part_cols[1]))
            order[sel] = rng.permutation(sel)
        shuffled["i"], shuffled["j"] = p["i"][order], p["j"][order]
        preds.append(prediction(a, shuffled))
    metrics = evaluate(dataset(anns), preds, strip)
    assert metrics["segm"]["AP"] == pytest.approx(100.0)
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)
    assert metrics["gps"]["AP"] < 60.0
    assert metrics["gpsm"]["AP"] < metrics["segm"]["AP"]


def test_no_prediction_scores_zero(strip, two_people):
    anns, _ = two_people
    metrics = evaluate(dataset(anns), [], strip)
    for task in ("bbox", "segm", "gps", "gpsm"):
        assert metrics[task]["AP"] == 0.0 and metrics[task]["AR"] == 0.0, task


def test_gps_of_a_known_surface_distance(strip):
    """Every point predicted k grid steps away along the strip: GPS = exp(-d^2 / (2 kappa^2))."""
    rng = np.random.default_rng(3)
    k = 35  # 0.35 m on the torso chart (kappa 0.351): GPS 0.608
    ann, pts = person(1, (30, 30, 120, 160), rng, n_points=50, columns=(0, HALF - k + 1))
    metrics = evaluate(dataset([ann]), [prediction(ann, pts, shift=k)], strip)
    gps = math.exp(-(k * SPACING) ** 2 / (2 * KAPPA_2019["torso"] ** 2))
    assert 0.6 < gps < 0.65
    # Thresholds 0.50, 0.55, 0.60 pass, 0.65 ... 0.95 fail: AP = 3 / 10, AP50 = 100, AP75 = 0.
    assert metrics["gps"]["AP50"] == pytest.approx(100.0)
    assert metrics["gps"]["AP75"] == pytest.approx(0.0)
    assert metrics["gps"]["AP"] == pytest.approx(30.0)
    # GPSm with a perfect mask is sqrt(GPS): 0.78 -> thresholds up to 0.75 pass (6 of 10).
    assert math.sqrt(gps) > 0.75
    assert metrics["gpsm"]["AP"] == pytest.approx(60.0)


def test_pair_gps_value_and_per_part_kappa(strip):
    """The pair score itself: a mix of torso and hand points, each with its own kappa."""
    from densepose_train.evaluate.coco_metrics import _coco, _load_results, _with_defaults
    from densepose_train.evaluate.gps import DensePoseScorer

    rng = np.random.default_rng(4)
    k = 12
    torso, tp = person(1, (30, 30, 120, 160), rng, n_points=30, columns=(0, HALF - k + 1))
    hand, hp = person(1, (30, 30, 120, 160), rng, n_points=30, columns=(HALF, COLS - k + 1))
    ann = dict(torso)
    for key in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V"):
        ann[key] = torso[key] + hand[key]
    both = {key: np.concatenate([tp[key], hp[key]]) for key in tp}
    # The hand points were drawn on their own: drop those that share a pixel with a torso point.
    pixel = both["r"] * 1000 + both["c"]
    _, first = np.unique(pixel, return_index=True)
    first = np.sort(first)
    for key in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V"):
        ann[key] = [ann[key][q] for q in first]
    both = {key: value[first] for key, value in both.items()}
    data = _with_defaults(dataset([ann]), for_densepose=True)
    coco = _coco(data)
    pred = prediction(ann, both, shift=k)
    dt = _load_results(coco, [{"image_id": 1, "category_id": 1, "bbox": pred["bbox"], "score": 0.9}])
    g = GeodesicDistances(strip.vertices, strip.faces, cache_dir=False)
    scorer = DensePoseScorer(coco, {1: pred["densepose"]}, strip, g)
    value = scorer.gps(dt.loadAnns([1]), coco.loadAnns([1]))[0, 0]
    d = k * SPACING
    is_hand = both["i"] >= HALF
    expected = np.where(is_hand, math.exp(-d ** 2 / (2 * 0.107 ** 2)), math.exp(-d ** 2 / (2 * 0.351 ** 2))).mean()
    assert value == pytest.approx(expected, abs=2e-3)
    # The 2018 metric: one kappa of 0.255 for every part.
    scorer18 = DensePoseScorer(coco, {1: pred["densepose"]}, strip, g, kappa="2018")
    value18 = scorer18.gps(dt.loadAnns([1]), coco.loadAnns([1]))[0, 0]
    assert value18 == pytest.approx(math.exp(-d ** 2 / (2 * 0.255 ** 2)), abs=2e-3)
    assert np.allclose(kappa_per_part("2019")[[1, 2, 3, 4, 5, 6, 7, 11, 15, 19, 23, 24]],
                       [0.351, 0.351, 0.107, 0.107, 0.126, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150, 0.150])


def test_points_outside_the_box_or_on_background_score_zero(strip):
    rng = np.random.default_rng(6)
    ann, pts = person(1, (30, 30, 120, 160), rng, n_points=40)
    pred = prediction(ann, pts)
    # Background under half of the points: GPS 0.5 exactly (the others are perfect).
    labels = pred["densepose"].labels.copy()
    half = slice(0, 20)
    labels[pts["r"][half] - 30, pts["c"][half] - 30] = 0
    pred["densepose"] = DensePoseResult(labels=labels, uv=pred["densepose"].uv, coarse=labels > 0)
    m = evaluate(dataset([ann]), [pred], strip)
    assert m["gps"]["AP50"] == pytest.approx(100.0) and m["gps"]["AP"] == pytest.approx(10.0)
    # A detection box covering only the left part of the person: points right of it score 0.
    x0 = 30 + 60
    inside = pts["c"] < x0
    narrow = prediction(ann, pts)
    res = narrow["densepose"]
    narrow["bbox"] = [30.0, 30.0, 60.0, 160.0]
    narrow["densepose"] = DensePoseResult(labels=res.labels[:, :60], uv=res.uv[:, :, :60], coarse=res.coarse[:, :60])
    from densepose_train.evaluate.coco_metrics import _coco, _load_results, _with_defaults
    from densepose_train.evaluate.gps import DensePoseScorer

    coco = _coco(_with_defaults(dataset([ann]), for_densepose=True))
    dt = _load_results(coco, [{"image_id": 1, "category_id": 1, "bbox": narrow["bbox"], "score": 0.9}])
    scorer = DensePoseScorer(coco, {1: narrow["densepose"]}, strip, GeodesicDistances(strip.vertices, strip.faces,
                                                                                       cache_dir=False))
    assert scorer.gps(dt.loadAnns([1]), coco.loadAnns([1]))[0, 0] == pytest.approx(inside.mean())


def test_dp_x_conventions_read_different_cells(strip):
    """DensePose's evaluator maps dp_x with / 255 then int(); ours with / 256 at pixel centres."""
    rng = np.random.default_rng(7)
    box = (10, 20, 100, 100)
    ann, _ = person(1, box, rng, n_points=1)
    ann.update(dp_x=[250.0], dp_y=[128.0], dp_I=[1.0], dp_U=[0.5], dp_V=[0.5])
    col_exact = int(math.floor(10 + 250 * 100 / 256))  # 107
    col_densepose = int(10 + 250 * 100 / 255 - 10) + 10  # 108
    row_exact, row_densepose = int(math.floor(20 + 128 * 100 / 256)), int(20 + 128 * 100 / 255 - 20) + 20
    assert col_exact != col_densepose
    for convention, (row, col) in (("exact", (row_exact, col_exact)), ("densepose", (row_densepose, col_densepose))):
        labels = np.zeros((100, 100), dtype=np.uint8)
        uv = np.zeros((2, 100, 100), dtype=np.float32)
        labels[row - 20, col - 10] = 1
        uv[:, row - 20, col - 10] = 0.5
        pred = {"image_id": 1, "category_id": 1, "bbox": list(ann["bbox"]), "score": 0.9,
                "densepose": DensePoseResult(labels=labels, uv=uv, coarse=labels > 0)}
        right = evaluate(dataset([ann]), [pred], strip, dp_convention=convention)
        wrong = evaluate(dataset([ann]), [pred], strip,
                         dp_convention="densepose" if convention == "exact" else "exact")
        assert right["gps"]["AP"] == pytest.approx(100.0), convention
        assert wrong["gps"]["AP"] == pytest.approx(0.0), convention


def test_gt_mask_source_follows_the_convention(strip):
    """DensePose's evaluator takes the GT mask from dp_masks (resized to the box), ours from segmentation."""
    rng = np.random.default_rng(10)
    box = (40, 30, 100, 120)
    ann, pts = person(1, box, rng, n_points=20)
    ann["dp_masks"] = [rle(np.ones((256, 256), np.uint8))] + [[] for _ in range(13)]  # the whole box
    pred = prediction(ann, pts)
    labels = np.ones((120, 100), np.uint8)  # predicted foreground = the whole box
    labels[pts["r"] - 30, pts["c"] - 40] = pred["densepose"].labels[pts["r"] - 30, pts["c"] - 40]
    pred["densepose"] = DensePoseResult(labels=labels, uv=pred["densepose"].uv, coarse=labels > 0)
    box_metrics = evaluate(dataset([ann]), [pred], strip, dp_convention="densepose")
    exact_metrics = evaluate(dataset([ann]), [pred], strip, dp_convention="exact")
    assert box_metrics["segm"]["AP"] == pytest.approx(100.0)  # dp_masks = box = prediction
    ellipse_over_box = ann["area"] / (100 * 120)  # IoU against the ellipse segmentation
    assert 0.7 < ellipse_over_box < 0.75
    assert exact_metrics["segm"]["AP50"] == pytest.approx(100.0) and exact_metrics["segm"]["AP75"] == 0.0


def test_people_without_points_are_ignored_for_gps(strip, two_people):
    anns, points = two_people
    rng = np.random.default_rng(8)
    no_dp, _ = person(3, (160, 10, 60, 60), rng, dp=False)
    preds = [prediction(a, p) for a, p in zip(anns, points)]
    # The best-scoring detection sits on the person without DensePose points.
    preds.append(prediction(no_dp, {}, score=0.99))
    metrics = evaluate(dataset(anns + [no_dp]), preds, strip)
    assert metrics["gps"]["AP"] == pytest.approx(100.0)  # neither a TP nor a FP
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)  # a normal person for boxes
    # The same detection elsewhere (no overlap with anyone) is a false positive with the top score.
    stray = prediction(no_dp, {}, score=0.99)
    stray["bbox"] = [0.0, 200.0, 30.0, 30.0]
    stray["densepose"] = DensePoseResult(labels=np.ones((30, 30), np.uint8), uv=np.zeros((2, 30, 30), np.float32),
                                         coarse=np.ones((30, 30), bool))
    metrics = evaluate(dataset(anns), [prediction(a, p) for a, p in zip(anns, points)] + [stray], strip)
    assert metrics["gps"]["AP"] < 100.0


def test_densepose_second_pass_quirk_is_kept(strip):
    """DensePose's box pass runs at the last threshold only and then flags the detection at every
    threshold: a detection with GPS 0.90 (a true positive up to 0.90) whose box is the box of a
    person without points is ignored everywhere, GPS AP 0, where a plain evaluator gives 90."""
    rng = np.random.default_rng(11)
    k = 16  # GPS exp(-0.16^2 / (2 0.351^2)) = 0.901 on the torso chart
    a, pts = person(1, (30, 30, 120, 160), rng, n_points=30, columns=(0, HALF - k + 1))
    b, _ = person(2, (26, 26, 128, 168), rng, dp=False)  # box IoU with a: 0.89
    labels = np.zeros((168, 128), np.uint8)
    uv = np.zeros((2, 168, 128), np.float32)
    I, U, V = strip_iuv(pts["i"] + k, pts["j"])
    labels[pts["r"] - 26, pts["c"] - 26] = I
    uv[0, pts["r"] - 26, pts["c"] - 26], uv[1, pts["r"] - 26, pts["c"] - 26] = U, V
    pred = {"image_id": 1, "category_id": 1, "bbox": [26.0, 26.0, 128.0, 168.0], "score": 0.9,
            "densepose": DensePoseResult(labels=labels, uv=uv, coarse=labels > 0)}
    assert 0.90 < math.exp(-(k * SPACING) ** 2 / (2 * 0.351 ** 2)) < 0.95
    assert evaluate(dataset([a, b]), [pred], strip)["gps"]["AP"] == pytest.approx(0.0)
    # Without the person who has no points, the same detection is a true positive up to 0.90.
    assert evaluate(dataset([a]), [pred], strip)["gps"]["AP"] == pytest.approx(90.0)


def test_summary_matches_pycocotools_stats(two_people):
    """Our metric names read the same entries pycocotools' summarize() prints."""
    anns, _ = two_people
    import contextlib
    import io

    coco = COCO()
    coco.dataset = dataset([dict(a) for a in anns])
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        dt = coco.loadRes([{"image_id": 1, "category_id": 1, "bbox": [22.0, 33.0, 78.0, 96.0], "score": 0.8},
                           {"image_id": 1, "category_id": 1, "bbox": [140.0, 60.0, 110.0, 150.0], "score": 0.7}])
        E = COCOeval(coco, dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    ours = summarize_eval(E, max_det=100)
    stats = [None if s < 0 else s * 100 for s in E.stats]
    for key, index in (("AP", 0), ("AP50", 1), ("AP75", 2), ("APs", 3), ("APm", 4), ("APl", 5), ("AR", 8),
                       ("ARs", 9), ("ARm", 10), ("ARl", 11)):
        assert ours[key] == (pytest.approx(stats[index]) if stats[index] is not None else None), key


def test_table_and_errors(strip, two_people):
    anns, points = two_people
    metrics = evaluate(dataset(anns), [prediction(a, p) for a, p in zip(anns, points)], strip)
    lines = format_table(metrics).splitlines()
    assert lines[0].split() == ["task", "AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75"]
    assert [line.split()[0] for line in lines[1:]] == ["bbox", "segm", "gps", "gpsm"]
    assert lines[3].split()[1:] == ["100.00"] * 8
    assert "-" in format_table({"gps": {"AP": None}}).splitlines()[1]
    with pytest.raises(TrainUserError, match="charts.npz"):
        evaluate_predictions(dataset(anns), [], None)
    with pytest.raises(TrainUserError, match="convention"):
        evaluate_predictions(dataset(anns), [], strip, dp_convention="d2")
    with pytest.raises(TrainUserError, match="image_id"):
        evaluate_predictions(dataset(anns), [{"image_id": 7, "bbox": [0, 0, 1, 1], "score": 1.0}], strip)
