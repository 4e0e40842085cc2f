"""Ground, horizon and scale from a photograph's people (`scene/photo_ground.py`).

Expectations are independent of the module: the photograph's people are made by an explicit
3D pinhole projection written here (a camera at height c over the ground z = 0, pitched down,
looking along +Y), never by the module's h = a (y_f - y_h) relation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from densesynth.scene.photo_ground import (
    GroundFit,
    PhotoPerson,
    classify_coco_person,
    fit_ground,
    foot_row_for_distance,
    people_from_coco,
    place_person,
    plausible_foot_rows,
)

WIDTH, HEIGHT = 1280, 960


@dataclass(frozen=True)
class TrueCamera:
    """World: Z up, ground z = 0. Camera at (0, 0, c), looking along +Y, pitched down by `pitch_deg`."""

    focal_px: float
    height_m: float
    pitch_deg: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def rotation(self) -> np.ndarray:
        """World to OpenCV camera axes (rows: x right, y down, z forward)."""
        t = math.radians(self.pitch_deg)
        forward = np.array([0.0, math.cos(t), -math.sin(t)])
        right = np.array([1.0, 0.0, 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points to (N, 2) pixels (col, row), principal point at the image centre."""
        cam = (np.asarray(points, float) - np.array([0.0, 0.0, self.height_m])) @ self.rotation.T
        assert np.all(cam[:, 2] > 0), "point behind the camera"
        uv = self.focal_px * cam[:, :2] / cam[:, 2:3]
        return uv + np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])

    def ground_at_row(self, row: float) -> float:
        """Forward distance (Y) where the ray through the centre column at `row` meets z = 0."""
        ray = self.rotation.T @ np.array([0.0, (row - (self.height - 1) / 2.0) / self.focal_px, 1.0])
        assert ray[2] < 0, "row at or above the horizon"
        return float(self.height_m / -ray[2] * ray[1])

    @property
    def horizon_row(self) -> float:
        """Row of a point far away on the ground: the vanishing line of the ground plane."""
        return float(self.project(np.array([[0.0, 1e9, 0.0]]))[0, 1])


def project_person(camera: TrueCamera, x: float, y: float, stature: float) -> tuple[float, float, float, float]:
    """(foot row, head row, foot col, head col) of a straight person of `stature` standing at (x, y)."""
    (fc, fr), (hc, hr) = camera.project(np.array([[x, y, 0.0], [x, y, stature]]))
    return fr, hr, fc, hc


def make_people(camera: TrueCamera, statures, seed: int = 0, pixel_noise: float = 0.5, far_m: float = 50.0,
                distances=None):
    """PhotoPersons (with annotation noise) standing at random ground points 6..far_m metres
    ahead (or at the given forward `distances`), inside the frame; and those ground points."""
    rng = np.random.default_rng(seed)
    people, spots = [], []
    for k, stature in enumerate(statures):
        y = rng.uniform(6.0, far_m) if distances is None else distances[k]
        x = rng.uniform(-0.35, 0.35) * y * (camera.width / 2) / camera.focal_px
        foot_row, head_row, _, _ = project_person(camera, x, y, stature)
        assert 0 < head_row < foot_row < camera.height - 1
        foot_row += rng.normal(0, pixel_noise)
        head_row += rng.normal(0, pixel_noise)
        people.append(PhotoPerson(foot_row=foot_row, pixel_height=foot_row - head_row))
        spots.append((x, y))
    return people, spots


def normal_statures(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.70, 0.07, n)


# Eye-level photographs (level, tilted down, tilted up) and one from a first-floor window.
CAMERAS = [
    TrueCamera(focal_px=1000.0, height_m=1.6, pitch_deg=0.0),
    TrueCamera(focal_px=1000.0, height_m=1.6, pitch_deg=3.0),
    TrueCamera(focal_px=800.0, height_m=1.2, pitch_deg=-2.0),
    TrueCamera(focal_px=1400.0, height_m=3.0, pitch_deg=8.0),
]
EYE_LEVEL = CAMERAS[:3]
CROWD = 30  # annotated people in the photograph


def fit_for(camera: TrueCamera, people, **kwargs) -> GroundFit | None:
    return fit_ground(people, camera.focal_px, image_height=camera.height, **kwargs)


# ---------------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("camera", CAMERAS, ids=lambda c: f"f{c.focal_px:.0f}-c{c.height_m}-p{c.pitch_deg}")
def test_fit_is_exact_for_people_of_one_height(camera):
    """No height spread, no annotation noise: the model is exact at any pitch, so the camera
    comes back to a hundredth of a pixel (this is what the levelled refinement buys)."""
    people, _ = make_people(camera, [1.70] * 8, seed=2, pixel_noise=0.0)
    fit = fit_for(camera, people)
    assert fit is not None and fit.method == "ransac"
    assert abs(fit.horizon_row - camera.horizon_row) < 0.01
    assert fit.camera_height_m == pytest.approx(camera.height_m, rel=1e-4)
    assert fit.pitch_deg == pytest.approx(camera.pitch_deg, abs=1e-4)
    assert fit.height_mean_m == pytest.approx(1.70, abs=1e-4) and fit.height_sd_m < 1e-4


@pytest.mark.parametrize("camera", EYE_LEVEL, ids=lambda c: f"f{c.focal_px:.0f}-c{c.height_m}-p{c.pitch_deg}")
def test_fit_recovers_horizon_and_camera_height(camera):
    statures = normal_statures(CROWD)
    people, _ = make_people(camera, statures)
    fit = fit_for(camera, people)
    assert fit is not None and fit.method == "ransac"
    assert abs(fit.horizon_row - camera.horizon_row) < 2.0
    assert abs(fit.camera_height_m - camera.height_m) / camera.height_m < 0.05
    assert abs(fit.pitch_deg - camera.pitch_deg) < 0.15
    assert fit.n_inliers == len(people)
    assert abs(fit.height_mean_m - 1.70) < 0.02
    assert abs(fit.height_sd_m - statures.std(ddof=1)) < 0.03


def test_recovery_holds_over_many_photographs():
    """Not one lucky seed: people's 4% height spread is the noise the horizon is measured
    through, so over 40 photographs of 30 people most, not all, are within 2 px and 5%."""
    camera = CAMERAS[1]
    horizon_errors, height_errors = [], []
    for seed in range(40):
        people, _ = make_people(camera, normal_statures(CROWD, seed=100 + seed), seed=200 + seed)
        fit = fit_for(camera, people)
        assert fit is not None
        horizon_errors.append(abs(fit.horizon_row - camera.horizon_row))
        height_errors.append(abs(fit.camera_height_m / camera.height_m - 1))
    horizon_errors, height_errors = np.array(horizon_errors), np.array(height_errors)
    assert np.median(horizon_errors) < 1.0
    assert np.mean((horizon_errors < 2.0) & (height_errors < 0.05)) >= 0.85
    assert horizon_errors.max() < 5.0 and height_errors.max() < 0.10


def add_outlier(camera: TrueCamera, people: list[PhotoPerson], kind: str, at: int = 2) -> None:
    if kind == "child":
        foot_row, head_row, _, _ = project_person(camera, 1.0, 7.0, 1.10)
    else:  # seated on a bench: feet on the ground, head 1.25 m up
        foot_row, head_row, _, _ = project_person(camera, -1.0, 8.0, 1.25)
    people.insert(at, PhotoPerson(foot_row=foot_row, pixel_height=foot_row - head_row))


GROUP_DISTANCES = [6.0, 9.0, 13.0, 19.0, 28.0, 40.0]  # a small group, spread along the street


@pytest.mark.parametrize("outlier", ["child", "sitting"])
@pytest.mark.parametrize("count", [len(GROUP_DISTANCES), CROWD])
def test_ransac_ignores_one_outlier(outlier, count):
    camera = CAMERAS[1]
    distances = GROUP_DISTANCES if count == len(GROUP_DISTANCES) else None
    people, _ = make_people(camera, normal_statures(count, seed=3), seed=4, distances=distances)
    clean = fit_for(camera, people)
    add_outlier(camera, people, outlier)
    fit = fit_for(camera, people)
    assert fit is not None
    assert fit.inliers[2] is False and fit.n_inliers == len(people) - 1
    assert fit.horizon_row == pytest.approx(clean.horizon_row, abs=1e-6)
    assert abs(fit.horizon_row - camera.horizon_row) < 2.0
    assert abs(fit.camera_height_m - camera.height_m) / camera.height_m < 0.05


def test_without_robustness_the_outlier_would_bias():
    """Guard that the outlier test is not trivial: a plain least-squares line is pulled off."""
    camera = CAMERAS[1]
    people, _ = make_people(camera, normal_statures(6, seed=3), seed=4, distances=GROUP_DISTANCES)
    add_outlier(camera, people, "child")
    yf = np.array([p.foot_row for p in people])
    h = np.array([p.pixel_height for p in people])
    a, b = np.polyfit(yf, h, 1)
    assert abs(-b / a - camera.horizon_row) > 2.0  # the tolerance the robust fit meets


def test_two_people_are_enough_without_noise():
    camera = CAMERAS[1]
    people, _ = make_people(camera, [1.70, 1.70], seed=5, pixel_noise=0.0)
    fit = fit_for(camera, people)
    assert fit is not None
    assert abs(fit.horizon_row - camera.horizon_row) < 0.01
    assert fit.camera_height_m == pytest.approx(camera.height_m, rel=1e-4)


def test_one_person_needs_a_camera_height_prior():
    camera = CAMERAS[1]
    people, _ = make_people(camera, [1.70], seed=6, pixel_noise=0.0)
    assert fit_for(camera, people) is None
    fit = fit_for(camera, people, camera_height_prior=(1.6, 0.2))
    assert fit is not None and fit.method == "camera_height_prior"
    assert fit.camera_height_m == pytest.approx(1.6)
    assert abs(fit.horizon_row - camera.horizon_row) < 0.01
    # A wrong prior moves the horizon (the one person's height is all there is to go on).
    wrong = fit_for(camera, people, camera_height_prior=2.0)
    assert wrong.camera_height_m == pytest.approx(2.0) and wrong.horizon_row < camera.horizon_row - 5


# ------------------------------------------------------------------------------- degenerate


def test_degenerate_inputs_give_none():
    camera = CAMERAS[0]
    f = camera.focal_px
    assert fit_ground([], f, image_height=HEIGHT) is None
    # Everyone on one row: horizon and scale cannot be separated.
    same_row = [PhotoPerson(600.0, 100.0), PhotoPerson(600.0, 110.0), PhotoPerson(600.5, 105.0)]
    assert fit_ground(same_row, f, image_height=HEIGHT) is None
    # People shrinking toward the bottom of the image: no ground above them.
    inverted = [PhotoPerson(500.0 + 40 * k, 300.0 - 40 * k) for k in range(5)]
    assert fit_ground(inverted, f, image_height=HEIGHT) is None
    # A camera 34 m up (slope 0.05) and one 17 cm up (slope 10): outside 0.3..10 m.
    high = [PhotoPerson(500.0 + 50 * k, 0.05 * (50 + 50 * k) + 30) for k in range(5)]
    low = [PhotoPerson(500.0 + 10 * k, 10.0 * (10 + 10 * k)) for k in range(5)]
    for people in (high, low):
        assert fit_ground(people, f, image_height=HEIGHT, inlier_tolerance=0.5) is None
    # Only people who are not fully visible: nothing to calibrate with.
    good, _ = make_people(camera, normal_statures(6), seed=7)
    hidden = [PhotoPerson(p.foot_row, p.pixel_height, fully_visible=False) for p in good]
    assert fit_ground(hidden, f, image_height=HEIGHT) is None
    assert fit_ground(good, f, image_height=HEIGHT) is not None
    # No agreement: heights all over the place leave too few inliers.
    rng = np.random.default_rng(8)
    chaos = [PhotoPerson(float(r), float(h)) for r, h in zip(rng.uniform(500, 900, 8), rng.uniform(40, 400, 8))]
    assert fit_ground(chaos, f, image_height=HEIGHT) is None


def test_the_fit_never_depends_on_a_random_draw():
    camera = CAMERAS[2]
    people, _ = make_people(camera, normal_statures(12), seed=9)
    assert fit_for(camera, people) == fit_for(camera, people)


# -------------------------------------------------------------------------------- placement

# Photo people spanning about +-2.3 sd of N(1.70, 0.07), mean exactly 1.70: a 1.80 m person
# is inside their range, so the acceptance check is about the geometry, not about luck.
from statistics import NormalDist  # noqa: E402

QUANTILE_STATURES = np.array([1.70 + 0.07 * NormalDist().inv_cdf(q) for q in np.linspace(0.01, 0.99, CROWD)])


def recovered_camera(fit: GroundFit) -> TrueCamera:
    """The fit's camera, as this test's own 3D pinhole."""
    return TrueCamera(focal_px=fit.focal_px, height_m=fit.camera_height_m, pitch_deg=fit.pitch_deg)


@pytest.mark.parametrize("camera", CAMERAS, ids=lambda c: f"c{c.height_m}-p{c.pitch_deg}")
def test_synthetic_person_stands_on_the_recovered_ground(camera):
    """Acceptance: the synthetic person's feet stand on the recovered ground, and their height
    in pixels is within the range of the photograph's people at the same image row."""
    people, _ = make_people(camera, QUANTILE_STATURES, seed=10)
    fit = fit_for(camera, people)
    assert fit is not None
    lo_row, hi_row = min(p.foot_row for p in people), max(p.foot_row for p in people)
    margin = max(0.1 * (hi_row - lo_row), 0.02 * HEIGHT)
    lo, hi = plausible_foot_rows(fit, HEIGHT)
    assert lo_row - margin - 1e-6 <= lo < hi <= min(hi_row + margin, HEIGHT - 1) + 1e-6
    for seed in range(25):
        row = float(np.random.default_rng(seed).uniform(lo, hi))
        distance, pixel_height = place_person(fit, row, 1.80)
        # A 3D person at that distance, off to the side, feet on the ground plane z = 0:
        # under the recovered camera its feet are on the drawn row and its height is the
        # placement's; under the true camera it is where the photograph's ground is.
        x = 0.1 * distance * (1 if seed % 2 else -1)
        foot, head, _, _ = project_person(recovered_camera(fit), x, distance, 1.80)
        assert foot == pytest.approx(row, abs=1e-3)
        assert foot - head == pytest.approx(pixel_height, abs=1e-3)
        true_foot, true_head, _, _ = project_person(camera, x, distance, 1.80)
        assert abs(true_foot - row) < 2.0 + 0.03 * (row - camera.horizon_row)
        # The photograph's shortest and tallest people, standing on the ground at that row
        # (found with the true camera): the synthetic person's pixel height lies between.
        spot = camera.ground_at_row(row)
        f_lo, h_lo, _, _ = project_person(camera, 0.0, spot, QUANTILE_STATURES.min())
        f_hi, h_hi, _, _ = project_person(camera, 0.0, spot, QUANTILE_STATURES.max())
        assert f_lo == pytest.approx(row, abs=1e-6)
        assert f_lo - h_lo < pixel_height < f_hi - h_hi


def test_foot_row_for_distance_inverts_place_person():
    camera = CAMERAS[2]
    people, _ = make_people(camera, normal_statures(10), seed=11)
    fit = fit_for(camera, people)
    for distance in (2.0, 5.0, 13.0, 40.0):
        row = foot_row_for_distance(fit, distance)
        assert place_person(fit, row, 1.7)[0] == pytest.approx(distance, rel=1e-9)
    # Nearer is lower in the image; nothing stands on or above the horizon.
    assert foot_row_for_distance(fit, 3.0) > foot_row_for_distance(fit, 30.0) > fit.horizon_row
    with pytest.raises(ValueError):
        place_person(fit, fit.horizon_row - 5.0, 1.7)


def test_plausible_rows_lie_between_horizon_and_bottom():
    camera = CAMERAS[1]
    people, _ = make_people(camera, QUANTILE_STATURES, seed=12)
    fit = fit_for(camera, people)
    lo, hi = plausible_foot_rows(fit, HEIGHT)
    assert fit.horizon_row < lo < hi <= HEIGHT - 1


# ----------------------------------------------------------------------------------- COCO


def coco_person(camera: TrueCamera, x: float, y: float, stature: float, ann_id: int, ankles: int | None = 2):
    """A COCO annotation of a person seen by `camera`: box from head to feet, 0.3 stature wide."""
    foot_row, head_row, col, _ = project_person(camera, x, y, stature)
    height = foot_row - head_row
    width = 0.3 * height
    ann = {"id": ann_id, "category_id": 1, "iscrowd": 0, "bbox": [col - width / 2, head_row, width, height]}
    if ankles is not None:
        kps = [0.0] * 51
        ankle_row = foot_row - 0.039 * height
        for k in (15, 16):
            kps[3 * k: 3 * k + 3] = [col, ankle_row, ankles]
        ann["keypoints"], ann["num_keypoints"] = kps, 2
    return ann


def test_people_from_coco_skips_crowd_tiny_truncated_and_sitting():
    base = {"category_id": 1, "iscrowd": 0}
    anns = [
        {**base, "id": 1, "bbox": [100, 300, 80, 300]},  # standing, box only: kept
        {**base, "id": 2, "bbox": [400, 300, 80, 300], "iscrowd": 1},  # crowd
        {**base, "id": 3, "bbox": [500, 300, 10, 30]},  # 30 px < 5% of 960
        {**base, "id": 4, "bbox": [600, 0, 80, 300]},  # top border: head cut off
        {**base, "id": 5, "bbox": [700, 700, 80, 259]},  # reaches the last row: feet cut off
        {**base, "id": 6, "bbox": [800, 400, 150, 200]},  # h/w 1.33: sitting
        {**base, "id": 7, "category_id": 3, "bbox": [900, 300, 80, 300]},  # a car
        {**base, "id": 8, "bbox": [0, 300, 80, 300]},  # left border: kept, not fully visible
    ]
    reasons = [classify_coco_person(a, HEIGHT, WIDTH) for a in anns]
    assert [r if isinstance(r, str) else r.annotation_id for r in reasons] == [
        1, "crowd", "tiny", "truncated", "truncated", "sitting", "not_person", 8]
    people = people_from_coco(anns, HEIGHT, WIDTH)
    assert [p.annotation_id for p in people] == [1, 8]
    assert people[0].foot_row == 600 and people[0].pixel_height == 300 and people[0].fully_visible
    assert people[0].foot_source == "box"
    assert not people[1].fully_visible


def test_people_from_coco_uses_ankles_and_flags_hidden_feet():
    ann = {"id": 1, "category_id": 1, "iscrowd": 0, "bbox": [100, 300, 80, 300], "num_keypoints": 2,
           "keypoints": [0.0] * 51}
    ann["keypoints"][45:48] = [120, 580, 2]  # left ankle, visible
    ann["keypoints"][48:51] = [150, 584, 2]  # right ankle, visible
    person = classify_coco_person(ann, HEIGHT, WIDTH)
    assert person.foot_source == "ankles"
    assert person.foot_row == pytest.approx(582 + 0.039 * 300)
    assert person.pixel_height == pytest.approx(person.foot_row - 300)
    hidden = {**ann, "keypoints": [0.0] * 51}
    hidden["keypoints"][45:48] = [120, 580, 1]  # labelled but occluded
    person = classify_coco_person(hidden, HEIGHT, WIDTH)
    assert person.foot_source == "box" and not person.fully_visible and person.foot_row == 600
    # Ankles far above the box bottom never push the foot below it.
    low = {**ann, "keypoints": list(ann["keypoints"])}
    low["keypoints"][45:51] = [120, 599, 2, 150, 599, 2]
    assert classify_coco_person(low, HEIGHT, WIDTH).foot_row == 600


def test_coco_photograph_end_to_end():
    """Annotations of a photographed scene (with a crowd box, a truncated and a sitting person
    mixed in) -> people -> fit: the camera comes back."""
    camera = CAMERAS[1]
    rng = np.random.default_rng(13)
    statures = [1.70] * 10  # one height: this checks the annotations' reading, not statistics
    anns = [coco_person(camera, rng.uniform(-3, 3), rng.uniform(6, 30), s, k, ankles=2 if k % 2 else None)
            for k, s in enumerate(statures)]
    anns.append({"id": 100, "category_id": 1, "iscrowd": 1, "bbox": [10, 400, 600, 200]})
    anns.append({"id": 101, "category_id": 1, "iscrowd": 0, "bbox": [300, 700, 60, 259.5]})
    sit = coco_person(camera, 0.5, 6.0, 1.25, 102)
    sit["bbox"][2] = sit["bbox"][3] / 1.2  # knees forward: wide box
    anns.append(sit)
    people = people_from_coco(anns, HEIGHT, WIDTH)
    assert sorted(p.annotation_id for p in people) == list(range(10))
    fit = fit_ground(people, camera.focal_px, image_height=HEIGHT)
    assert fit is not None and fit.n_inliers == 10
    assert abs(fit.horizon_row - camera.horizon_row) < 0.5
    assert abs(fit.camera_height_m - camera.height_m) / camera.height_m < 0.01
