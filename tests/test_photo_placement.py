"""The synthetic person stands on the ground a COCO photograph's people show (issue 13, acceptance 2).

The photograph is synthetic with a known camera (focal length, height, pitch) and known people
(heights, ground positions), projected here with an explicit pinhole model; its COCO file holds
only their boxes. For drawn samples, the render camera (`camera_from_spec`) must show the posed
synthetic person with its feet on the photograph's true ground (the ground row under its feet and
the horizon match the true camera's, in the cropped frame), and as tall in pixels as the
photograph's people are at that row.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from densesynth.bodies.kinds import load_bodies
from densesynth.config import config_hash, load_config
from densesynth.scene.camera import camera_from_spec, fit_camera
from densesynth.scene.person import pose_person
from densesynth.spec.sample_spec import draw_spec

PHOTO_W, PHOTO_H = 640, 480
FOCAL, CAMERA_HEIGHT, PITCH = 560.0, 1.45, np.deg2rad(4.0)  # pitch > 0: looking down
HEIGHTS = (1.62, 1.66, 1.70, 1.72, 1.75, 1.78, 1.82, 1.86)


def rotation() -> np.ndarray:
    """World (x right, y forward, z up) to camera (x right, y down, z forward), pitched down."""
    c, s = np.cos(PITCH), np.sin(PITCH)
    forward, up = np.array([0.0, c, -s]), np.array([0.0, s, c])
    return np.stack([np.array([1.0, 0.0, 0.0]), -up, forward])


def project(points: np.ndarray) -> np.ndarray:
    """Pixel (col, row) of world points seen by the photograph's camera at (0, 0, CAMERA_HEIGHT)."""
    cam = (np.asarray(points, float) - [0.0, 0.0, CAMERA_HEIGHT]) @ rotation().T
    return np.column_stack([FOCAL * cam[:, 0] / cam[:, 2] + (PHOTO_W - 1) / 2,
                            FOCAL * cam[:, 1] / cam[:, 2] + (PHOTO_H - 1) / 2])


def photo_people() -> list[tuple[float, float, float]]:
    """(foot row, head row, height) of each person of the photograph."""
    rng = np.random.default_rng(5)
    people = []
    for height in HEIGHTS:
        ground = np.array([rng.uniform(-3, 3), rng.uniform(5, 14), 0.0])
        foot, head = project(np.stack([ground, ground + [0.0, 0.0, height]]))
        people.append((foot[0], foot[1], head[1], height))
    return people


def true_horizon_row() -> float:
    return (PHOTO_H - 1) / 2 - FOCAL * np.tan(PITCH)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("placement")
    (folder / "photos").mkdir()
    cv2.imwrite(str(folder / "photos" / "street.png"), np.full((PHOTO_H, PHOTO_W, 3), 100, np.uint8))
    annotations = []
    for number, (col, foot, head, _) in enumerate(photo_people()):
        h = foot - head
        annotations.append({"id": number + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "bbox": [col - 0.18 * h, head, 0.36 * h, h], "area": 0.36 * h * h})
    coco = {"images": [{"id": 1, "file_name": "street.png", "width": PHOTO_W, "height": PHOTO_H}],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    (folder / "coco.json").write_text(json.dumps(coco))
    path = folder / "c.yaml"
    path.write_text(f"render:\n  resolution: [320, 240]\nmotion:\n  clips: [idle]\n"
                    f"body:\n  phenotype:\n    height: [0.38, 0.45]\n    age: [0.7, 0.9]\n"
                    f"backdrop:\n  kind: coco\n  coco_annotations: {folder / 'coco.json'}\n"
                    f"  coco_images: {folder / 'photos'}\n  coco_people: with\n")
    return load_config(path)


def crop_rows(photo: dict) -> tuple[float, float]:
    """(scale, offset) of rows from the photograph to the rendered frame (photo_backdrop's formula)."""
    scale = max(320 / PHOTO_W, 240 / PHOTO_H) * photo["zoom"]
    rh = max(240, round(PHOTO_H * scale))
    return rh / PHOTO_H, round(photo["centre"][1] * (rh - 240))


def people_heights_at(row_photo: float) -> tuple[float, float]:
    """(shortest, tallest) pixel height, in the photograph, of its people standing at that foot row."""
    # The ground point seen at row_photo on the optical plane, then a person of each height there.
    v = (row_photo - (PHOTO_H - 1) / 2) / FOCAL
    ray = rotation().T @ np.array([0.0, v, 1.0])
    ground = np.array([0.0, 0.0, CAMERA_HEIGHT]) + ray * (CAMERA_HEIGHT / -ray[2])
    heights = [project(np.stack([ground, ground + [0.0, 0.0, h]]))[:, 1] for h in (min(HEIGHTS), max(HEIGHTS))]
    return heights[0][0] - heights[0][1], heights[1][0] - heights[1][1]


def test_the_person_stands_on_the_photographs_ground_at_its_peoples_scale(config):
    bodies = load_bodies(config["body"])
    checked = 0
    for index in range(8):
        posed = {}

        def fit(spec):
            posed["v"] = pose_person(spec["persons"][0], bodies).vertices
            return fit_camera(posed["v"], spec["camera"], 320, 240)

        spec = draw_spec(config, config_hash(config), 3, index, fit)
        placement = spec["camera"]["placement"]
        assert placement["rule"] == "photo_people" and placement["people"] >= 6
        camera = camera_from_spec(spec)
        scale, offset = crop_rows(spec["backdrop"]["photo"])
        # The horizon of the render camera: a far point on the ground straight ahead.
        eye, target = np.array(spec["camera"]["fitted"]["eye"]), np.array(spec["camera"]["fitted"]["target"])
        ahead = (target - eye) * [1, 1, 0]
        far = eye * [1, 1, 0] + ahead / np.linalg.norm(ahead) * 1e5
        horizon = camera.project(far[None])[0][0, 1]
        assert abs(horizon - placement["horizon_row"]) < 0.5  # the render camera has the recovered horizon
        # ... and that is the photograph's (eight people of heights 1.62..1.86 m: a few pixels of error)
        assert abs(horizon - (true_horizon_row() * scale - offset)) < 3.0
        assert abs(eye[2] - CAMERA_HEIGHT) < 0.05 * CAMERA_HEIGHT  # the photograph's camera height
        # The feet on the ground: the ground under them is seen at the foot row.
        vertices = posed["v"]
        uv, depth = camera.project(vertices)
        assert (depth > 0).all() and abs(vertices[:, 2].min()) < 0.02  # standing on z = 0
        low = vertices[:, 2] < vertices[:, 2].min() + 0.03
        feet_ground = np.array([*vertices[low, :2].mean(axis=0), 0.0])
        foot_row = camera.project(feet_ground[None])[0][0, 1]
        assert abs(foot_row - placement["foot_row"]) < 0.5
        # ... which is the photograph's ground there: the true camera sees that row at the same distance.
        row_photo = (foot_row + offset) / scale
        shortest, tallest = people_heights_at(row_photo)
        pixel_height = uv[:, 1].max() - uv[:, 1].min()
        assert shortest * scale * 0.97 <= pixel_height <= tallest * scale * 1.03, (pixel_height, shortest, tallest)
        checked += 1
    assert checked == 8


def test_without_annotated_people_the_rule_is_ranges(config, tmp_path):
    coco = json.loads(open(config["backdrop"]["coco_annotations"]).read())
    coco["annotations"] = coco["annotations"][:1]  # one person: no ground without a prior
    path = tmp_path / "one.json"
    path.write_text(json.dumps(coco))
    one = {**config, "backdrop": {**config["backdrop"], "coco_annotations": str(path)}}
    bodies = load_bodies(one["body"])
    spec = draw_spec(one, config_hash(one), 3, 0,
                     lambda s: fit_camera(pose_person(s["persons"][0], bodies).vertices, s["camera"], 320, 240))
    assert spec["camera"]["placement"] == {"rule": "ranges"} and "roll_deg" not in spec["camera"]["fitted"]
