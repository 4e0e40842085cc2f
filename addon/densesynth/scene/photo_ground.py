"""The ground, horizon and metric scale of a backdrop photograph, recovered from its people.

A synthetic person pasted over a photograph looks wrong unless it stands on the photo's
ground, at the photo's scale, seen by the photo's camera. When the photograph comes with
annotated people (COCO boxes and keypoints) those people are a calibration target: people
are about 1.70 m tall, so their pixel heights along the image give the camera's height and
the horizon (Hoiem, Efros & Hebert, "Putting Objects in Perspective", CVPR 2006).

Model. A pinhole camera with focal length f (pixels) and principal point at the image centre
(row cy = (H - 1) / 2, OpenCV convention as in `scene/camera.py`), at height c metres over a
flat ground, pitched down by a small angle theta (roll ignored), so the horizon is the image
row y_h = cy - f * tan(theta). A person of height H standing at horizontal distance Z has
feet at y_f = y_h + f * c / Z and pixel height h = f * H / Z, hence

    h = (H / c) * (y_f - y_h):  pixel height is linear in foot row.

That linear relation is exact for a level camera. For a pitched camera this module works in
"levelled" coordinates: an image row y becomes u = tan(atan((y - cy) / f) + theta), the
tangent of the ray's angle below the horizontal. Rotating about the camera's x axis does not
mix in the column, so u is exact for every column, and in u the relation is exact at any
pitch: u_feet = c / Z, u_feet - u_head = H / Z. The fit starts from the linear relation in
raw rows (robust, RANSAC) and then refines the pitch in levelled coordinates, so a tilted
photograph is not biased by the small-angle approximation.

Pure NumPy, no Blender, no random draws: the fit is a function of the photograph's people;
scene/photo_placement.py draws where a synthetic person stands and records it in the spec.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


# COCO keypoint order: 15 = left ankle, 16 = right ankle; visibility 2 = labelled and visible.
LEFT_ANKLE, RIGHT_ANKLE = 15, 16
COCO_PERSON_CATEGORY = 1
# Ankle (malleolus) height over the sole, as a fraction of stature (Drillis & Contini 1966):
# the ankle keypoint sits this far above where the foot meets the ground.
ANKLE_HEIGHT_FRACTION = 0.039

MIN_HEIGHT_FRACTION = 0.05  # people under 5% of the image height: too few pixels to measure
MIN_ASPECT = 1.5  # box height / width below this: sitting, bending, lying or a merged group
BORDER_PX = 1.0  # a box within this of the top or bottom border is cut by the frame

CAMERA_HEIGHT_LIMITS_M = (0.3, 10.0)  # outside this, the fit is more likely wrong than a drone
MAX_PITCH_DEG = 45.0  # "small pitch": beyond this the horizon is not what the fit measured
MAX_RANSAC_PAIRS = 5000
DEFAULT_HEIGHT_M = 1.70  # the average adult, for cameras not fitted to people



# --------------------------------------------------------------------------------------------
# Inputs: the photograph's people


@dataclass(frozen=True)
class PhotoPerson:
    """One annotated person of the photograph, as the fit sees them.

    foot_row: image row (pixels, down) where the feet meet the ground.
    pixel_height: from the feet to the top of the head, in pixels.
    fully_visible: whole person in frame, feet seen; only such people calibrate the ground.
    """

    foot_row: float
    pixel_height: float
    fully_visible: bool = True
    foot_source: str = "box"  # "box" (bottom of the box) or "ankles" (ankle keypoints)
    annotation_id: int | None = None


def _visible_ankle_rows(keypoints: Sequence[float] | None) -> list[float]:
    """Rows of the ankles that are labelled *and visible* (v == 2); occluded ones are guesses."""
    if not keypoints or len(keypoints) < 3 * (RIGHT_ANKLE + 1):
        return []
    rows = []
    for index in (LEFT_ANKLE, RIGHT_ANKLE):
        x, y, v = keypoints[3 * index: 3 * index + 3]
        if v == 2:
            rows.append(float(y))
    return rows


def classify_coco_person(annotation: Mapping[str, Any], image_height: int, image_width: int) -> PhotoPerson | str:
    """A PhotoPerson, or the reason (a short string) this annotation cannot calibrate the ground.

    Rules, in order (the first that applies is the reason):
      "not_person"  category_id present and not 1;
      "crowd"       iscrowd: one box around many people;
      "no_box"      missing or empty bbox;
      "tiny"        box height < 5% of the image height: a pixel of error is too many percent;
      "truncated"   box touching the top or bottom border: head or feet cut off, height wrong;
      "sitting"     box height / width < 1.5: standing people are 2-4 times taller than wide,
                    so this is sitting, bending, lying, or several people in one box.
    Kept people are marked not fully visible when the box touches the left or right border,
    or when the annotation has keypoints but neither ankle is visible (feet may be hidden
    behind something, and then the box bottom is not the foot row).

    Foot row: with visible ankles, their mean row lowered by the ankle's height over the sole
    (3.9% of the person's pixel height), never below the box bottom; otherwise the box bottom.
    Pixel height: from that foot row to the top of the box (COCO has no head-top keypoint).
    """
    category = annotation.get("category_id", COCO_PERSON_CATEGORY)
    if category != COCO_PERSON_CATEGORY:
        return "not_person"
    if annotation.get("iscrowd", 0):
        return "crowd"
    box = annotation.get("bbox")
    if not box or len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        return "no_box"
    x, y, w, h = (float(v) for v in box)
    if h < MIN_HEIGHT_FRACTION * image_height:
        return "tiny"
    bottom = y + h
    if y <= BORDER_PX or bottom >= image_height - 1 - BORDER_PX:
        return "truncated"
    if h / w < MIN_ASPECT:
        return "sitting"

    fully_visible = x > BORDER_PX and x + w < image_width - 1 - BORDER_PX
    keypoints = annotation.get("keypoints")
    has_keypoints = bool(keypoints) and int(annotation.get("num_keypoints", 1)) > 0
    ankles = _visible_ankle_rows(keypoints) if has_keypoints else []
    if ankles:
        foot_row = min(float(np.mean(ankles)) + ANKLE_HEIGHT_FRACTION * h, bottom)
        source = "ankles"
    else:
        foot_row, source = bottom, "box"
        if has_keypoints:
            fully_visible = False
    return PhotoPerson(foot_row=foot_row, pixel_height=foot_row - y, fully_visible=fully_visible,
                       foot_source=source, annotation_id=annotation.get("id"))


def people_from_coco(annotations: Iterable[Mapping[str, Any]], image_height: int, image_width: int) -> list[PhotoPerson]:
    """The photograph's usable people; see `classify_coco_person` for what is skipped and why."""
    people = []
    for annotation in annotations:
        person = classify_coco_person(annotation, image_height, image_width)
        if isinstance(person, PhotoPerson):
            people.append(person)
    return people


# --------------------------------------------------------------------------------------------
# Levelled coordinates


def _level(rows: np.ndarray | float, focal_px: float, principal_row: float, pitch_rad: float) -> np.ndarray:
    """Image rows to u = tan(angle below the horizontal): exact at any pitch, any column."""
    return np.tan(np.arctan((np.asarray(rows, float) - principal_row) / focal_px) + pitch_rad)


def _unlevel(u: np.ndarray | float, focal_px: float, principal_row: float, pitch_rad: float) -> np.ndarray:
    """The inverse of `_level`: u back to an image row."""
    return principal_row + focal_px * np.tan(np.arctan(np.asarray(u, float)) - pitch_rad)


# --------------------------------------------------------------------------------------------
# The fit


@dataclass(frozen=True)
class GroundFit:
    """Camera and ground recovered from a photograph (or drawn from ranges).

    horizon_row: image row of the horizon (may lie outside the image).
    slope: mean person height / camera height, the "a" of h = a * (y_f - y_h).
    pitch_rad: camera pitch, positive looking down (horizon above the image centre).
    height_mean_m, height_sd_m: the photo's people's heights implied by the fit (inliers).
    foot_rows: (lowest, highest) foot row of the people the fit used: where a placement is
    supported by evidence.
    method: "ransac", "camera_height_prior" (one person), or "ranges" (no people).
    """

    horizon_row: float
    slope: float
    camera_height_m: float
    pitch_rad: float
    focal_px: float
    principal_row: float
    height_mean_m: float
    height_sd_m: float
    foot_rows: tuple[float, float]
    n_people: int
    n_inliers: int
    inliers: tuple[bool, ...]
    method: str

    @property
    def pitch_deg(self) -> float:
        return math.degrees(self.pitch_rad)


def _as_prior(prior: float | Sequence[float] | None) -> tuple[float, float] | None:
    if prior is None:
        return None
    if isinstance(prior, (int, float)):
        return float(prior), 0.0
    return float(prior[0]), float(prior[1])


def _line_from_pair(yf: np.ndarray, h: np.ndarray, i: int, j: int) -> tuple[float, float] | None:
    """The line h = a (y_f - y_h) through two people, or None if it cannot be a ground."""
    dy = yf[i] - yf[j]
    if dy == 0:
        return None
    a = (h[i] - h[j]) / dy
    if not a > 0:
        return None
    return a, yf[i] - h[i] / a


def _relative_residuals(yf: np.ndarray, h: np.ndarray, a: float, y_h: float) -> np.ndarray:
    """h / predicted - 1: how much taller or shorter than average each person would be."""
    predicted = a * (yf - y_h)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(predicted > 0, h / predicted - 1.0, np.inf)
    return r


def _pairs(n: int) -> list[tuple[int, int]]:
    """All pairs when few; otherwise a fixed subsample, so a fit never depends on a draw."""
    pairs = list(itertools.combinations(range(n), 2))
    if len(pairs) > MAX_RANSAC_PAIRS:
        pick = np.random.default_rng(0).choice(len(pairs), MAX_RANSAC_PAIRS, replace=False)
        pairs = [pairs[k] for k in sorted(pick)]
    return pairs


def _ransac(yf: np.ndarray, h: np.ndarray, tolerance: float, min_spread: float) -> np.ndarray | None:
    """Inlier mask of the best line over pairs (MSAC score: truncated squared residuals).

    Small photo crowds have few people, so every pair is tried: the result is deterministic.
    """
    best, best_score = None, math.inf
    for i, j in _pairs(len(yf)):
        if abs(yf[i] - yf[j]) < min_spread:
            continue
        line = _line_from_pair(yf, h, i, j)
        if line is None:
            continue
        r = _relative_residuals(yf, h, *line)
        score = float(np.sum(np.minimum(r**2, tolerance**2)))
        if score < best_score:
            best, best_score = np.abs(r) < tolerance, score
    return best


def _weighted_line(u_f: np.ndarray, h_level: np.ndarray) -> tuple[float, float]:
    """Least squares of h' = a u_f + b, weighted by 1 / h'^2: heights vary by percent, not pixels."""
    w = 1.0 / np.maximum(h_level, 1e-12)
    A = np.stack([u_f * w, w], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, h_level * w, rcond=None)
    return float(a), float(b)


def _refine_pitch(yf: np.ndarray, h: np.ndarray, focal_px: float, cy: float, pitch: float,
                  slope: float | None, inliers: np.ndarray, tolerance: float | None,
                  iterations: int = 50) -> tuple[float, float, np.ndarray]:
    """Pitch and slope in levelled coordinates, where the horizon must sit at u = 0.

    Each step levels the rows with the current pitch, fits the line there, and turns the
    horizon's offset u_h into a pitch correction (theta -= atan(u_h)), re-selecting inliers
    (when a tolerance is given) as the fit moves. With `slope` fixed (the one-person case)
    only the horizon is solved for. The correction is second order, so this converges in a
    few steps for any pitch the model allows.
    """
    a = slope if slope is not None else 0.0
    for _ in range(iterations):
        u_f = _level(yf, focal_px, cy, pitch)
        h_level = u_f - _level(yf - h, focal_px, cy, pitch)
        if slope is None:
            a, b = _weighted_line(u_f[inliers], h_level[inliers])
            if not a > 0:
                return pitch, a, inliers
            u_h = -b / a
        else:
            u_h = float(np.mean(u_f[inliers] - h_level[inliers] / a))
        pitch -= math.atan(u_h)
        if tolerance is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(u_f > 0, h_level / (a * u_f) - 1.0, np.inf)
            new = np.abs(r) < tolerance
            if new.sum() >= 2:
                inliers = new
        if abs(u_h) < 1e-10:
            break
    return pitch, a, inliers


def fit_ground(people: Sequence[PhotoPerson], focal_px: float, height_prior: tuple[float, float] = (1.70, 0.09), *,
               image_height: int, camera_height_prior: float | Sequence[float] | None = None,
               inlier_tolerance: float | None = None, min_row_spread_px: float = 4.0,
               min_inlier_fraction: float = 0.5, require_fully_visible: bool = True) -> GroundFit | None:
    """Horizon, camera height and pitch from the photograph's people; None when not trustworthy.

    People used: fully visible (unless `require_fully_visible` is off), finite, positive height.
    With two or more whose foot rows differ by `min_row_spread_px`, RANSAC over pairs picks the
    line h = a (y_f - y_h) most people agree with (a person counts when their implied height is
    within `inlier_tolerance` of the mean: by default 3 sd of `height_prior`, relative, so a
    child or a sitting person is left out), then the pitch is refined in levelled coordinates
    on the inliers. Camera height c = mean height / a.

    One person (or people all at one foot row) cannot separate the horizon from the scale: the
    line has one point. Then, and only when `camera_height_prior` (metres, or (mean, sd)) is
    given, the slope is fixed at mean height / prior camera height and only the horizon is
    solved for (method "camera_height_prior"). Otherwise None.

    Precision: the people's own height spread (about 4%) is the noise the horizon is seen
    through; people near the horizon pin it best. With 30 people spread 6..50 m ahead of an
    eye-level camera (f = 1000 px) the horizon is typically within a pixel and c within 2-3%;
    a handful of people bunched at one distance can be several pixels off.

    None also when the fit is degenerate, so the caller falls back to `fallback_placement`:
    too few inliers (< 2, or < `min_inlier_fraction` of the people), a slope that is not
    positive, a horizon not above every inlier's feet, a camera height outside 0.3..10 m, or a
    pitch beyond 45 degrees.
    """
    mean_h, sd_h = float(height_prior[0]), float(height_prior[1])
    usable = [p for p in people if (p.fully_visible or not require_fully_visible)
              and math.isfinite(p.foot_row) and math.isfinite(p.pixel_height) and p.pixel_height > 0]
    if not usable or not focal_px > 0:
        return None
    yf = np.array([p.foot_row for p in usable], float)
    h = np.array([p.pixel_height for p in usable], float)
    cy = (image_height - 1) / 2.0
    tolerance = inlier_tolerance if inlier_tolerance is not None else max(3.0 * sd_h / mean_h, 0.05)

    spread = float(yf.max() - yf.min())
    if len(usable) >= 2 and spread >= min_row_spread_px:
        inliers = _ransac(yf, h, tolerance, min_row_spread_px)
        if inliers is None or inliers.sum() < 2:
            return None
        a0, y_h0 = _weighted_line_rows(yf[inliers], h[inliers])
        if not a0 > 0:
            return None
        pitch0 = math.atan((cy - y_h0) / focal_px)
        pitch, a, inliers = _refine_pitch(yf, h, focal_px, cy, pitch0, None, inliers, tolerance)
        method = "ransac"
        if float(np.ptp(yf[inliers])) < min_row_spread_px:
            return None
    else:
        prior = _as_prior(camera_height_prior)
        if prior is None or not prior[0] > 0:
            return None
        a = mean_h / prior[0]
        inliers = np.ones(len(usable), bool)
        y_h0 = float(np.mean(yf - h / a))
        pitch, a, inliers = _refine_pitch(yf, h, focal_px, cy, math.atan((cy - y_h0) / focal_px), a, inliers, None)
        method = "camera_height_prior"
    return _checked_fit(yf, h, inliers, a, pitch, focal_px, cy, mean_h, sd_h, method, min_inlier_fraction)


def _weighted_line_rows(yf: np.ndarray, h: np.ndarray) -> tuple[float, float]:
    """(a, y_h) of the linear relation in raw rows: the small-pitch start of the refinement."""
    a, b = _weighted_line(yf, h)
    return a, (-b / a if a != 0 else math.nan)


def _checked_fit(yf: np.ndarray, h: np.ndarray, inliers: np.ndarray, a: float, pitch: float, focal_px: float,
                 cy: float, mean_h: float, sd_h: float, method: str, min_inlier_fraction: float) -> GroundFit | None:
    """The GroundFit, or None if any number in it says the photograph was not understood."""
    n_in = int(inliers.sum())
    if not (math.isfinite(a) and a > 0 and math.isfinite(pitch)):
        return None
    if n_in < 1 or (method == "ransac" and (n_in < 2 or n_in < min_inlier_fraction * len(yf))):
        return None
    if abs(math.degrees(pitch)) > MAX_PITCH_DEG:
        return None
    camera_height = mean_h / a
    if not CAMERA_HEIGHT_LIMITS_M[0] <= camera_height <= CAMERA_HEIGHT_LIMITS_M[1]:
        return None
    u_f = _level(yf, focal_px, cy, pitch)
    if not np.all(u_f[inliers] > 0):  # horizon below (or at) someone's feet
        return None
    h_level = u_f - _level(yf - h, focal_px, cy, pitch)
    heights = camera_height * h_level[inliers] / u_f[inliers]
    height_sd = float(np.std(heights, ddof=1)) if n_in >= 2 else sd_h
    horizon_row = cy - focal_px * math.tan(pitch)
    return GroundFit(horizon_row=float(horizon_row), slope=float(a), camera_height_m=float(camera_height),
                     pitch_rad=float(pitch), focal_px=float(focal_px), principal_row=float(cy),
                     height_mean_m=float(np.mean(heights)), height_sd_m=height_sd,
                     foot_rows=(float(yf[inliers].min()), float(yf[inliers].max())),
                     n_people=len(yf), n_inliers=n_in, inliers=tuple(bool(v) for v in inliers), method=method)


# --------------------------------------------------------------------------------------------
# Placing a synthetic person


def place_person(fit: GroundFit, foot_row: float, person_height_m: float) -> tuple[float, float]:
    """(horizontal distance in metres, pixel height) of a person whose feet are at `foot_row`.

    Exact under the fit's camera: u_feet = c / Z, and the head is H / Z higher in u.
    Raises ValueError for a foot row at or above the horizon (the ground is not there).
    """
    u_f = float(_level(foot_row, fit.focal_px, fit.principal_row, fit.pitch_rad))
    if not u_f > 0:
        raise ValueError(f"foot row {foot_row:.1f} is not below the horizon ({fit.horizon_row:.1f})")
    distance = fit.camera_height_m / u_f
    head_row = float(_unlevel(u_f - person_height_m / distance, fit.focal_px, fit.principal_row, fit.pitch_rad))
    return distance, foot_row - head_row


def foot_row_for_distance(fit: GroundFit, distance_m: float) -> float:
    """The image row of ground at `distance_m` (horizontal) from the camera: inverse of `place_person`."""
    if not distance_m > 0:
        raise ValueError(f"distance must be positive, got {distance_m}")
    return float(_unlevel(fit.camera_height_m / distance_m, fit.focal_px, fit.principal_row, fit.pitch_rad))


def plausible_foot_rows(fit: GroundFit, image_height: int, extend: float = 0.1,
                        max_distance_m: float = 60.0) -> tuple[float, float]:
    """Foot rows backed by the photo: its people's span, widened by `extend` of the span (at
    least 2% of the image) each side, kept inside the image and nearer than `max_distance_m`."""
    lo, hi = fit.foot_rows
    margin = max(extend * (hi - lo), 0.02 * image_height)
    far_row = foot_row_for_distance(fit, max_distance_m)
    lo = max(lo - margin, far_row, fit.horizon_row + 1.0)
    hi = min(hi + margin, image_height - 1.0)
    return (min(lo, hi), hi)
