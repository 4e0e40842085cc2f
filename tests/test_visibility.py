"""Keypoint visibility on analytic scenes (boxes and a sphere) with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from densesynth.annotate.visibility import first_hits, keypoint_visibility

W, H = 200, 160
K = np.array([[300.0, 0.0, 99.5], [0.0, 300.0, 79.5], [0.0, 0.0, 1.0]])
TORSO, ARM_R, HEAD_R, HEAD_L, HAND_R = {1, 2}, {16, 18}, 23, 24, 3


def box(center, size):
    """8 vertices, 12 outward triangles of an axis-aligned box."""
    c, s = np.asarray(center, float), np.asarray(size, float) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    faces = np.array([
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x-, x+
        [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y-, y+
        [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z-, z+
    ])
    return c + corners * s, faces


def sphere(center, radius, n_lat=24, n_lon=48):
    """UV sphere around the y axis; returns vertices, faces."""
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack([np.sin(lat)[:, None] * np.cos(lon), np.repeat(np.cos(lat)[:, None], n_lon, 1),
                     np.sin(lat)[:, None] * np.sin(lon)], axis=-1).reshape(-1, 3)
    verts = np.vstack([[0, 1, 0], ring, [0, -1, 0]]) * radius + center
    faces = []
    idx = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, idx(0, j + 1), idx(0, j)])
        faces.append([len(verts) - 1, idx(n_lat - 2, j), idx(n_lat - 2, j + 1)])
        for i in range(n_lat - 2):
            faces.append([idx(i, j), idx(i, j + 1), idx(i + 1, j + 1)])
            faces.append([idx(i, j), idx(i + 1, j + 1), idx(i + 1, j)])
    return verts, np.array(faces)


def merge(*parts):
    """[(vertices, faces, part label)] -> one mesh with per-face parts."""
    verts, faces, labels, offset = [], [], [], 0
    for v, f, label in parts:
        verts.append(v)
        faces.append(f + offset)
        if np.ndim(label) == 0:
            label = np.full(len(f), label)
        labels.append(label)
        offset += len(v)
    return np.vstack(verts), np.vstack(faces), np.concatenate(labels)


def camera_looking_at_origin(from_front: bool, distance: float = 5.0) -> np.ndarray:
    """OpenCV world_to_camera: at z = -d looking +z (front) or at z = +d looking -z (back)."""
    T = np.eye(4)
    if from_front:
        T[:3, 3] = [0, 0, distance]
    else:
        T[:3, :3] = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about y, still right-handed
        T[:3, 3] = [0, 0, distance]
    return T


def run(kps, mesh, T, parts, surface, occlusion=None):
    v, f, fp = mesh
    return keypoint_visibility(np.asarray(kps, float), v, f, fp, K, T, (W, H), parts,
                               np.asarray(surface, bool), occlusion)


@pytest.fixture
def torso_and_arm():
    """A torso box and a thin arm box 0.2 m behind it (at +z; the front camera is at -z)."""
    torso = box([0, 0, 0], [0.4, 0.6, 0.2])
    arm = box([0.05, 0.0, 0.25], [0.06, 0.4, 0.06])
    return merge((*torso, 2), (*arm, 16))


def test_arm_behind_torso_hidden_from_front_visible_from_back(torso_and_arm):
    elbow = [[0.05, 0.0, 0.25]]
    _, vis_front = run(elbow, torso_and_arm, camera_looking_at_origin(True), [ARM_R], [False])
    _, vis_back = run(elbow, torso_and_arm, camera_looking_at_origin(False), [ARM_R], [False])
    assert vis_front.tolist() == [1]
    assert vis_back.tolist() == [2]


def test_joint_inside_its_own_part_is_visible(torso_and_arm):
    """A shoulder inside the torso, seen from the front, is at 0.1 m below the torso skin."""
    shoulder = [[0.15, -0.2, 0.0]]
    _, vis = run(shoulder, torso_and_arm, camera_looking_at_origin(True), [TORSO | ARM_R], [False])
    assert vis.tolist() == [2]
    # The same joint with parts that exclude the torso: the torso skin covers it.
    _, vis = run(shoulder, torso_and_arm, camera_looking_at_origin(True), [ARM_R], [False])
    assert vis.tolist() == [1]


def test_projection_matches_cv2(torso_and_arm):
    T = camera_looking_at_origin(False)
    T[:3, 3] = [0.1, -0.05, 4.0]
    pts = np.array([[0.05, 0.0, 0.25], [-0.3, 0.2, 0.1], [0.2, -0.4, -0.5]])
    xy, _ = run(pts, torso_and_arm, T, [ARM_R] * 3, [False] * 3)
    rvec, _ = cv2.Rodrigues(T[:3, :3])
    ref, _ = cv2.projectPoints(pts, rvec, T[:3, 3], K, None)
    np.testing.assert_allclose(xy, ref.reshape(-1, 2), atol=1e-9)


def test_outside_image_and_behind_camera_are_zero(torso_and_arm):
    T = camera_looking_at_origin(True)
    # x = 99.5 + 300 * 1.7 / 5 = 201.5 > W - 0.5; one behind the camera; one just inside.
    pts = [[1.7, 0.0, 0.0], [0.0, 0.0, -6.0], [1.65, 0.0, 0.0]]
    xy, vis = run(pts, torso_and_arm, T, [ARM_R] * 3, [False] * 3)
    assert vis.tolist() == [0, 0, 2]
    assert np.isnan(xy[1]).all()
    assert xy[2, 0] == pytest.approx(99.5 + 300 * 1.65 / 5)


@pytest.fixture
def head():
    v, f = sphere(np.zeros(3), 0.1)
    centroid_x = v[f].mean(axis=1)[:, 0]
    return merge((v, f, np.where(centroid_x < 0, HEAD_R, HEAD_L)))


def test_surface_keypoint_near_and_far_side_of_head(head):
    near, far = [0.0, 0.0, -0.1], [0.0, 0.0, 0.1]
    ear_side = [0.1 * np.cos(0.3), 0.0, -0.1 * np.sin(0.3)]  # slightly towards the camera
    _, vis = run([near, far, ear_side], head, camera_looking_at_origin(True),
                 [{HEAD_R, HEAD_L}] * 3, [True] * 3)
    assert vis.tolist() == [2, 1, 2]
    _, vis = run([near, far], head, camera_looking_at_origin(False),
                 [{HEAD_R, HEAD_L}] * 2, [True] * 2)
    assert vis.tolist() == [1, 2]


def test_hand_just_in_front_of_nose_hides_it(head):
    hand = box([0, 0, -0.12], [0.05, 0.05, 0.01])  # 1.5 cm in front of the nose
    mesh = merge(head, (*hand, HAND_R))
    nose = [[0.0, 0.0, -0.1]]
    _, vis = run(nose, mesh, camera_looking_at_origin(True), [{HEAD_R, HEAD_L}], [True])
    assert vis.tolist() == [1]
    # The same hand counted as head (a hat, say) does not hide it: the part rule matters.
    mesh_hat = merge(head, (*hand, HEAD_R))
    _, vis = run(nose, mesh_hat, camera_looking_at_origin(True), [{HEAD_R, HEAD_L}], [True])
    assert vis.tolist() == [2]


def test_occlusion_mask_hides_keypoint(head):
    nose = [[0.0, 0.0, -0.1], [0.0, -0.05, -0.08]]
    T = camera_looking_at_origin(True)
    xy, vis = run(nose, head, T, [{HEAD_R, HEAD_L}] * 2, [True] * 2)
    assert vis.tolist() == [2, 2]
    occ = np.zeros((H, W), bool)
    col, row = np.floor(xy[0] + 0.5).astype(int)
    occ[row, col] = True
    _, vis = run(nose, head, T, [{HEAD_R, HEAD_L}] * 2, [True] * 2, occlusion=occ)
    assert vis.tolist() == [1, 2]


def test_first_hits_distances_on_a_box():
    v, f = box([0, 0, 0], [2, 2, 2])
    origin = np.array([0.0, 0.0, -5.0])
    d = np.array([[0, 0, 1.0], [0, 1, 0.0], [0.1, 0.05, 1.0]])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    dist, face = first_hits(origin, d, v, f)
    assert dist[0] == pytest.approx(4.0)
    assert face[1] == -1 and np.isinf(dist[1])
    assert dist[2] == pytest.approx(4.0 / d[2, 2])
