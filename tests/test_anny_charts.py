"""The 24 DensePose charts built on the real anny body, checked against anatomy and geometry.

Expectations come from the body itself (bone heads, the mesh's own symmetry, scipy's graph
components), not from the chart builder's internals.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "addon"))

from densesynth.bodies.anny_charts import build_anny_charts, chart_area_shares  # noqa: E402

# DensePose fine parts, and their mirror images under a horizontal flip.
TORSO_BACK, TORSO_FRONT, HAND_R, HAND_L, FOOT_L, FOOT_R = 1, 2, 3, 4, 5, 6
HEAD_R, HEAD_L = 23, 24
LEFT_PARTS = (4, 5, 8, 10, 12, 14, 15, 17, 19, 21, 24)
RIGHT_PARTS = (3, 6, 7, 9, 11, 13, 16, 18, 20, 22, 23)
FRONT_BACK = ((2, 1), (9, 7), (10, 8), (13, 11), (14, 12), (15, 17), (16, 18), (19, 21), (20, 22))
FLIP = np.array([0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23])
# Limb charts: (parts, proximal bone, distal bone)
LIMBS = (
    ((7, 9), "upperleg01.R", "lowerleg01.R"),
    ((8, 10), "upperleg01.L", "lowerleg01.L"),
    ((11, 13), "lowerleg01.R", "foot.R"),
    ((12, 14), "lowerleg01.L", "foot.L"),
    ((15, 17), "upperarm01.L", "lowerarm01.L"),
    ((16, 18), "upperarm01.R", "lowerarm01.R"),
    ((19, 21), "lowerarm01.L", "wrist.L"),
    ((20, 22), "lowerarm01.R", "wrist.R"),
    ((1, 2), "root", "neck01"),
)


@pytest.fixture(scope="module")
def body(anny_archive):
    from densesynth.bodies.body_model import AnnyBody

    model = AnnyBody.load(anny_archive)
    rest = model.rest({})
    heads = {label: rest.bone_heads[i] for i, label in enumerate(model.bone_labels)}
    return model, rest.vertices, heads, rest.bone_heads


@pytest.fixture(scope="module")
def built(body):
    model, vertices, _, bone_heads = body
    start = time.perf_counter()
    charts = build_anny_charts(
        vertices, model.faces, model.vertex_bone_indices, model.vertex_bone_weights,
        model.bone_labels, bone_heads,
    )
    return charts, time.perf_counter() - start


@pytest.fixture(scope="module")
def charts(built):
    return built[0]


@pytest.fixture(scope="module")
def geometry(body):
    model, vertices, _, _ = body
    tri = vertices[model.faces]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return tri.mean(axis=1), areas


def _centroid(geometry, mask):
    centroids, areas = geometry
    return np.average(centroids[mask], axis=0, weights=areas[mask])


def _shared_edges(faces: np.ndarray):
    """(face_a, corner_a0, corner_a1, face_b, corner_b0, corner_b1) for every edge of two faces,
    with the corners matched by vertex."""
    corners = np.array([[0, 1], [1, 2], [2, 0]])
    face_idx = np.repeat(np.arange(len(faces)), 3)
    corner_idx = np.tile(corners, (len(faces), 1))
    ends = faces[face_idx[:, None], corner_idx]
    swap = ends[:, 0] > ends[:, 1]
    corner_idx[swap] = corner_idx[swap][:, ::-1]
    ends = np.sort(ends, axis=1)
    order = np.lexsort((ends[:, 1], ends[:, 0]))
    ends, face_idx, corner_idx = ends[order], face_idx[order], corner_idx[order]
    pair = np.all(ends[1:] == ends[:-1], axis=1)
    first, second = np.flatnonzero(pair), np.flatnonzero(pair) + 1
    return face_idx[first], corner_idx[first], face_idx[second], corner_idx[second]


def test_shapes_and_every_face_labelled(body, charts):
    faces = body[0].faces
    assert charts.face_part.shape == (len(faces),)
    assert charts.corner_uv.shape == (len(faces), 3, 2)
    assert charts.corner_uv.dtype == np.float32
    assert charts.face_part.min() >= 1 and charts.face_part.max() <= 24
    assert set(np.unique(charts.face_part).tolist()) == set(range(1, 25))


def test_uv_in_unit_square_and_spread_out(charts):
    uv = charts.corner_uv
    assert np.all(np.isfinite(uv))
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    for part in range(1, 25):
        values = uv[charts.face_part == part].reshape(-1, 2)
        span = np.percentile(values, 98, axis=0) - np.percentile(values, 2, axis=0)
        assert np.all(span > 0.4), (part, span)  # each chart uses its square, not a corner of it


def test_deterministic(body, built):
    model, vertices, _, bone_heads = body
    charts, _ = built
    again = build_anny_charts(
        vertices, model.faces, model.vertex_bone_indices, model.vertex_bone_weights,
        model.bone_labels, bone_heads,
    )
    np.testing.assert_array_equal(again.face_part, charts.face_part)
    np.testing.assert_array_equal(again.corner_uv, charts.corner_uv)


def test_left_right_sides(charts, geometry):
    for part in LEFT_PARTS:
        assert _centroid(geometry, charts.face_part == part)[0] > 0.02, part
    for part in RIGHT_PARTS:
        assert _centroid(geometry, charts.face_part == part)[0] < -0.02, part
    for part in (TORSO_BACK, TORSO_FRONT):
        assert abs(_centroid(geometry, charts.face_part == part)[0]) < 0.01


def test_front_parts_in_front_of_back_parts(charts, geometry):
    # anny faces -Y: the front half of a segment has the smaller y.
    for front, back in FRONT_BACK:
        y_front = _centroid(geometry, charts.face_part == front)[1]
        y_back = _centroid(geometry, charts.face_part == back)[1]
        assert y_front < y_back - 0.02, (front, back, y_front, y_back)


def test_hands_feet_head_where_the_skeleton_says(body, charts, geometry):
    _, vertices, heads, _ = body
    centroids, _ = geometry
    for part, side in ((HAND_L, "L"), (HAND_R, "R")):
        wrist, elbow = heads[f"wrist.{side}"], heads[f"lowerarm01.{side}"]
        axis = (wrist - elbow) / np.linalg.norm(wrist - elbow)
        beyond = (centroids[charts.face_part == part] - wrist) @ axis
        assert np.mean(beyond > -0.02) > 0.97, part
        assert np.median(beyond) > 0.03, part
    for part, side in ((FOOT_L, "L"), (FOOT_R, "R")):
        ankle_z = heads[f"foot.{side}"][2]
        z = centroids[charts.face_part == part][:, 2]
        assert np.mean(z < ankle_z + 0.02) > 0.97, part
        assert np.median(z) < ankle_z - 0.03, part
    head = np.isin(charts.face_part, (HEAD_L, HEAD_R))
    assert np.mean(centroids[head][:, 2] > heads["neck01"][2] - 0.03) > 0.97
    assert centroids[~head][:, 2].max() < heads["head"][2]
    # Extremes of the body belong to the expected charts.
    faces = body[0].faces
    lowest, highest = np.argmin(vertices[:, 2]), np.argmax(vertices[:, 2])
    leftmost, rightmost = np.argmax(vertices[:, 0]), np.argmin(vertices[:, 0])
    for vertex, allowed in ((lowest, (FOOT_L, FOOT_R)), (highest, (HEAD_L, HEAD_R)),
                            (leftmost, (HAND_L,)), (rightmost, (HAND_R,))):
        touching = charts.face_part[np.any(faces == vertex, axis=1)]
        assert np.all(np.isin(touching, allowed)), (vertex, touching)


def _expected_parts(bone: str) -> tuple[int, ...]:
    """The charts a bone's skin belongs to, by the grouping DensePose's parts imply."""
    side = bone.rsplit(".", 1)[-1] if bone.endswith((".L", ".R")) else ""
    per_side = {
        "upper_arm": {"L": (15, 17), "R": (16, 18)}, "lower_arm": {"L": (19, 21), "R": (20, 22)},
        "hand": {"L": (4,), "R": (3,)}, "upper_leg": {"L": (8, 10), "R": (7, 9)},
        "lower_leg": {"L": (12, 14), "R": (11, 13)}, "foot": {"L": (5,), "R": (6,)},
    }
    for prefixes, group in (
        (("root", "pelvis", "spine", "clavicle"), "torso"), (("neck", "head", "eye"), "head"),
        (("shoulder", "upperarm"), "upper_arm"), (("lowerarm",), "lower_arm"),
        (("wrist", "finger", "metacarpal"), "hand"), (("upperleg",), "upper_leg"),
        (("lowerleg",), "lower_leg"), (("foot", "toe"), "foot"),
    ):
        if bone.startswith(prefixes):
            if group == "torso":
                return (TORSO_BACK, TORSO_FRONT)
            if group == "head":
                return (HEAD_L, HEAD_R)
            return per_side[group][side]
    raise AssertionError(bone)


def test_parts_follow_skinning(body, charts):
    # Skin driven mostly by one bone lies on that bone's charts.
    model = body[0]
    faces = model.faces
    rows = np.arange(len(model.vertex_bone_indices))
    dominant = model.vertex_bone_indices[rows, np.argmax(model.vertex_bone_weights, axis=1)]
    rigid = model.vertex_bone_weights.max(axis=1) > 0.6
    face_of_corner = np.repeat(np.arange(len(faces)), 3)
    vertex_of_corner = faces.ravel()
    keep = rigid[vertex_of_corner]
    corner_part = charts.face_part[face_of_corner[keep]]
    corner_bone = dominant[vertex_of_corner[keep]]
    for bone in np.unique(corner_bone):
        label = model.bone_labels[bone]
        on_bone = corner_bone == bone
        inside = np.isin(corner_part[on_bone], _expected_parts(label)).mean()
        assert inside > 0.9 or on_bone.sum() < 30, (label, inside, on_bone.sum())


def test_uv_continuous_within_charts(body, charts):
    faces = body[0].faces
    fa, ca, fb, cb = _shared_edges(faces)
    same_chart = charts.face_part[fa] == charts.face_part[fb]
    assert same_chart.mean() > 0.9
    fa, ca, fb, cb = fa[same_chart], ca[same_chart], fb[same_chart], cb[same_chart]
    uv = charts.corner_uv
    gap = np.maximum(
        np.abs(uv[fa, ca[:, 0]] - uv[fb, cb[:, 0]]).max(axis=1),
        np.abs(uv[fa, ca[:, 1]] - uv[fb, cb[:, 1]]).max(axis=1),
    )
    assert np.mean(gap < 1e-3) > 0.99
    # No wrap-around inside a face: corners of one face stay close in (U, V).
    spread = (uv.max(axis=1) - uv.min(axis=1)).max(axis=1)
    assert spread.max() < 0.5
    assert np.mean(spread < 0.25) > 0.98


def test_v_runs_along_limbs_and_up_the_head(body, charts):
    model, vertices, heads, _ = body
    faces = model.faces
    for parts, proximal, distal in LIMBS:
        axis = heads[distal] - heads[proximal]
        for part in parts:
            mask = charts.face_part == part
            along = (vertices[faces[mask]] - heads[proximal]) @ axis
            corr = np.corrcoef(along.ravel(), charts.corner_uv[mask][..., 1].ravel())[0, 1]
            assert corr > 0.95, (part, corr)
    for part in (HEAD_L, HEAD_R):
        mask = charts.face_part == part
        z = vertices[faces[mask]][..., 2].ravel()
        assert np.corrcoef(z, charts.corner_uv[mask][..., 1].ravel())[0, 1] > 0.95
        # U runs from the back of the head (+Y) to the face (-Y).
        y = vertices[faces[mask]][..., 1].ravel()
        assert np.corrcoef(-y, charts.corner_uv[mask][..., 0].ravel())[0, 1] > 0.8
    for part in (TORSO_FRONT, TORSO_BACK):
        # U runs from the person's right side to the left side (+X), front and back.
        mask = charts.face_part == part
        x = vertices[faces[mask]][..., 0].ravel()
        assert np.corrcoef(x, charts.corner_uv[mask][..., 0].ravel())[0, 1] > 0.8


def test_charts_are_coherent_regions(body, charts, geometry):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = body[0].faces
    _, areas = geometry
    fa, _, fb, _ = _shared_edges(faces)
    same = charts.face_part[fa] == charts.face_part[fb]
    graph = coo_matrix((np.ones(same.sum()), (fa[same], fb[same])), shape=(len(faces), len(faces)))
    _, component = connected_components(graph, directed=False)
    for part in range(1, 25):
        mask = charts.face_part == part
        per_component = np.bincount(component[mask], weights=areas[mask])
        assert per_component.max() / per_component.sum() > 0.9, part
        # no speckles: pieces beyond the main one are few
        assert np.count_nonzero(per_component) <= 3, part


def test_borders_without_teeth(body, charts):
    # A face with two of its three neighbours in one other chart is a speckle or a tooth
    # sticking out of a border; cleaned-up charts have (almost) none.
    faces = body[0].faces
    fa, _, fb, _ = _shared_edges(faces)
    part = charts.face_part
    src, dst = np.concatenate([fa, fb]), np.concatenate([fb, fa])
    other = part[src] != part[dst]
    counts = np.bincount(src[other] * 25 + part[dst[other]], minlength=len(faces) * 25)
    teeth = np.count_nonzero(counts.reshape(len(faces), 25).max(axis=1) >= 2)
    assert teeth <= 0.001 * len(faces), teeth


def test_mirror_symmetry_follows_the_flip_table(body, charts):
    from scipy.spatial import cKDTree

    model, vertices, _, _ = body
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance, mirror_of = cKDTree(vertices).query(mirrored)
    if np.percentile(distance, 99) > 1e-4:
        pytest.skip("this anny mesh is not mirror-symmetric")
    faces = model.faces
    key = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    mirror_face = np.array([key.get(tuple(sorted(mirror_of[f])), -1) for f in faces])
    matched = mirror_face >= 0
    assert matched.mean() > 0.99
    agree = FLIP[charts.face_part[matched]] == charts.face_part[mirror_face[matched]]
    assert agree.mean() > 0.995
    # (U, V) mirror too: the same on the twin chart, except the torso, whose U runs from
    # the person's right to left on both of its charts, so it mirrors to 1 - U.
    both = np.flatnonzero(matched)[agree]
    twin = mirror_face[both]
    corner_of = np.argmax(faces[twin][:, None, :] == mirror_of[faces[both]][:, :, None], axis=2)
    uv = charts.corner_uv[both]
    twin_uv = np.take_along_axis(charts.corner_uv[twin], corner_of[..., None], axis=1)
    torso = np.isin(charts.face_part[both], (TORSO_BACK, TORSO_FRONT))
    twin_uv[torso, :, 0] = 1.0 - twin_uv[torso, :, 0]
    assert np.mean(np.abs(uv - twin_uv).max(axis=(1, 2)) < 1e-3) > 0.99


def test_area_shares_plausible(body, charts):
    _, vertices, _, _ = body
    shares = chart_area_shares(vertices, body[0].faces, charts.face_part)
    assert shares.shape == (24,)
    assert abs(shares.sum() - 1.0) < 1e-9
    assert np.all(shares > 0.005) and np.all(shares < 0.2)
    torso = shares[TORSO_BACK - 1] + shares[TORSO_FRONT - 1]
    pairs = [shares[a - 1] + shares[b - 1] for a, b in FRONT_BACK[1:]]
    pairs += [shares[HEAD_L - 1] + shares[HEAD_R - 1], shares[HAND_L - 1], shares[FOOT_L - 1]]
    assert torso > max(pairs)
    assert 0.15 < torso < 0.4
    for left, right in ((4, 3), (5, 6), (8, 7), (10, 9), (12, 11), (14, 13), (15, 16), (17, 18),
                        (19, 20), (21, 22), (24, 23)):
        assert abs(shares[left - 1] - shares[right - 1]) < 0.2 * shares[left - 1], (left, right)
